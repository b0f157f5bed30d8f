"""``ivs embed``, ``ivs index`` and ``ivs similar``."""

from __future__ import annotations

import json
from pathlib import Path

import click

from .common import lower_priority, manifest_id_of, open_catalogue, settings_from

MODEL_HELP = ("siglip (default), clip, vit, fingerprint, a Hugging Face hub id, or a local checkpoint directory "
              "(use a directory where the hub cannot be reached)")


def refuse_unknown_model(model: str, data_dir: Path) -> None:
    """A bare word that is none of our names is a typo, not a hub id to download: say which names exist."""
    from ..index.model_choice import known_names, looks_like_a_name, unknown_model_message

    if looks_like_a_name(model) and model not in known_names(data_dir):
        raise click.ClickException(unknown_model_message(model, data_dir))


def _ray_address(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is not None:
        from ..embed_ray import check_address
        try:
            check_address(value)
        except ValueError as e:
            raise click.BadParameter(str(e)) from e
    return value


@click.command()
@click.option("--model", "-m", default="siglip", show_default=True, help=MODEL_HELP)
@click.option("--device", default=None, help="cuda, mps or cpu (default: the best available; env IVS_DEVICE)")
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16", "fp16"]), default="auto", show_default=True,
              help="auto = bf16/fp16 where the hardware runs it fast (GPU; CPU with AVX512-BF16/AMX)")
@click.option("--batch-size", type=click.IntRange(min=1), default=None, help="Images per forward pass (default 16 CPU, 64 GPU)")
@click.option("--workers", type=click.IntRange(min=1), default=None, help="Threads decoding and preprocessing images")
@click.option("--limit", type=click.IntRange(min=0), default=None, help="Embed at most this many regions (then stop; resumable)")
@click.option("--no-index", is_flag=True, help="Do not update the search index afterwards")
@click.option("--ray", "ray_address", metavar="local|auto|ray://HOST:PORT", default=None, callback=_ray_address,
              help="Run on a Ray cluster: local starts one on this machine, auto joins RAY_ADDRESS, ray://HOST:PORT "
                   "a remote one (needs iiif-visual-search[ray]; see README, Scale out)")
@click.pass_context
def embed(ctx: click.Context, model: str, device: str | None, precision: str, batch_size: int | None,
          workers: int | None, limit: int | None, no_index: bool, ray_address: str | None) -> None:
    """Embed every region image without a vector of MODEL yet (interrupted runs resume)."""
    from ..embed.models import EmbedderUnavailable, get_embedder
    from ..embed_job import run_embed, update_indexes
    from ..fetch.run import by_flag_text, unfetched_by_flag
    from ..index.vectors import IndexMismatch, VectorStore

    settings = settings_from(ctx)
    refuse_unknown_model(model, settings.data_dir)
    lower_priority()
    catalogue = open_catalogue(settings)
    precision_arg = None if precision == "auto" else precision
    try:
        if ray_address:
            from ..embed_ray import run_embed_ray
            report = run_embed_ray(catalogue, settings.data_dir, model, address=ray_address, device=device,
                                   precision=precision_arg, batch_size=batch_size, limit=limit)
        else:
            embedder = get_embedder(model, device, precision=precision_arg)
            report = run_embed(catalogue, settings.data_dir, embedder=embedder, batch_size=batch_size,
                               workers=workers, limit=limit)
    except (EmbedderUnavailable, IndexMismatch) as e:
        raise click.ClickException(str(e)) from e
    click.echo(f"{report.model}: embedded {report.embedded}, failed {report.failed} "
               f"({report.images_per_second:.1f} img/s{', CPU path ' + report.cpu_path if report.cpu_path else ''})",
               err=True)
    skipped = unfetched_by_flag(catalogue)
    if skipped:
        click.echo(f"not embedded, no image fetched: regions skipped by flag{by_flag_text(skipped)}; "
                   "'ivs fetch --skip-flag none' fetches them", err=True)
    if not no_index:
        stats = update_indexes(VectorStore(settings.data_dir, report.model, catalogue))
        click.echo(f"index {report.model}: {json.dumps(stats)}", err=True)
    if report.failed:
        click.echo(f"{report.failed} region image(s) could not be embedded: see 'ivs quarantine --kind embed'",
                   err=True)
    if report.failed and not report.embedded:  # the rule fetch follows: fail only when nothing could be done
        raise click.ClickException("no region image could be embedded")


@click.command("index")
@click.option("--model", "-m", default="siglip", show_default=True, help="Model name or stored vector-set key")
@click.option("--compact", is_flag=True, help="Rebuild from the live rows, dropping tombstones")
@click.option("--kind", type=click.Choice(["auto", "flat", "hnsw", "hnsw-sq8", "ivf-pq"]), default=None,
              help="Rebuild as this index kind and keep it (auto: chosen by size and memory, the default for a "
                   "new index; env IVS_INDEX_MEMORY_GB)")
@click.option("--recall", type=click.FloatRange(0.5, 1.0), default=None,
              help="recall@10 the search effort is calibrated for (default 0.99; lower is faster)")
@click.pass_context
def index(ctx: click.Context, model: str, compact: bool, kind: str | None, recall: float | None) -> None:
    """Bring MODEL's FAISS index up to date with the catalogue (incremental unless --compact or --kind)."""
    from ..embed_job import update_indexes
    from ..index.vectors import VectorStore

    settings = settings_from(ctx)
    lower_priority()
    catalogue = open_catalogue(settings)
    try:  # VectorStore takes a stored key as it is and maps a model name to its key
        store = VectorStore(settings.data_dir, model, catalogue)
    except FileNotFoundError as e:
        raise click.ClickException(str(e)) from e
    try:
        stats = update_indexes(store, compact=compact, kind=kind, recall=recall)
    except ValueError as e:  # a kind that cannot be built from so few vectors
        raise click.ClickException(str(e)) from e
    click.echo(json.dumps({"model": store.key, **stats}))


@click.command()
@click.option("--image", "image_path", type=click.Path(exists=True, dir_okay=False), help="Query picture")
@click.option("--region", "region_id", help="Query by a region id of the catalogue")
@click.option("--text", help="Query by text (siglip and clip)")
@click.option("--model", "-m", default=None,
              help="Model name or stored vector-set key (default: the best indexed one: siglip, clip, vit, others, "
                   "fingerprint)")
@click.option("--k", "k", type=click.IntRange(min=1), default=50, show_default=True, help="Number of hits")
@click.option("--manifest", default=None, help="Only hits in this manifest (id or URI)")
@click.option("--class", "classes", multiple=True, help="Only hits with this class label (repeatable)")
@click.option("--exclude-class", "exclude_classes", multiple=True,
              help="Drop hits with this class label (repeatable; default: the hidden classes, Blank page and "
                   "Segmentation anomaly, env IVS_HIDDEN_CLASSES)")
@click.option("--all-classes", is_flag=True, help="Drop nothing by class")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per hit (region, manifest, canvas, x, y, w, "
              "h, score, ...): a stable contract")
@click.pass_context
def similar(ctx: click.Context, image_path: str | None, region_id: str | None, text: str | None, model: str | None,
            k: int,
            manifest: str | None, classes: tuple[str, ...], exclude_classes: tuple[str, ...], all_classes: bool,
            as_json: bool) -> None:
    """Regions most similar to an image file, a region or a text."""
    from PIL import Image

    from ..embed.models import EmbedderUnavailable, model_key
    from ..index.model_choice import default_model
    from ..similar import find_similar

    if sum(v is not None for v in (image_path, region_id, text)) != 1:
        raise click.UsageError("give exactly one of --image, --region, --text")
    settings = settings_from(ctx)
    catalogue = open_catalogue(settings)
    manifest = manifest_id_of(catalogue, manifest)
    model = model or default_model(settings.data_dir)
    refuse_unknown_model(model, settings.data_dir)
    image = None
    if image_path:
        try:
            with Image.open(Path(image_path)) as im:
                image = im.convert("RGB")
        except (OSError, Image.DecompressionBombError) as e:  # not a picture, truncated, or a bomb
            raise click.ClickException(f"cannot read {image_path} as an image ({e})") from e
    try:
        hits = find_similar(catalogue, settings, model=model_key(model), region_id=region_id, image=image,
                            text=text, k=k, manifest=manifest, classes=list(classes) or None,
                            exclude_classes=None if all_classes else
                            (list(exclude_classes) or list(settings.hidden_classes) or None))
    except KeyError as e:  # str() of a KeyError is its repr, quotes and all
        raise click.ClickException(str(e.args[0]) if e.args else "not found") from e
    except (EmbedderUnavailable, FileNotFoundError, ValueError) as e:
        raise click.ClickException(str(e)) from e
    for hit in hits:
        if as_json:
            click.echo(json.dumps(hit.to_dict(), ensure_ascii=False))
        else:
            parts = f"  (cosine {hit.cosine:.4f}, {hit.inliers} inliers)" if hit.inliers else ""
            click.echo(f"{hit.score:.4f}  {hit.region}  {hit.canvas}#xywh={hit.x},{hit.y},{hit.w},{hit.h}{parts}")
