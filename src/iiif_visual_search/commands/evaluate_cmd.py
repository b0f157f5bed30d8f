"""``ivs evaluate``: the paper's exact-retrieval experiment and the cross-validated classification report."""

from __future__ import annotations

import json
from pathlib import Path

import click

from .classify_cmd import _cv_options, _run_cv
from .common import open_catalogue, settings_from

# The paper evaluated retrieval on the real pictures only (chr24.md §4a).
PAPER_RETRIEVAL_CLASSES = ("Illustration or photograph", "Map", "Mathematical chart")


@click.group()
def evaluate() -> None:
    """Reproduce the paper's evaluations on any collection."""


@evaluate.command()
@click.option("--model", "models", multiple=True, default=("siglip",), show_default=True,
              help="Embedding model; repeat to compare several.")
@click.option("--regions", "region_ids", default=None,
              help="Catalogue regions: comma-separated ids, 'all', or omitted for the labelled pictures "
                   "(Illustration, Map, Chart) when labels exist, else all fetched regions.")
@click.option("--images", "images_dir", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="A folder of images instead of the catalogue (sub-folder name = class).")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="At most this many images (first in order).")
@click.option("--seed", type=int, default=42, show_default=True, help="The paper's seed.")
@click.option("--failure-rank", type=click.IntRange(min=1), default=1, show_default=True,
              help="Queries whose original is not within the top N go on the contact sheet and the failure "
                   "list (1 = every query not found first).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where the report, plot and contact sheet go (default DATA_DIR/evaluation).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.pass_context
def retrieval(ctx: click.Context, models: tuple[str, ...], region_ids: str | None, images_dir: Path | None,
              limit: int | None, seed: int, failure_rank: int, out_dir: Path | None, as_json: bool) -> None:
    """Exact retrieval of augmented images: top-1/5/10/50 per model and class, plot, failure contact sheet."""
    from PIL import Image

    from ..embed.models import EmbedderUnavailable, get_embedder
    from ..evaluate.local_crops import images_in
    from ..evaluate.retrieval import RetrievalItem, run_retrieval, text_summary, write_outputs

    settings = settings_from(ctx)
    items: list[RetrievalItem] = []
    if images_dir is not None:
        for ident, label, path in images_in(images_dir):
            items.append(RetrievalItem(ident, label, lambda p=path: Image.open(p)))
    else:
        with open_catalogue(settings) as catalogue:
            items = _catalogue_items(catalogue, settings.data_dir, region_ids)
    if limit:
        items = items[:limit]
    if len(items) < 2:
        raise click.ClickException("fewer than two images to evaluate: fetch region images ('ivs fetch') "
                                   "or pass --images DIR")
    try:
        embedders = {m: get_embedder(m) for m in models}
    except EmbedderUnavailable as e:
        raise click.ClickException(str(e)) from e
    report = run_retrieval(items, embedders, seed=seed)
    summary = write_outputs(report, out_dir or settings.data_dir / "evaluation", max(0, failure_rank))
    if as_json:
        click.echo(json.dumps(summary, indent=2, ensure_ascii=False))
    else:
        click.echo(text_summary(summary))
        click.echo(f"plot: {summary['files']['plot']}  failures: {summary['files']['failures_contact_sheet']}")


def _catalogue_items(catalogue, data_dir: Path, region_ids: str | None) -> list:  # noqa: ANN001
    from PIL import Image

    from ..evaluate.retrieval import RetrievalItem

    rows = catalogue.query(
        """SELECT r.id, ri.path,
                  COALESCE((SELECT label FROM label l WHERE l.region_id = r.id AND l.source='manual'),
                           (SELECT label FROM label l WHERE l.region_id = r.id AND l.source='model'), '') AS label
           FROM region r JOIN region_image ri ON ri.region_id = r.id
           WHERE r.deleted = 0 ORDER BY r.id""")
    if region_ids and region_ids != "all":
        wanted = {s.strip() for s in region_ids.split(",") if s.strip()}
        missing = sorted(wanted - {r["id"] for r in rows})
        if missing:  # dropping them quietly ended in "fewer than two images: fetch region images"
            raise click.ClickException(f"{len(missing)} region(s) not in the catalogue or without a fetched "
                                       f"image: {', '.join(missing[:5])}")
        rows = [r for r in rows if r["id"] in wanted]
    elif region_ids is None and any(r["label"] in PAPER_RETRIEVAL_CLASSES for r in rows):
        rows = [r for r in rows if r["label"] in PAPER_RETRIEVAL_CLASSES]

    def loader(path: str):  # noqa: ANN202
        p = Path(path)
        return lambda: Image.open(p if p.is_absolute() else data_dir / p)

    return [RetrievalItem(r["id"], r["label"] or "unlabelled", loader(r["path"])) for r in rows]


@evaluate.command()
@_cv_options
@click.pass_context
def classification(ctx: click.Context, **kw: object) -> None:
    """The nested cross-validated classification report (as 'ivs classify train') without saving a model."""
    _run_cv(ctx, save_model=False, **kw)  # type: ignore[arg-type]
