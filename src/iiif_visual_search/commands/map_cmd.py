"""``ivs map``: the atlas of one model's regions (layout, clusters, names, thumbnails)."""

from __future__ import annotations

from pathlib import Path

import click

from .common import lower_priority, open_catalogue, settings_from


@click.command("map")
@click.option("--model", "-m", default=None, help="Model name or stored vector-set key (default: the best indexed)")
@click.option("--refit", is_flag=True, help="Lay out every region again (else new regions are placed on the "
                                            "existing map by its fitted transform)")
@click.option("--method", type=click.Choice(["auto", "tsne", "pca"]), default="auto", show_default=True,
              help="auto: t-SNE (openTSNE, the 'map' extra) when installed, else the first two principal components")
@click.option("--fit-sample", type=click.IntRange(min=2), default=50_000, show_default=True,
              help="Regions laid out by t-SNE; the others are placed by the fitted transform")
@click.option("--perplexity", type=click.FloatRange(min=1.0), default=30.0, show_default=True,
              help="t-SNE's neighbourhood size (lowered for collections too small for it)")
@click.option("--min-cluster-size", type=click.IntRange(min=2), default=None,
              help="HDBSCAN's smallest cluster (default: 1/200 of the fitted regions, between 3 and 500)")
@click.option("--prompts", "prompts_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="Zero-shot cluster names to choose from, one per line (models that read text)")
@click.option("--no-prompts", is_flag=True, help="Name clusters by their context words only")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the sample, t-SNE and HDBSCAN")
@click.pass_context
def map_(ctx: click.Context, model: str | None, refit: bool, method: str, fit_sample: int, perplexity: float,
         min_cluster_size: int | None, prompts_file: Path | None, no_prompts: bool, seed: int) -> None:
    """Lay out every live region embedded with MODEL on a 2-D map, cluster and name the clusters.

    Writes DATA_DIR/maps/<model>/; 'ivs serve' shows it at /map and publishes the clusters at /clusters/<model>.
    """
    from ..atlas import labels, layout
    from ..atlas.build import MapOptions, build_map
    from ..index.model_choice import default_model
    from .embed_cmd import refuse_unknown_model

    settings = settings_from(ctx)
    model = model or default_model(settings.data_dir)
    refuse_unknown_model(model, settings.data_dir)
    if method == "tsne" and not layout.tsne_available():
        raise click.ClickException("t-SNE needs openTSNE: pip install 'iiif-visual-search[map]' (or --method pca)")
    chosen = layout.default_method() if method == "auto" else method
    if chosen == "pca" and method == "auto":
        click.echo("openTSNE is not installed ('iiif-visual-search[map]'): laying out with PCA, where clusters "
                   "overlap far more", err=True)
    try:
        prompts = labels.read_prompts(prompts_file) if prompts_file else list(labels.PROMPTS)
    except ValueError as e:
        raise click.ClickException(str(e)) from e
    lower_priority()
    catalogue = open_catalogue(settings)
    options = MapOptions(refit=refit, params=layout.LayoutParams(method=chosen, fit_sample=fit_sample,
                                                                 perplexity=perplexity, seed=seed),
                         min_cluster_size=min_cluster_size, zero_shot=not no_prompts, prompts=prompts)
    try:
        summary = build_map(catalogue, settings.data_dir, model, options, say=lambda m: click.echo(m, err=True))
    except FileNotFoundError as e:
        raise click.ClickException(f"no vectors of model {model!r}: run 'ivs embed --model {model}' first") from e
    for note in summary.notes:
        click.echo(f"note: {note}", err=True)
    kinds = {k: sum(1 for c in summary.changes if c.kind == k) for k in ("create", "update", "delete")}
    click.echo(f"map {summary.key} ({summary.version}): {summary.regions} regions ({summary.fitted} laid out, "
               f"{summary.placed} placed, {summary.removed} removed), {summary.clusters} clusters, "
               f"{summary.noise} in none; clusters created {kinds['create']}, changed {kinds['update']}, "
               f"deleted {kinds['delete']}; seconds {summary.seconds}")
