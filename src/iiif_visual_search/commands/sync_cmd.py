"""``ivs sync``: follow other institutions' IIIF Change Discovery 1.0 streams."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import click
from tqdm import tqdm

from ..discovery.state import StreamRow, StreamState
from ..discovery.sync import DEFAULT_MAX_PAGES, SyncReport
from ..discovery.sync import sync as run_sync
from ..iiif.harvest import iso
from .common import open_catalogue, settings_from


@click.command()
@click.argument("streams", nargs=-1, metavar="[STREAM_URL]...")
@click.option("--status", "show_status", is_flag=True,
              help="List the streams followed: newest activity, last run, objects present/removed/failed.")
@click.option("--fetch", "then_fetch", is_flag=True, help="Then fetch the region images of what changed "
              "('ivs fetch', which gets only what is missing or changed).")
@click.option("--embed", "models", multiple=True, metavar="MODEL",
              help="Then fetch and embed with MODEL, and update its index ('ivs embed --model MODEL'; repeatable).")
@click.option("--max-pages", type=click.IntRange(min=1), default=DEFAULT_MAX_PAGES, show_default=True,
              help="Read at most this many pages of one stream in one run.")
@click.option("--concurrency", type=click.IntRange(min=1), default=None, help="Documents fetched at once (default 8).")
@click.option("--contact", default=None, help="E-mail or URL sent in the User-Agent (env IVS_CONTACT).")
@click.option("--json", "as_json", is_flag=True, help="Print the run summary (or --status) as JSON.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@click.pass_context
def sync(ctx: click.Context, streams: tuple[str, ...], show_status: bool, then_fetch: bool, models: tuple[str, ...],
         max_pages: int, concurrency: int | None, contact: str | None, as_json: bool, quiet: bool) -> None:
    """Apply what IIIF Change Discovery streams (OrderedCollection URLs) say changed: Create, Update and Add
    ingest the manifest or collection, Delete and Remove mark it deleted, Move does both.

    The first run reads a stream through; later runs read only the pages newer than the last run and stop at
    the first activity already applied. Without STREAM_URL, every stream followed before is synced. Pages and
    manifests that cannot be read are quarantined with the reason and tried again by the next run; a stream
    that could not be read through makes the command fail, so that a cron job reports it.
    """
    settings = settings_from(ctx, concurrency=concurrency, contact=contact)
    if show_status:
        if streams:
            raise click.UsageError("--status takes no STREAM_URL")
        _print_status(settings, as_json)
        return
    catalogue = open_catalogue(settings, must_exist=bool(not streams))
    try:
        urls = list(streams) or StreamState(catalogue).urls()
        if not urls:
            raise click.UsageError("no stream followed yet: give a STREAM_URL")
        bar = tqdm(total=0, unit="object", desc="changes", disable=quiet or None, file=sys.stderr,
                   dynamic_ncols=True)
        try:
            report = asyncio.run(run_sync(urls, catalogue, settings, max_pages=max_pages, bar=bar))
        finally:
            bar.close()
    finally:
        catalogue.close()
    _print_report(report, as_json)
    if (then_fetch or models) and report.changed:
        from .embed_cmd import embed
        from .fetch_cmd import fetch

        ctx.invoke(fetch, contact=contact, quiet=quiet)
        for model in models:
            ctx.invoke(embed, model=model)
    if not report.complete:
        stopped = sum(not w.complete for w in report.walks)
        raise click.ClickException(f"{stopped} stream(s) not read through; the next run tries again "
                                   "(see 'ivs sync --status' and 'ivs quarantine')")


def _print_report(report: SyncReport, as_json: bool) -> None:
    i = report.ingest
    if as_json:
        click.echo(json.dumps({
            "streams": [{"url": w.url, "pages": w.pages, "activities": w.activities, "changes": len(w.changes),
                         "invalid": w.invalid, "passed_over": w.passed_over, "complete": w.complete,
                         "problem": w.problem} for w in report.walks],
            "included": report.included, "removed": report.removed, "retried": report.retried,
            "failed": [{"url": u, "reason": r} for u, r in report.failed],
            "manifests_deleted": report.manifests_deleted + i.manifests_deleted,
            "regions": {"created": i.regions_created, "updated": i.regions_updated,
                        "deleted": i.regions_deleted + report.regions_deleted},
        }, indent=2))
        return
    for w in report.walks:
        state = "read through" if w.complete else f"stopped at {w.problem}"
        extra = f", {w.invalid} unreadable (quarantined)" if w.invalid else ""
        click.echo(f"{w.url}: {w.pages} page(s), {w.activities} activities, {len(w.changes)} to apply{extra}; "
                   f"{state}")
    click.echo(f"applied: {report.included - len(report.failed)} ingested, {len(report.failed)} failed "
               f"({report.retried} retried), {report.removed} removed; "
               f"regions: +{i.regions_created} ~{i.regions_updated} -{i.regions_deleted + report.regions_deleted}")
    if report.failed:
        click.echo(f"{len(report.failed)} object(s) failed, tried again next run:", err=True)
        for url, reason in report.failed[:20]:
            click.echo(f"  {url}: {reason}", err=True)
        if len(report.failed) > 20:
            click.echo(f"  … and {len(report.failed) - 20} more: see 'ivs quarantine'", err=True)


def _when(ts: float | None) -> str:
    return iso(ts) if ts is not None else "-"


def _status_json(row: StreamRow) -> dict[str, Any]:
    return {"url": row.url, "id": row.stream_id, "newest_activity": _when(row.newest) if row.newest else None,
            "read_through_to": _when(row.high_water) if row.high_water else None,
            "last_run": _when(row.last_run) if row.last_run else None, "pages_last_run": row.pages,
            "activities_last_run": row.activities, "problem": row.problem, "objects": row.counts}


def _print_status(settings: Any, as_json: bool) -> None:
    with open_catalogue(settings) as catalogue:
        rows = StreamState(catalogue, create=False).streams()
    if as_json:
        click.echo(json.dumps([_status_json(r) for r in rows], indent=2))
        return
    if not rows:
        click.echo("no stream followed yet (ivs sync STREAM_URL)")
        return
    for r in rows:
        c = r.counts
        click.echo(f"{r.url}\n  newest activity {_when(r.newest)}, last run {_when(r.last_run)} "
                   f"({r.pages} page(s), {r.activities} activities read)\n"
                   f"  objects: {c['present']} present, {c['removed']} removed, {c['failed']} failed, "
                   f"{c['ignored']} ignored")
        if r.problem:
            click.echo(f"  last run stopped at {r.problem}")
