"""``ivs serve``: the IIIF service (manifests, region annotations, Content Search, find-similar, harvest)."""

from __future__ import annotations

import click

from .common import open_catalogue, settings_from


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=8000, show_default=True, type=int, help="Port to listen on.")
@click.option("--base-url", default=None,
              help="Public URL of the service, used in every IIIF id (env IVS_BASE_URL; default "
                   "http://HOST:PORT).")
@click.option("--allow-private-urls", is_flag=True, default=None,
              help="Let image_url queries reach loopback/private hosts (off by default: SSRF).")
@click.option("--read-only", is_flag=True, default=None,
              help="Never write to the data dir (replicas of one published copy; env IVS_READ_ONLY). On by "
                   "itself when the data dir cannot be written. Uploads, page thumbnails and the text index "
                   "then go to IVS_CACHE_DIR (default: a temporary folder).")
@click.pass_context
def serve(ctx: click.Context, host: str, port: int, base_url: str | None,
          allow_private_urls: bool | None, read_only: bool | None) -> None:
    """Serve the catalogue over HTTP as IIIF."""
    import os

    import uvicorn

    from ..web.app import create_app
    from ..web.options import ServeOptions

    if base_url is None and not os.environ.get("IVS_BASE_URL"):
        shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        base_url = f"http://{shown}:{port}"
    settings = settings_from(ctx, base_url=base_url.rstrip("/") if base_url else None)
    if not settings.catalogue_path.exists():
        open_catalogue(settings)  # a clear message when there is nothing to serve yet
    options = ServeOptions.from_env(allow_private_urls=allow_private_urls, read_only=read_only)
    app = create_app(settings, options)
    # Index the text now rather than on the first search.
    app.state.ivs.text_index()
    click.echo(f"serving {settings.catalogue_path} at {settings.base_url} "
               f"(collection: {settings.base_url}/collection)", err=True)
    uvicorn.run(app, host=host, port=port, log_level="info", proxy_headers=True)
