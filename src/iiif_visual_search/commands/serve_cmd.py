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
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Server processes sharing the port (each uses one core for its requests; the memory-mapped "
                   "indexes are shared between them).")
@click.pass_context
def serve(ctx: click.Context, host: str, port: int, base_url: str | None,
          allow_private_urls: bool | None, read_only: bool | None, workers: int) -> None:
    """Serve the catalogue over HTTP as IIIF."""
    import os

    import uvicorn

    from ..web.app import create_app
    from ..web.options import ServeOptions
    from ..web.workers import shared_options, to_environment

    if base_url is None and not os.environ.get("IVS_BASE_URL"):
        shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        base_url = f"http://{shown}:{port}"
    settings = settings_from(ctx, base_url=base_url.rstrip("/") if base_url else None)
    if not settings.catalogue_path.exists():
        open_catalogue(settings)  # a clear message when there is nothing to serve yet
    options = ServeOptions.from_env(allow_private_urls=allow_private_urls, read_only=read_only)
    if workers > 1:
        options = shared_options(settings, options)
    app = create_app(settings, options)
    # Index the text now rather than on the first search (and once, before any worker starts).
    app.state.ivs.text_index()
    click.echo(f"serving {settings.catalogue_path} at {settings.base_url} "
               f"(collection: {settings.base_url}/collection)"
               + (f" with {workers} worker processes" if workers > 1 else ""), err=True)
    if workers == 1:
        uvicorn.run(app, host=host, port=port, log_level="info", proxy_headers=True)
        return
    app.state.ivs.close()
    to_environment(settings, options)
    uvicorn.run("iiif_visual_search.web.workers:app_from_environment", factory=True, workers=workers,
                host=host, port=port, log_level="info", proxy_headers=True)
