"""``ivs ingest``: read manifests and collections and their layout files into the catalogue."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import click
from tqdm import tqdm

from ..ingest import ingest as run_ingest
from ..ingest import read_layout_map
from .common import lower_priority, open_catalogue, settings_from


@click.command()
@click.argument("sources", nargs=-1, required=True)
@click.option("--layout-map", "layout_map_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="CSV of 'canvas,layout' rows (canvas id or 1-based position; layout path or URL) for "
                   "manifests that do not link their layout files.")
@click.option("--dpi", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Scan resolution for mm10/inch1200 layouts that state no page size "
                   "(default: from the manifest's physical-dimensions service).")
@click.option("--allow-local", "allow_local", multiple=True,
              type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="A folder whose files documents read over http(s) may name (repeatable). Without it a "
                   "remote document may only name http(s) resources.")
@click.option("--new-only", is_flag=True, help="Skip canvases whose layout was already read (faster re-runs).")
@click.option("--concurrency", type=click.IntRange(min=1), default=None, help="Documents fetched at once (default 8).")
@click.option("--contact", default=None, help="E-mail or URL sent in the User-Agent (env IVS_CONTACT).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@click.pass_context
def ingest(ctx: click.Context, sources: tuple[str, ...], layout_map_path: Path | None, dpi: float | None,
           new_only: bool, concurrency: int | None, contact: str | None, quiet: bool,
           allow_local: tuple[Path, ...]) -> None:
    """Ingest IIIF manifests or collections (URL, file:// URL or local path), following each canvas to its
    ALTO or PAGE-XML layout file and storing every graphical region in the catalogue.

    Re-running with the same sources changes nothing; changed sources update the catalogue and its change
    log. Broken documents are quarantined with the reason (see 'ivs quarantine'); the command fails only
    when nothing at all could be ingested. Local files are read only for local sources (and what they name):
    a document read over http(s) may name http(s) resources only, unless --allow-local says otherwise.
    """
    settings = settings_from(ctx, concurrency=concurrency, contact=contact)
    lower_priority()
    try:
        layout_map = read_layout_map(layout_map_path) if layout_map_path else None
    except (ValueError, OSError) as exc:
        raise click.ClickException(f"cannot read the layout map: {exc}") from None
    catalogue = open_catalogue(settings, must_exist=False)
    bar = tqdm(total=0, unit="page", desc="layouts", disable=quiet or None, file=sys.stderr, dynamic_ncols=True)
    try:
        report = asyncio.run(run_ingest(list(sources), catalogue, settings, layout_map=layout_map, dpi=dpi,
                                        new_only=new_only, progress=None, bar=bar,
                                        allow_local=allow_local))
    finally:
        bar.close()
        catalogue.close()
    click.echo(
        f"{report.manifests_seen} manifest(s) ({report.manifests_changed} new or changed), "
        f"{report.collections} collection(s); layouts: {report.layouts_read} read, "
        f"{report.layouts_unchanged} unchanged; regions: +{report.regions_created} "
        f"~{report.regions_updated} -{report.regions_deleted}"
        + (f"; {report.manifests_deleted} manifest(s) gone from their collection" if report.manifests_deleted else "")
    )
    for ref, n in report.without_layout:
        click.echo(f"note: {ref} links no layout files (ALTO or PAGE-XML) on its {n} canvas(es), so it has no "
                   "regions: give them with --layout-map (a CSV of canvas,layout rows)", err=True)
    if report.failures:
        click.echo(f"{len(report.failures)} document(s) quarantined:", err=True)
        for kind, ref, reason in report.failures[:20]:
            click.echo(f"  {kind} {ref}: {reason}", err=True)
        if len(report.failures) > 20:
            click.echo(f"  … and {len(report.failures) - 20} more: see 'ivs quarantine'", err=True)
    if not report.ingested_anything:
        raise click.ClickException("nothing could be ingested")
