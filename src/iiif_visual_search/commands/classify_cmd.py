"""``ivs classify``: import labels, train (nested CV + final model), apply, zero-shot."""

from __future__ import annotations

import json
from pathlib import Path

import click

from .common import open_catalogue, settings_from

MODELS_HELP = "Embedding model; repeat for several (each alone and their concatenation are candidates)."


def _classes(spec: str | None) -> tuple[str, ...]:
    from ..classify.classes import load_class_list

    try:
        return load_class_list(spec)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--classes") from exc


classes_option = click.option("--classes", "classes_spec", default=None,
                              help="Class list: comma-separated or a file with one per line "
                                   "(default: the paper's seven).")


def _echo_counts(counts: dict[str, int]) -> None:
    """Regions per class, most first."""
    for label, n in sorted(counts.items(), key=lambda kv: -kv[1]):
        click.echo(f"  {label:<30} {n:>7}")


@click.group()
def classify() -> None:
    """Label regions: import manual labels, train and apply a classifier, or label zero-shot."""


@classify.command("import-labels")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["auto", "chr24", "label-studio", "csv"]), default="auto",
              help="The label file's format; auto tells them apart by content.")
@click.option("--multi", type=click.Choice(["skip", "first"]), default="skip",
              help="Rows with several classes: skip them (default) or keep the first column's, like the paper.")
@click.option("--tolerance", type=float, default=2.0, show_default=True,
              help="Pixels a URL's region may differ from a catalogue region (rounding).")
@classes_option
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.pass_context
def import_labels(ctx: click.Context, path: Path, fmt: str, multi: str, tolerance: float,
                  classes_spec: str | None, as_json: bool) -> None:
    """Read manual labels (Label Studio JSON, CHR24, or CSV region_id,label) into the catalogue."""
    from ..classify.labels_io import match_items, missing_books, read_labels, store_labels

    classes = _classes(classes_spec)
    try:
        read = read_labels(path, fmt, classes, multi)  # type: ignore[arg-type]
    except ValueError as e:
        raise click.ClickException(str(e)) from e
    with open_catalogue(settings_from(ctx)) as catalogue:
        report = match_items(catalogue, read.items, tolerance_px=tolerance)
        stored = store_labels(catalogue, ((rid, label, None) for _, rid, label in report.matched), "manual")
    counts: dict[str, int] = {}
    for _, _, label in report.matched:
        counts[label] = counts.get(label, 0) + 1
    out = {"read": len(read.items), "stored": stored, "by_class": counts,
           "multi_label": len(read.multi_label), "no_label": len(read.no_label),
           "unknown_class": read.unknown_class, "unmatched": {
               "no_canvas": len(report.no_canvas), "no_region": len(report.no_region),
               "unparsable": len(report.unparsable), "unknown_region": len(report.unknown_region)},
           "unmatched_examples": (report.no_region + report.no_canvas + report.unparsable
                                  + report.unknown_region)[:5],
           "missing_books": [{"image_service": book, "labels": n} for book, n in missing_books(report.no_canvas)]}
    if as_json:
        click.echo(json.dumps(out, indent=2, ensure_ascii=False))
        return
    click.echo(f"read {out['read']} labelled items, stored {stored} manual labels")
    _echo_counts(counts)
    for key, n in out["unmatched"].items():
        if n:
            click.echo(f"  unmatched ({key}): {n}")
    if read.multi_label:
        click.echo(f"  rows with several classes ({multi}): {len(read.multi_label)}")
    if read.unknown_class:
        click.echo(f"  labels not in the class list: {read.unknown_class}")
    if report.no_canvas:
        books = out["missing_books"]
        click.echo(f"{len(report.no_canvas)} labels are of pages this catalogue does not have: they need the "
                   f"manifests of {len(books)} book(s), ingested first ('ivs ingest MANIFEST_URL ...'), then "
                   f"'ivs classify import-labels' again. The books, by image service (page number left out):")
        for book in books[:10]:
            click.echo(f"  {book['image_service']} ({book['labels']} labels)")
        if len(books) > 10:
            click.echo(f"  … and {len(books) - 10} more ('--json' lists them all)")


def _cv_options(f):  # noqa: ANN001, ANN202 — a click decorator stack
    for opt in reversed([
        click.option("--model", "models", multiple=True, default=("siglip",), show_default=True, help=MODELS_HELP),
        click.option("--outer", type=click.IntRange(min=2), default=20, show_default=True, help="Outer folds (the paper: 20)."),
        click.option("--inner", type=click.IntRange(min=2), default=10, show_default=True, help="Inner folds (the paper: 10)."),
        click.option("--no-concat", is_flag=True, help="Do not try the concatenation of several models."),
        click.option("--seed", type=int, default=0, show_default=True, help="Seed of the fold shuffles."),
        click.option("--jobs", type=click.IntRange(min=1), default=1, show_default=True, help="Outer folds run in parallel."),
        classes_option,
        click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
                     help="Where report.json, report.txt and confusion.png go (default DATA_DIR/classifier; "
                          "for evaluate, DATA_DIR/evaluation)."),
        click.option("--json", "as_json", is_flag=True, help="Print the JSON report."),
    ]):
        f = opt(f)
    return f


def _run_cv(ctx: click.Context, models: tuple[str, ...], outer: int, inner: int, no_concat: bool, seed: int,
            jobs: int, classes_spec: str | None, out_dir: Path | None, as_json: bool, save_model: bool) -> None:
    from ..classify.nested_cv import PAPER_CS, NotEnoughBooks
    from ..classify.report import text_report, write_report
    from ..classify.train import cross_validate, train_final, training_set

    settings = settings_from(ctx)
    classes = _classes(classes_spec)
    # An evaluation must not overwrite the report that describes the saved classifier.
    out_dir = out_dir or settings.data_dir / ("classifier" if save_model else "evaluation")
    with open_catalogue(settings) as catalogue:
        try:
            ts = training_set(catalogue, settings.data_dir, list(models), classes)
        except FileNotFoundError as exc:
            raise click.ClickException(f"{exc} (for every --model)") from exc
        if len(ts.y) < 4:
            raise click.ClickException(
                f"{len(ts.y)} labelled regions with vectors of {', '.join(models)} "
                f"({ts.skipped_no_vector} labelled regions lack vectors): import labels with "
                "'ivs classify import-labels' and run 'ivs embed' first")
        try:
            report = cross_validate(ts, PAPER_CS, outer, inner, not no_concat, seed, jobs,
                                    show_progress=not as_json)
        except NotEnoughBooks as exc:
            raise click.ClickException(str(exc)) from None
        extra = {"models": list(models), "skipped_no_vector": ts.skipped_no_vector,
                 "skipped_other_class": ts.skipped_other_class}
        if save_model:
            clf = train_final(ts, PAPER_CS, inner, not no_concat, seed,
                              {"micro_f1": report.micro_f1, "macro_f1": report.macro_f1,
                               "outer": len(report.folds), "inner": inner}, show_progress=not as_json)
            clf.save(out_dir / "model")
            extra["model"] = {"path": str(out_dir / "model"), "version": clf.version,
                              "embedding_model": clf.candidate, "C": clf.C, "n": clf.n}
        data = write_report(report, out_dir, extra)
    if as_json:
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
        return
    click.echo(text_report(report))
    if save_model:
        m = data["model"]
        click.echo(f"model {m['version']} ({m['embedding_model']}, C={m['C']:.4g}, n={m['n']}) saved to {m['path']}")
    click.echo(f"report: {data['files']['json']}  confusion matrix: {data['files']['confusion_png']}")


@classify.command()
@_cv_options
@click.pass_context
def train(ctx: click.Context, **kw: object) -> None:
    """Nested-CV report (grouped by book, stratified), then the final model on all labels, saved."""
    _run_cv(ctx, save_model=True, **kw)  # type: ignore[arg-type]


@classify.command()
@click.option("--classifier", "model_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="A saved model directory (default DATA_DIR/classifier/model).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.pass_context
def apply(ctx: click.Context, model_dir: Path | None, as_json: bool) -> None:
    """Label every region that has vectors; stored as source 'model' with the model version."""
    from ..classify.model import TrainedClassifier
    from ..classify.train import apply_classifier

    settings = settings_from(ctx)
    model_dir = model_dir or settings.data_dir / "classifier" / "model"
    if not (model_dir / "model.json").exists():
        raise click.ClickException(f"no trained classifier at {model_dir}: run 'ivs classify train' first")
    clf = TrainedClassifier.load(model_dir)
    with open_catalogue(settings) as catalogue:
        try:
            counts = apply_classifier(catalogue, settings.data_dir, clf, show_progress=not as_json)
        except FileNotFoundError as e:  # the classifier's embedding model has no vectors in this data dir
            raise click.ClickException(str(e)) from e
    out = {"model_version": clf.version, "labelled": sum(counts.values()), "by_class": counts}
    if as_json:
        click.echo(json.dumps(out, indent=2, ensure_ascii=False))
        return
    click.echo(f"labelled {out['labelled']} regions with {clf.version}")
    _echo_counts(counts)


@classify.command("zero-shot")
@click.option("--model", default="siglip", show_default=True, help="A model with a text tower (siglip, clip).")
@classes_option
@click.option("--temperature", type=float, default=100.0, show_default=True,
              help="Scale of the image-text similarities before the softmax (CLIP's logit scale).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.pass_context
def zero_shot_cmd(ctx: click.Context, model: str, classes_spec: str | None, temperature: float,
                  as_json: bool) -> None:
    """Label regions from text prompts (no manual labels needed); stored as source 'model'."""
    from ..classify.labels_io import store_labels
    from ..classify.vectors import stored_vectors
    from ..classify.zeroshot import class_prompts, text_vectors, zero_shot
    from ..embed.models import EmbedderUnavailable, get_embedder

    settings = settings_from(ctx)
    classes = _classes(classes_spec)
    try:
        embedder = get_embedder(model)
    except EmbedderUnavailable as e:
        raise click.ClickException(str(e)) from e
    if not getattr(embedder, "supports_text", False):
        raise click.ClickException(f"{model} has no text tower: use siglip or clip")
    prompts = class_prompts(classes)
    with open_catalogue(settings) as catalogue:
        ids, X, _ = stored_vectors(catalogue, settings.data_dir, model)
        if not ids:
            raise click.ClickException(f"no stored vectors of {model}: run 'ivs embed --model {model}' first")
        labels, probs = zero_shot(X, text_vectors(embedder, prompts), classes, temperature)
        version = f"zero-shot-{model}-t{temperature:g}"
        store_labels(catalogue, zip(ids, labels, (float(p) for p in probs), strict=True), "model", version)
    counts: dict[str, int] = {}
    for lab in labels:
        counts[lab] = counts.get(lab, 0) + 1
    out = {"model_version": version, "labelled": len(ids), "by_class": counts, "prompts": prompts}
    if as_json:
        click.echo(json.dumps(out, indent=2, ensure_ascii=False))
        return
    click.echo(f"labelled {len(ids)} regions with {version}")
    _echo_counts(counts)
