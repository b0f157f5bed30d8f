"""Wall time of what ``ivs classify train`` computes, at the issue's scale: 2,000 labelled regions × 3 models
(768 + 512 + 768 dimensions, L2-normalised), the paper's 7 classes and class shares, 20 outer × 10 inner
folds, 10 values of C, 4 candidates (each model and their concatenation), then the final selection and refit
on all the data — the same functions the command calls (``classify.train``).

The vectors are synthetic: class centres plus noise, with ``--separation`` set so that the classes overlap
about as much as real embeddings do (the paper's F1 ≈ 0.93-0.96), since well-separated data converges
faster and would flatter the timing.

    .venv/bin/python bench/classify.py                     # the full run (minutes)
    .venv/bin/python bench/classify.py --outer 4 --jobs 2  # quicker look
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from iiif_visual_search.classify.classes import PAPER_CLASSES
from iiif_visual_search.classify.train import TrainingSet, cross_validate, train_final

SHARES = [0.17, 0.26, 0.30, 0.06, 0.02, 0.02, 0.17]  # CHR24 label counts, in PAPER_CLASSES order


def training_set(n: int, separation: float, seed: int = 0) -> TrainingSet:
    rng = np.random.default_rng(seed)
    y = rng.choice(len(PAPER_CLASSES), size=n, p=SHARES)
    groups = rng.integers(0, int(n * 0.7), size=n)  # ~1,400 books for 2,000 regions, as in CHR24
    features = {}
    for name, d in (("siglip", 768), ("clip", 512), ("vit", 768)):
        centres = rng.normal(size=(len(PAPER_CLASSES), d))
        X = centres[y] * separation / np.sqrt(d) + rng.normal(size=(n, d)) / np.sqrt(d)
        features[name] = (X / np.linalg.norm(X, axis=1, keepdims=True)).astype(np.float32)
    return TrainingSet(features=features, y=y, groups=groups, classes=list(PAPER_CLASSES),
                       region_ids=[f"r{i}" for i in range(n)], descriptors={})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--outer", type=int, default=20)
    ap.add_argument("--inner", type=int, default=10)
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--separation", type=float, default=0.12)  # micro-F1 ≈ 0.95, as the paper
    args = ap.parse_args()
    ts = training_set(args.n, args.separation)
    start = time.perf_counter()
    report = cross_validate(ts, outer=args.outer, inner=args.inner, n_jobs=args.jobs)
    cv_s = time.perf_counter() - start
    final = train_final(ts, inner=args.inner)
    total_s = time.perf_counter() - start
    print(f"{args.n} regions × 3 models, {args.outer}×{args.inner} folds, jobs {args.jobs}: "
          f"nested CV {cv_s / 60:.1f} min, final selection + refit {(total_s - cv_s) / 60:.1f} min, "
          f"total {total_s / 60:.1f} min (target < 10 min)")
    print(f"out-of-fold micro-F1 {report.micro_f1:.3f}, macro-F1 {report.macro_f1:.3f}; final model "
          f"{final.candidate} C={final.C:.3g}")


if __name__ == "__main__":
    main()
