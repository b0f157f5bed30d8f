"""Time the nested CV of ``ivs classify train`` at the issue's scale: 2,000 labelled regions × 3 models
(768 + 512 + 768 dims, L2-normalised), 7 classes, the paper's 20 × 10 folds and 10 C values.

Synthetic vectors with class structure stand in for real embeddings (fit time depends on the
conditioning, so real data can differ). ``--outer-folds-to-time K`` runs K outer folds and extrapolates.
Usage: python bench/bench_classify_train.py [--jobs 2] [--outer-folds-to-time 1]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from iiif_visual_search.classify.nested_cv import PAPER_CS, candidates_for, select


def data(n: int = 2000, seed: int = 0) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.choice(7, size=n, p=[0.17, 0.26, 0.30, 0.06, 0.02, 0.02, 0.17])
    groups = rng.integers(0, 1400, size=n)
    feats = {}
    for name, d in (("siglip", 768), ("clip", 512), ("vit", 768)):
        centres = rng.normal(size=(7, d))
        X = centres[y] * 0.012 + rng.normal(size=(n, d)) / np.sqrt(d) * 1.0
        feats[name] = (X / np.linalg.norm(X, axis=1, keepdims=True)).astype(np.float32)
    return feats, y, groups


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--outer-folds-to-time", type=int, default=1)
    args = ap.parse_args()
    feats, y, groups = data()
    cands = candidates_for(list(feats))
    t0 = time.perf_counter()
    for k in range(args.outer_folds_to_time):
        mask = np.arange(len(y)) % 20 != k  # ~95 % of the data, as in one outer fold
        sel = select({m: X[mask] for m, X in feats.items()}, y[mask], groups[mask], cands, PAPER_CS, 10, seed=k)
        print(f"outer fold {k}: chose {sel.candidate} C={sel.C:.3g} inner micro-F1 {sel.score:.3f} "
              f"({time.perf_counter() - t0:.1f} s so far)")
    per_fold = (time.perf_counter() - t0) / args.outer_folds_to_time
    print(f"{per_fold:.1f} s per outer fold (400 fits); 20 outer folds + final selection ≈ "
          f"{21 * per_fold / 60:.1f} min single-process")


if __name__ == "__main__":
    main()
