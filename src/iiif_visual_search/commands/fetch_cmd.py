"""``ivs fetch``: a cached region image for every region the filters keep."""

from __future__ import annotations

import json

import click

from ..fetch.image_api import SizePolicy
from ..fetch.run import DEFAULT_SKIP_FLAGS, FetchOptions, by_flag_text, run_fetch
from .common import lower_priority, manifest_id_of, open_catalogue, settings_from


@click.command()
@click.option("--manifest", "manifest_ref", default=None,
              help="Only this manifest (our id, its IIIF id or the URL it was read from).")
@click.option("--max-long", type=int, default=1024, show_default=True,
              help="Longest side of a stored region image, in pixels.")
@click.option("--min-short", type=int, default=256, show_default=True,
              help="Shortest side wanted (the model input); wins over --max-long. Never upscaled.")
@click.option("--skip-flag", "skip_flags", multiple=True,
              type=click.Choice(["aspect", "page", "separator", "tiny", "none"]),
              help=f"Skip regions with this flag (repeatable; default: {', '.join(sorted(DEFAULT_SKIP_FLAGS))}). "
                   "'--skip-flag none' fetches every region.")
@click.option("--per-host", type=int, default=4, show_default=True, help="Requests at once to one server.")
@click.option("--global-limit", type=int, default=16, show_default=True, help="Requests at once in all.")
@click.option("--retries", type=int, default=4, show_default=True,
              help="Retries after timeouts, 429 and 5xx (exponential backoff with jitter, Retry-After honoured).")
@click.option("--max-bytes", type=int, default=50_000_000, show_default=True, help="Largest response accepted.")
@click.option("--timeout", "timeout_s", type=click.FloatRange(min=0, min_open=True), default=None, help="Seconds per request (env IVS_TIMEOUT).")
@click.option("--contact", default=None, help="E-mail or URL sent in the User-Agent (env IVS_CONTACT).")
@click.option("--force", is_flag=True, help="Fetch again even what is cached and unchanged.")
@click.option("--json", "as_json", is_flag=True, help="Print the run summary as JSON.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@click.pass_context
def fetch(ctx: click.Context, manifest_ref: str | None, max_long: int, min_short: int, skip_flags: tuple[str, ...],
          per_host: int, global_limit: int, retries: int, max_bytes: int, timeout_s: float | None,
          contact: str | None, force: bool, as_json: bool, quiet: bool) -> None:
    """Fetch region images through the IIIF Image API (2.1 or 3.0), plain images or local files into the
    content-addressed cache under DATA_DIR/images, and record them in the catalogue.

    Re-running fetches only what is missing or changed. Failures are quarantined with the reason (see
    'ivs quarantine'); the command fails only when regions were pending and none could be fetched.
    """
    if min(max_long, min_short, per_host, global_limit, max_bytes) < 1 or retries < 0:
        raise click.UsageError("sizes and limits must be positive")
    settings = settings_from(ctx, contact=contact, timeout_s=timeout_s)
    lower_priority()
    catalogue = open_catalogue(settings)
    try:
        manifest_id = manifest_id_of(catalogue, manifest_ref)
        flags = DEFAULT_SKIP_FLAGS if not skip_flags else frozenset(f for f in skip_flags if f != "none")
        options = FetchOptions(
            manifest_id=manifest_id, skip_flags=flags, size=SizePolicy(max_long, min_short), per_host=per_host,
            global_limit=global_limit, retries=retries, max_bytes=max_bytes, force=force, progress=not quiet,
        )
        report = run_fetch(catalogue, settings, options)
    finally:
        catalogue.close()
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2))
    else:
        click.echo(
            f"{report.regions} region(s): {report.fetched} fetched, {report.already_cached} already cached, "
            f"{report.skipped_flagged} skipped by flag{by_flag_text(report.skipped_by_flag)}, {report.failed} failed "
            f"({report.rate:.1f} regions/s, {report.requests} requests, {report.retries} retries)"
        )
    if report.failed:
        click.echo(f"{report.failed} region image(s) quarantined: see 'ivs quarantine'", err=True)
    if report.failed and not report.fetched:
        raise click.ClickException("no region image could be fetched")
