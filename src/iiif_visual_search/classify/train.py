"""Train, cross-validate and apply a region classifier on catalogue data (what the CLI verbs call)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..catalogue import Catalogue
from .labels_io import manual_labels, store_labels
from .model import TrainedClassifier, now_iso
from .nested_cv import PAPER_CS, CVReport, fit_final, nested_cv, select, candidates_for, total_fits
from .vectors import aligned_vectors

log = logging.getLogger(__name__)


@dataclass
class TrainingSet:
    region_ids: list[str]
    features: dict[str, np.ndarray]
    y: np.ndarray  # class indices into ``classes``
    groups: np.ndarray  # book (manifest) id per row
    classes: list[str]
    descriptors: dict[str, object]
    skipped_no_vector: int = 0
    skipped_other_class: int = 0


def training_set(catalogue: Catalogue, data_dir: Path, models: Sequence[str], classes: Sequence[str]) -> TrainingSet:
    labels = manual_labels(catalogue)
    in_classes = {rid: lab for rid, lab in labels.items() if lab in classes}
    ids, features, descriptors = aligned_vectors(catalogue, data_dir, models, sorted(in_classes))
    book = {r["id"]: r["manifest_id"] for r in catalogue.query("SELECT id, manifest_id FROM region")}
    y = np.array([list(classes).index(in_classes[rid]) for rid in ids], dtype=np.int64)
    groups = np.array([book[rid] for rid in ids])
    return TrainingSet(ids, features, y, groups, list(classes), descriptors,
                       skipped_no_vector=len(in_classes) - len(ids),
                       skipped_other_class=len(labels) - len(in_classes))


def cross_validate(ts: TrainingSet, Cs: Sequence[float] = PAPER_CS, outer: int = 20, inner: int = 10,
                   concat: bool = True, seed: int = 0, n_jobs: int = 1, show_progress: bool = True) -> CVReport:
    total = total_fits(len(ts.features), concat, outer, inner, len(Cs))
    with tqdm(total=total, desc="nested CV fits", unit="fit", disable=not show_progress) as bar:
        return nested_cv(ts.features, ts.y, ts.groups, ts.classes, Cs, outer, inner, concat, seed,
                         progress=bar.update, n_jobs=n_jobs)


def train_final(ts: TrainingSet, Cs: Sequence[float] = PAPER_CS, inner: int = 10, concat: bool = True,
                seed: int = 0, cv_summary: Mapping[str, object] | None = None,
                show_progress: bool = True) -> TrainedClassifier:
    """Algorithm 1 on all labelled regions, then a refit with the chosen model type and C."""
    cands = candidates_for(list(ts.features), concat)
    with tqdm(total=inner * len(cands) * len(Cs), desc="model selection (all data)", unit="fit",
              disable=not show_progress) as bar:
        sel = select(ts.features, ts.y, ts.groups, cands, Cs, inner, seed=seed + 1, progress=bar.update)
    estimator = fit_final(ts.features, ts.y, sel.candidate, sel.C)
    used = {m: ts.descriptors.get(m) for m in sel.candidate.split("+")}
    cv = dict(cv_summary or {})
    cv["selection_inner_micro_f1"] = None if sel.score != sel.score else sel.score  # NaN: nothing to split
    return TrainedClassifier(estimator, ts.classes, sel.candidate, sel.C, len(ts.y), used, now_iso(), cv)


def apply_classifier(catalogue: Catalogue, data_dir: Path, clf: TrainedClassifier, batch: int = 20_000,
                     show_progress: bool = True) -> dict[str, int]:
    """A label and its probability for every region with vectors of the model's embeddings."""
    ids, features, _ = aligned_vectors(catalogue, data_dir, list(clf.models))
    version = clf.version
    counts: dict[str, int] = {}
    for start in tqdm(range(0, len(ids), batch), desc="classifying", unit="batch", disable=not show_progress):
        chunk = slice(start, start + batch)
        labels, probs = clf.predict({m: X[chunk] for m, X in features.items()})
        store_labels(catalogue, zip(ids[chunk], labels, (float(p) for p in probs), strict=True), "model", version)
        for lab in labels:
            counts[lab] = counts.get(lab, 0) + 1
    return counts
