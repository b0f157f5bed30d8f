"""``ivs demo``: the whole pipeline on the demo collection, then the service."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import click
from tqdm import tqdm

from ..catalogue import Catalogue
from ..config import Settings
from ..ingest import IngestReport, ingest
from ..local_sample import write_sample
from .common import settings_from

REPO = Path(__file__).resolve().parents[3]
DEMO_COLLECTION = REPO / "manifests" / "demo-collection.json"
SHARED_DATA = REPO.parent / "shared" / "data"


def _offline(report: IngestReport) -> bool:
    return report.manifests_seen == 0 and bool(report.failures) and all(
        "cannot connect" in reason for _, _, reason in report.failures)


def ingest_demo(settings: Settings, source: Path, shared_data: Path, *, quiet: bool = False) -> None:
    """Ingest the demo collection; without a network, the local sample built from ``shared_data``."""
    with Catalogue(settings.catalogue_path) as catalogue:
        def run(src: str, desc: str) -> IngestReport:
            bar = tqdm(total=0, unit="page", desc=desc, disable=quiet or None, file=sys.stderr)
            try:
                return asyncio.run(ingest([src], catalogue, settings, bar=bar))
            finally:
                bar.close()

        report = run(str(source), "demo collection")
        if _offline(report):
            hosts = sorted({ref.split("/")[2] for _, ref, _ in report.failures if "://" in ref})
            click.echo(f"No network: cannot reach {', '.join(hosts) or 'the manifest servers'}.", err=True)
            if not shared_data.is_dir():
                raise click.ClickException(
                    f"and no local sample either ({shared_data} is missing): connect to the internet, or "
                    "ingest your own files with 'ivs ingest PATH' (local paths and file:// URLs work offline)")
            click.echo(f"Using the local sample instead: page scans and layout files from {shared_data}.",
                       err=True)
            # Said just above; left in the quarantine they would read as broken documents in the status.
            for kind, ref, _ in report.failures:
                catalogue.clear_quarantine(kind, ref)
            # Without a network, asking the model hub only costs timeouts before the same answer.
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            sample = write_sample(shared_data, settings.data_dir / "local-sample")
            report = run(str(sample), "local sample")
        click.echo(f"ingested {report.manifests_seen} manifest(s): {report.regions_created} new region(s), "
                   f"{len(report.failures)} quarantined")
        if report.manifests_seen == 0:
            raise click.ClickException("nothing could be ingested (see 'ivs quarantine')")


def embed_and_index(settings: Settings, models: list[str], *, quiet: bool = False) -> list[str]:
    """Embed and index every fetched region with each model that can be loaded here; returns those indexed."""
    from ..embed.models import EmbedderUnavailable, get_embedder
    from ..embed_job import run_embed, update_indexes
    from ..index.vectors import VectorStore

    done: list[str] = []
    with Catalogue(settings.catalogue_path) as catalogue:
        for model in models:
            try:
                embedder = get_embedder(model)
            except EmbedderUnavailable as exc:
                click.echo(f"skipping {model}: {exc}", err=True)
                continue
            report = run_embed(catalogue, settings.data_dir, embedder=embedder, progress=not quiet)
            stats = update_indexes(VectorStore(settings.data_dir, report.model, catalogue))
            click.echo(f"{report.model}: {report.embedded} embedded, {report.failed} failed; "
                       f"index {json.dumps(stats)}",
                       err=True)
            done.append(report.model)
    return done


@click.command()
@click.option("--source", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=DEMO_COLLECTION,
              show_default=True, help="The collection to ingest.")
@click.option("--shared-data", type=click.Path(path_type=Path), default=SHARED_DATA, show_default=True,
              help="Local scans + layout files used when there is no network.")
@click.option("--model", "models", multiple=True, default=("siglip", "fingerprint"), show_default=True,
              help="Embedding models to index (repeatable); one whose weights cannot be had here is skipped "
                   "with the reason.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to serve on (0.0.0.0: every interface).")
@click.option("--port", default=8000, show_default=True, type=int, help="Port to serve on.")
@click.option("--no-serve", is_flag=True, help="Stop after the pipeline instead of serving.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
@click.pass_context
def demo(ctx: click.Context, source: Path, shared_data: Path, models: tuple[str, ...], host: str, port: int,
         no_serve: bool, quiet: bool) -> None:
    """Ingest the demo collection, fetch its region images, embed and index them, then serve it all.

    Every step resumes: running the demo again only does what is new.
    """
    from ..fetch.run import FetchOptions, run_fetch

    settings = settings_from(ctx)
    ingest_demo(settings, source, shared_data, quiet=quiet)
    with Catalogue(settings.catalogue_path) as catalogue:
        report = run_fetch(catalogue, settings, FetchOptions(progress=not quiet))
    click.echo(f"fetched {report.fetched} region image(s), {report.failed} failed, "
               f"{report.already_cached} already cached", err=True)
    indexed = embed_and_index(settings, list(models), quiet=quiet)
    if not indexed:
        raise click.ClickException("no embedding model could be loaded, so there is nothing to search")
    from .status_cmd import status

    ctx.invoke(status)
    if not no_serve:
        from .serve_cmd import serve

        ctx.invoke(serve, host=host, port=port, base_url=None, allow_private_urls=None)
