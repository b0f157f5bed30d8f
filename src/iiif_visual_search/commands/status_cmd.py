"""``ivs status``, ``ivs regions`` and ``ivs quarantine``: what the catalogue holds."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

import click

from .common import manifest_id_of, open_catalogue, settings_from

# A national library's catalogue holds tens of thousands of manifests: a line each would bury the totals.
LISTED_MANIFESTS = 50


@click.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON document instead of a table (every manifest).")
@click.option("--manifests/--no-manifests", "list_manifests", default=None,
              help=f"List every manifest with its counts (default: only when there are at most {LISTED_MANIFESTS}).")
@click.pass_context
def status(ctx: click.Context, as_json: bool, list_manifests: bool | None) -> None:
    """Counts per manifest, regions by type and flag, quarantine."""
    settings = settings_from(ctx)
    with open_catalogue(settings) as catalogue:
        info = catalogue.status()
    if as_json:
        click.echo(json.dumps(info, indent=2, ensure_ascii=False))
        return
    click.echo(f"catalogue: {info['catalogue']}")
    manifests = info["manifests"]
    click.echo(f"manifests: {sum(1 for m in manifests if m['status'] == 'ok')} "
               f"({sum(1 for m in manifests if m['status'] != 'ok')} deleted)")
    if list_manifests is None:
        list_manifests = len(manifests) <= LISTED_MANIFESTS
        if not list_manifests:
            click.echo("  (not listed: 'ivs status --manifests' lists each with its counts, --json too)")
    for m in manifests if list_manifests else []:
        label = (m["label"] or m["uri"])[:60]
        gone = "  [deleted]" if m["status"] != "ok" else ""
        click.echo(f"  {m['id']}  {label:<60}  canvases {m['canvases']:>5}  layouts {m['layouts']:>5}  "
                   f"regions {m['regions']:>6}  images {m['images']:>6}{gone}")
    total = sum(info["regions_by_type"].values())
    click.echo(f"regions: {total}")
    for block_type, n in info["regions_by_type"].items():
        click.echo(f"  type {block_type:<28} {n:>7}")
    click.echo(f"  unflagged {'':<23} {info['regions_unflagged']:>7}")
    for flag, n in sorted(info["regions_by_flag"].items()):
        click.echo(f"  flag {flag:<28} {n:>7}")
    if info["embeddings"]:
        click.echo("embeddings: " + ", ".join(f"{k} {v}" for k, v in info["embeddings"].items()))
    if info["labels"]:
        click.echo("labels: " + ", ".join(f"{k} {v}" for k, v in info["labels"].items()))
    quarantine = info["quarantine"]
    click.echo("quarantine: " + (", ".join(f"{k} {v}" for k, v in quarantine.items()) if quarantine else "empty"))


def region_json(row: sqlite3.Row) -> dict[str, Any]:
    """The stable JSON form of a region (``ivs regions --json``): other tools rely on these keys."""
    context = " … ".join(part for part in (row["context_before"], row["caption"], row["context_after"]) if part)
    out: dict[str, Any] = {
        "id": row["id"],
        "manifest": row["manifest_uri"],
        "canvas": row["canvas_uri"],
        "x": row["x"], "y": row["y"], "w": row["w"], "h": row["h"],
        "type": row["block_type"],
        "block": row["source_block_id"],
        "flags": [f for f in row["flags"].split(",") if f],
        "context": context,
        "context_before": row["context_before"],
        "context_after": row["context_after"],
        "caption": row["caption"],
        "manifest_id": row["manifest_id"],
        "canvas_id": row["canvas_id"],
        "page": row["canvas_position"] + 1,
    }
    if row["image_path"]:
        out["image"] = row["image_path"]
    if row["deleted"]:  # only listed with --include-deleted, where it must be told apart from the live ones
        out["deleted"] = True
    return out


@click.command()
@click.option("--manifest", "manifest_ref", default=None, help="Only this manifest (our id, IIIF id or URL).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line (the stable contract).")
@click.option("--include-deleted", is_flag=True, help="Also regions removed by a later ingest.")
@click.pass_context
def regions(ctx: click.Context, manifest_ref: str | None, as_json: bool, include_deleted: bool) -> None:
    """List the regions in the catalogue, in book order."""
    settings = settings_from(ctx)
    with open_catalogue(settings) as catalogue:
        rows = catalogue.regions(manifest_id_of(catalogue, manifest_ref), include_deleted=include_deleted)
    for row in rows:
        if as_json:
            click.echo(json.dumps(region_json(row), ensure_ascii=False))
        else:
            flags = f" [{row['flags']}]" if row["flags"] else ""
            gone = "  (deleted)" if row["deleted"] else ""
            click.echo(f"{row['id']}  p{row['canvas_position'] + 1:<4} {row['x']},{row['y']},{row['w']},{row['h']}"
                       f"  {row['block_type']}{flags}{gone}")


@click.command()
@click.option("--kind", default=None, help="Only this kind: manifest, layout, image, …")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.pass_context
def quarantine(ctx: click.Context, kind: str | None, as_json: bool) -> None:
    """What failed, and why."""
    settings = settings_from(ctx)
    with open_catalogue(settings) as catalogue:
        rows = catalogue.quarantined(kind)
    for row in rows:
        if as_json:
            click.echo(json.dumps(dict(row), ensure_ascii=False))
        else:
            click.echo(f"{row['kind']:<9} {row['ref']}\n          {row['reason']}")
    if not rows and not as_json:
        click.echo("quarantine is empty")
