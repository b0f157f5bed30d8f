"""The paper's nested cross-validation of L2-regularised logistic regression, with its flaws fixed.

Algorithm (CHR24 supplement, Algorithms 1–2): an outer loop estimates performance; inside each outer
training part an inner loop picks the embedding ("model type") and C from a grid by cross-validated
micro-F1. Differences from the published notebook, on purpose:

- folds are ``StratifiedGroupKFold`` grouped by book (manifest), so pages of one book never sit on both
  sides of a split and rare classes (Map, Mathematical chart) reach every fold;
- the same F1 (micro) selects and is reported as the headline; macro-F1 and per-class scores are
  reported next to it as extra information, computed on the pooled outer predictions;
- the final refit uses the same solver settings as the CV fits;
- candidates include the concatenation of all given models, not only each model alone;
- ties in inner F1 go to the smaller C (stronger regularisation), then to the earlier candidate.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import confusion_matrix, f1_score, precision_recall_fscore_support
from sklearn.model_selection import KFold, StratifiedGroupKFold, StratifiedKFold
from threadpoolctl import threadpool_limits

log = logging.getLogger(__name__)

PAPER_CS: np.ndarray = np.logspace(-4, 4, 10)
PAPER_OUTER = 20
PAPER_INNER = 10
MAX_ITER = 1000
NEWTON_MAX_PARAMS = 600  # features × classes
CONCAT = "+"

Progress = Callable[[int], None]  # called with the number of fits just finished


@dataclass(frozen=True)
class Candidate:
    """A model type: one embedding model, or several concatenated (name joins them with '+')."""

    models: tuple[str, ...]

    @property
    def name(self) -> str:
        return CONCAT.join(self.models)

    def features(self, features: Mapping[str, np.ndarray]) -> np.ndarray:
        if len(self.models) == 1:
            return features[self.models[0]]
        return np.hstack([features[m] for m in self.models])


def candidates_for(models: Sequence[str], concat: bool = True) -> list[Candidate]:
    out = [Candidate((m,)) for m in models]
    if concat and len(models) > 1:
        out.append(Candidate(tuple(models)))
    return out


def candidate_from_name(name: str) -> Candidate:
    return Candidate(tuple(name.split(CONCAT)))


def make_estimator(C: float, warm_start: bool = False, n_params: int | None = None) -> LogisticRegression:
    """L2, multinomial: the paper's estimator (vectors are L2-normalised upstream).

    The problem is strictly convex, so the solver only changes speed: lbfgs (the paper's) for real
    embeddings, Newton–Cholesky when features × classes is small enough for its dense Hessian, where it
    is several times faster per fit.
    """
    solver = "newton-cholesky" if n_params is not None and n_params <= NEWTON_MAX_PARAMS else "lbfgs"
    return LogisticRegression(C=float(C), max_iter=MAX_ITER, random_state=2, warm_start=warm_start, solver=solver)


def _fit(model: LogisticRegression, X: np.ndarray, y: np.ndarray) -> LogisticRegression:
    with warnings.catch_warnings():
        # Not hidden: counted by the caller through n_iter_ == max_iter.
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(X, y)


def micro_f1(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Micro-F1 of single-label predictions over all classes, which equals accuracy; computed directly
    because sklearn's f1_score validation costs more than a small fit and this runs ~10^4 times."""
    return float(np.mean(np.asarray(y_true) == np.asarray(y_pred))) if len(y_true) else 0.0


class NotEnoughBooks(ValueError):
    """Labels from fewer than two books: no split can keep a book on one side only."""


def _splitter(n_splits: int, y: np.ndarray, groups: np.ndarray, seed: int) -> StratifiedGroupKFold:
    n_groups = len(np.unique(groups))
    if n_splits > n_groups:
        log.warning("only %d books: using %d folds instead of %d", n_groups, n_groups, n_splits)
        n_splits = n_groups
    return StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)


def _region_splits(n_splits: int, y: np.ndarray, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Folds over the regions of one book, for choosing C inside an outer fold that holds a single book."""
    largest = int(np.bincount(y).max()) if len(y) else 0
    n = min(n_splits, len(y), largest) if largest >= 2 else min(n_splits, len(y))
    if n < 2:
        return []
    splitter = StratifiedKFold(n, shuffle=True, random_state=seed) if largest >= 2 else \
        KFold(n, shuffle=True, random_state=seed)
    return list(splitter.split(np.zeros(len(y)), y))


def _splits(n_splits: int, y: np.ndarray, groups: np.ndarray, seed: int,
            one_book_ok: bool = False) -> list[tuple[np.ndarray, np.ndarray]]:
    """Grouped by book; with ``one_book_ok`` (model selection), a single book is split by region instead."""
    with warnings.catch_warnings():
        # "The least populated class has only k members": expected with rare classes; reported below.
        warnings.simplefilter("ignore", UserWarning)
        if len(np.unique(groups)) < 2:
            if not one_book_ok:
                raise NotEnoughBooks(f"cross-validation needs labelled regions from at least two books; all "
                                     f"{len(y)} come from one book: label regions of another book too")
            return _region_splits(n_splits, y, seed)
        splitter = _splitter(n_splits, y, groups, seed)
        return [(tr, te) for tr, te in splitter.split(np.zeros(len(y)), y, groups) if len(te) and len(tr)]


@dataclass
class Selection:
    candidate: str
    C: float
    score: float  # mean inner micro-F1 of the choice
    grid: dict[str, list[float]]  # candidate -> mean inner micro-F1 per C (in Cs order)
    not_converged: int = 0
    by_book: bool = True  # False: the training part held one book, so its folds split regions, not books


def select(features: Mapping[str, np.ndarray], y: np.ndarray, groups: np.ndarray,
           candidates: Sequence[Candidate], Cs: Sequence[float] = PAPER_CS, n_splits: int = PAPER_INNER,
           seed: int = 1, progress: Progress | None = None) -> Selection:
    """Algorithm 1: pick the candidate and C with the best mean micro-F1 over grouped, stratified folds."""
    # One BLAS thread: these problems are small, and threaded BLAS inside scipy's L-BFGS-B made each fit
    # ~5x slower on a 2-core machine (measured); parallelism comes from outer folds (n_jobs) instead.
    with threadpool_limits(limits=1):
        return _select(features, y, groups, candidates, Cs, n_splits, seed, progress)


def _select(features: Mapping[str, np.ndarray], y: np.ndarray, groups: np.ndarray,
            candidates: Sequence[Candidate], Cs: Sequence[float], n_splits: int, seed: int,
            progress: Progress | None) -> Selection:
    Cs = sorted(float(c) for c in Cs)
    splits = _splits(n_splits, y, groups, seed, one_book_ok=True)
    by_book = len(np.unique(groups)) >= 2
    if not splits:  # too few regions to split at all: the middle of the grid, the first candidate
        return Selection(candidates[0].name, Cs[len(Cs) // 2], float("nan"), {}, 0, by_book)
    grid: dict[str, list[float]] = {}
    not_converged = 0
    for cand in candidates:
        X = cand.features(features)
        scores = np.zeros((len(splits), len(Cs)))
        for i, (tr, va) in enumerate(splits):
            # One estimator walks the C path from strong to weak regularisation, warm-started:
            # each fit starts from the last solution, which cuts the solver's iterations.
            model = make_estimator(Cs[0], warm_start=True, n_params=X.shape[1] * len(np.unique(y)))
            for j, C in enumerate(Cs):
                model.set_params(C=C)
                if len(np.unique(y[tr])) < 2:
                    pred = np.full(len(va), y[tr][0])
                else:
                    _fit(model, X[tr], y[tr])
                    not_converged += int(np.max(model.n_iter_) >= MAX_ITER)
                    pred = model.predict(X[va])
                scores[i, j] = micro_f1(y[va], pred)
            if progress:
                progress(len(Cs))
        grid[cand.name] = scores.mean(axis=0).tolist()
    best: tuple[float, int, int] | None = None  # (-score, C index, candidate index): min wins
    for ci, cand in enumerate(candidates):
        for j, s in enumerate(grid[cand.name]):
            key = (-round(s, 12), j, ci)
            if best is None or key < best:
                best = key
    assert best is not None
    return Selection(candidates[best[2]].name, Cs[best[1]], -best[0], grid, not_converged, by_book)


def fit_final(features: Mapping[str, np.ndarray], y: np.ndarray, candidate: str, C: float) -> LogisticRegression:
    X = candidate_from_name(candidate).features(features)
    with threadpool_limits(limits=1):
        return _fit(make_estimator(C, n_params=X.shape[1] * len(np.unique(y))), X, y)


@dataclass
class FoldResult:
    fold: int
    test_index: np.ndarray
    y_pred: np.ndarray
    selection: Selection
    micro_f1: float
    n_train: int
    n_test: int


@dataclass
class CVReport:
    classes: list[str]
    n: int
    n_books: int
    outer: int
    inner: int
    Cs: list[float]
    candidates: list[str]
    folds: list[FoldResult]
    y_true: np.ndarray
    y_pred: np.ndarray
    seed: int
    notes: list[str] = field(default_factory=list)

    @property
    def micro_f1(self) -> float:
        return float(f1_score(self.y_true, self.y_pred, average="micro"))

    @property
    def macro_f1(self) -> float:
        # Over the classes that occur (labelled or predicted): a class of the list that nobody labelled has
        # no F1, and counting it as 0 drags the average down (3 classes of 7 labelled: at most 3/7).
        return float(f1_score(self.y_true, self.y_pred, average="macro", zero_division=0))

    def confusion(self) -> np.ndarray:
        return confusion_matrix(self.y_true, self.y_pred, labels=list(range(len(self.classes))))

    def per_class(self) -> dict[str, dict[str, float]]:
        labels = list(range(len(self.classes)))
        p, r, f, s = precision_recall_fscore_support(self.y_true, self.y_pred, labels=labels, zero_division=0)
        return {c: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
                for i, c in enumerate(self.classes)}

    def selected_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for fold in self.folds:
            key = f"{fold.selection.candidate} C={fold.selection.C:.4g}"
            counts[key] = counts.get(key, 0) + 1
        return dict(sorted(counts.items(), key=lambda kv: -kv[1]))

    def to_json(self) -> dict[str, Any]:
        fold_f1 = np.array([f.micro_f1 for f in self.folds])
        return {
            "metric": "micro-F1 (selection and headline)",
            "micro_f1": self.micro_f1,
            "macro_f1": self.macro_f1,
            "micro_f1_per_fold": {"mean": float(fold_f1.mean()), "sd": float(fold_f1.std(ddof=1))
                                  if len(fold_f1) > 1 else 0.0, "values": fold_f1.tolist()},
            "n": self.n,
            "n_books": self.n_books,
            "outer_folds": len(self.folds),
            "inner_folds": self.inner,
            "Cs": self.Cs,
            "candidates": self.candidates,
            "seed": self.seed,
            "classes": self.classes,
            "per_class": self.per_class(),
            "confusion_matrix": {"rows_true_cols_predicted": self.classes, "counts": self.confusion().tolist()},
            "selected": self.selected_counts(),
            "folds": [{"fold": f.fold, "candidate": f.selection.candidate, "C": f.selection.C,
                       "inner_micro_f1": None if np.isnan(f.selection.score) else f.selection.score, "outer_micro_f1": f.micro_f1,
                       "n_train": f.n_train, "n_test": f.n_test, "not_converged": f.selection.not_converged}
                      for f in self.folds],
            "notes": self.notes,
        }


def nested_cv(features: Mapping[str, np.ndarray], y: np.ndarray, groups: np.ndarray, classes: Sequence[str],
              Cs: Sequence[float] = PAPER_CS, outer: int = PAPER_OUTER, inner: int = PAPER_INNER,
              concat: bool = True, seed: int = 0, progress: Progress | None = None,
              n_jobs: int = 1) -> CVReport:
    """Algorithm 2: the outer grouped, stratified CV around :func:`select`.

    ``features`` maps model name → (n, d) array with rows aligned to ``y`` (class indices) and
    ``groups`` (book ids). ``n_jobs`` > 1 runs outer folds in parallel processes.
    """
    y = np.asarray(y)
    groups = np.asarray(groups)
    models = list(features)
    for name, X in features.items():
        if len(X) != len(y):
            raise ValueError(f"{name}: {len(X)} vectors for {len(y)} labels")
    cands = candidates_for(models, concat)
    outer_splits = _splits(outer, y, groups, seed)
    notes: list[str] = []
    counts = np.bincount(y, minlength=len(classes))
    for i, c in enumerate(classes):
        n_books = len(np.unique(groups[y == i]))
        if 0 < n_books < outer:
            notes.append(f"{c}: {counts[i]} regions in {n_books} books, fewer than {outer} outer folds; "
                         "some test folds hold none")
        elif counts[i] == 0:
            notes.append(f"{c}: no labelled regions")

    def run(fold: int, tr: np.ndarray, te: np.ndarray) -> FoldResult:
        sub = {m: X[tr] for m, X in features.items()}
        sel = select(sub, y[tr], groups[tr], cands, Cs, inner, seed=seed + 1 + fold,
                     progress=progress if n_jobs == 1 else None)
        model = fit_final(sub, y[tr], sel.candidate, sel.C)
        pred = model.predict(candidate_from_name(sel.candidate).features({m: X[te] for m, X in features.items()}))
        return FoldResult(fold, te, pred, sel, micro_f1(y[te], pred), len(tr), len(te))

    if n_jobs == 1:
        folds = [run(i, tr, te) for i, (tr, te) in enumerate(outer_splits)]
    else:
        from joblib import Parallel, delayed

        folds = []
        for result in Parallel(n_jobs=n_jobs, return_as="generator")(
            delayed(run)(i, tr, te) for i, (tr, te) in enumerate(outer_splits)
        ):
            folds.append(result)
            if progress:
                progress(inner * len(cands) * len(Cs))
    single = sum(not f.selection.by_book for f in folds)
    if single:
        notes.append(f"{single} of {len(folds)} outer folds trained on one book: their C and model were chosen "
                     "by folds over that book's regions, not grouped by book")
    y_pred = np.empty_like(y)
    for f in folds:
        y_pred[f.test_index] = f.y_pred
    return CVReport(list(classes), len(y), len(np.unique(groups)), outer, inner, [float(c) for c in Cs],
                    [c.name for c in cands], folds, y, y_pred, seed, notes)


def total_fits(n_models: int, concat: bool, outer: int, inner: int, n_cs: int) -> int:
    n_cands = n_models + (1 if concat and n_models > 1 else 0)
    return outer * inner * n_cands * n_cs
