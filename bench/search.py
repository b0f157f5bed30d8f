"""HNSW query latency and recall@k against exact search (IndexFlatIP), same vectors, same run.

Clustered unit vectors (like real embeddings, unlike uniform noise). The issue's target: 1M × 768,
recall@10 ≥ 0.95 at single-query p50 ≤ 2 ms; also reports build time, bytes per vector, and SQ8 HNSW.

    .venv/bin/python bench/search.py --n 100000 --dim 768
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from iiif_visual_search.index.vectors import HNSW_EF_CONSTRUCTION, HNSW_M, VectorIndex  # noqa: E402


def clustered(n: int, d: int, seed: int = 0, clusters: int = 1000) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, d)).astype(np.float32)
    x = centres[rng.integers(0, clusters, n)] + 0.6 * rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def latency(search, q: np.ndarray) -> tuple[float, float]:
    times = []
    for v in q:
        t0 = time.perf_counter()
        search(v[None])
        times.append((time.perf_counter() - t0) * 1000)
    return float(np.percentile(times, 50)), float(np.percentile(times, 99))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=768)
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--ef", type=int, default=64)
    args = ap.parse_args()
    x = clustered(args.n, args.dim)
    rng = np.random.default_rng(1)
    q = x[rng.choice(args.n, args.queries, replace=False)] + 0.3 * rng.standard_normal(
        (args.queries, args.dim)).astype(np.float32) / np.sqrt(args.dim)
    q /= np.linalg.norm(q, axis=1, keepdims=True)

    exact = faiss.IndexFlatIP(args.dim)
    exact.add(x)
    _, truth = exact.search(q, args.k)
    e50, e99 = latency(lambda v: exact.search(v, args.k), q)
    print(f"n={args.n} dim={args.dim} k={args.k} threads={faiss.omp_get_max_threads()}")
    print(f"exact  flat:  p50 {e50:.2f} ms  p99 {e99:.2f} ms  bytes/vector {4 * args.dim}")

    with tempfile.TemporaryDirectory() as tmp:
        ix = VectorIndex(Path(tmp), args.dim, threshold=0)
        t0 = time.perf_counter()
        ix.rebuild(list(range(args.n)), x)
        build = time.perf_counter() - t0
        size = os.path.getsize(Path(tmp) / "index.faiss")
        loaded = VectorIndex(Path(tmp), args.dim, threshold=0)
        got = loaded.search(q, args.k, ef_search=args.ef)
        recall = np.mean([len(set(t) & {h.row for h in g}) / args.k for t, g in zip(truth, got)])
        h50, h99 = latency(lambda v: loaded.search(v, args.k, ef_search=args.ef), q)
        print(f"HNSW{HNSW_M} flat (efC {HNSW_EF_CONSTRUCTION}, efS {args.ef}, via VectorIndex, mmap={loaded._mapped}): "
              f"recall@{args.k} {recall:.4f}  p50 {h50:.3f} ms  p99 {h99:.3f} ms  build {build:.1f} s  "
              f"bytes/vector {size / args.n:.0f}  speed-up p50 {e50 / h50:.1f}x")

    sq = faiss.IndexHNSWSQ(args.dim, faiss.ScalarQuantizer.QT_8bit, HNSW_M, faiss.METRIC_INNER_PRODUCT)
    sq.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
    t0 = time.perf_counter()
    sq.train(x[: min(args.n, 100_000)])
    sq.add(x)
    build = time.perf_counter() - t0
    sq.hnsw.efSearch = args.ef
    _, got_sq = sq.search(q, args.k)
    recall = np.mean([len(set(t) & set(g)) / args.k for t, g in zip(truth, got_sq)])
    s50, s99 = latency(lambda v: sq.search(v, args.k), q)
    size = len(faiss.serialize_index(sq))
    print(f"HNSW{HNSW_M} SQ8: recall@{args.k} {recall:.4f}  p50 {s50:.3f} ms  p99 {s99:.3f} ms  build {build:.1f} s  "
          f"bytes/vector {size / args.n:.0f}")


if __name__ == "__main__":
    main()
