"""HNSW at scale: build time, bytes per vector, recall@10 against exact search and single-query latency, for
our ``VectorIndex`` (IndexIDMap2 over IndexHNSWFlat, inner product) and an 8-bit scalar-quantised HNSW
(raw FAISS ``IndexHNSWSQ`` with ``QT_8bit``), over the same clustered vectors in the same run.

    nice -n 19 .venv/bin/python bench/index.py --n 1000000        # the issue's scale: needs ~14 GB RAM
    nice -n 19 .venv/bin/python bench/index.py --n 100000 --skip-sq

The data (synthetic; fixed seed, so every run and every ``--n`` draws the same vectors, a smaller ``--n``
being a prefix of a larger one): a Gaussian mixture of ``--clusters`` centres in ``--dim`` dimensions whose
covariance has a power-law spectrum (variance of the i-th principal direction ∝ 1/(i+1), in a random
orthonormal basis: an effective dimension of about 30 at 768-d, in the range reported for CLIP-like image
embeddings; isotropic noise in 768-d would be far harder than any real embedding and far easier to
cluster), cluster sizes drawn log-normally (a few big clusters, many small ones, like reprinted woodcuts
versus one-off illustrations), per-cluster spread drawn uniformly so that a vector's cosine to its centre is
about 0.8–0.94, all rows L2-normalised. Queries are ``--queries`` further draws from the same mixture that are
not in the index (held out). Ground truth: exact inner-product top-k with ``IndexFlatIP`` (added in
chunks and merged, so the base is never copied whole).

Latency: one query at a time, one thread (what a search request does), p50 and p99 over all queries; the
efSearch sweep prints recall and latency per value and names the smallest efSearch that reaches the recall
target. Build: vectors added in chunks of ``--chunk`` with a progress line, all cores (``OMP``), which on a
shared machine means whatever the other users leave; run it under ``nice -n 19``.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import faiss
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from iiif_visual_search.index import kinds as K  # noqa: E402
from iiif_visual_search.index import vectors as V  # noqa: E402

GEN_CHUNK = 50_000


class Mixture:
    """The clustered data set: ``draw(start, stop)`` gives rows start..stop-1 of the stream, deterministically."""

    def __init__(self, dim: int, clusters: int, seed: int) -> None:
        self.dim, self.seed = dim, seed
        rng = np.random.default_rng(seed)
        # A random orthonormal basis and a power-law spectrum shared by centres and within-cluster noise.
        self.basis = np.linalg.qr(rng.standard_normal((dim, dim)))[0].astype(np.float32)
        self.spectrum = (1.0 / np.sqrt(np.arange(1, dim + 1))).astype(np.float32)
        centres = (rng.standard_normal((clusters, dim)).astype(np.float32) * self.spectrum) @ self.basis
        self.centres = centres / np.linalg.norm(centres, axis=1, keepdims=True)
        weights = rng.lognormal(0.0, 1.0, clusters)
        self.weights = weights / weights.sum()
        # Noise norm relative to the unit centre: cosine to the centre is about 1/sqrt(1 + s^2).
        self.spread = rng.uniform(0.35, 0.75, clusters).astype(np.float32)
        self.noise_scale = 1.0 / float(np.linalg.norm(self.spectrum))

    def draw(self, start: int, stop: int, stream: int = 0) -> np.ndarray:
        out = np.empty((stop - start, self.dim), dtype=np.float32)
        for c0 in range(start - start % GEN_CHUNK, stop, GEN_CHUNK):
            rng = np.random.default_rng([self.seed, stream, c0 // GEN_CHUNK])
            label = rng.choice(len(self.centres), GEN_CHUNK, p=self.weights)
            noise = (rng.standard_normal((GEN_CHUNK, self.dim)).astype(np.float32) * self.spectrum) @ self.basis
            x = self.centres[label] + noise * (self.noise_scale * self.spread[label])[:, None]
            x /= np.linalg.norm(x, axis=1, keepdims=True)
            lo, hi = max(start, c0), min(stop, c0 + GEN_CHUNK)
            out[lo - start:hi - start] = x[lo - c0:hi - c0]
        return out


def exact_topk(base: np.ndarray, queries: np.ndarray, k: int, chunk: int = 200_000) -> np.ndarray:
    scores, ids = [], []
    for c0 in range(0, len(base), chunk):
        flat = faiss.IndexFlatIP(base.shape[1])
        flat.add(base[c0:c0 + chunk])
        s, i = flat.search(queries, k)
        scores.append(s)
        ids.append(i + c0)
    s, i = np.hstack(scores), np.hstack(ids)
    order = np.argsort(-s, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(i, order, axis=1)


def recall(truth: np.ndarray, got: list[list[int]], k: int) -> float:
    return float(np.mean([len(set(t[:k].tolist()) & set(g[:k])) / k for t, g in zip(truth, got)]))


def timed_single(search: Callable[[np.ndarray], object], queries: np.ndarray) -> tuple[float, float]:
    """p50, p99 milliseconds, one query at a time on one thread."""
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        search(queries[:1])  # warm up
        times = []
        for q in queries:
            t0 = time.perf_counter()
            search(q[None])
            times.append((time.perf_counter() - t0) * 1000)
    finally:
        faiss.omp_set_num_threads(threads)
    return float(np.percentile(times, 50)), float(np.percentile(times, 99))


def rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6


def sweep(name: str, efs: list[int], truth: np.ndarray, k: int, queries: np.ndarray,
          search_ef: Callable[[np.ndarray, int], list[list[int]]], target: float) -> int | None:
    print(f"  {name}: efSearch sweep (recall@{k} over {len(queries)} held-out queries; latency one query, "
          f"one thread)")
    print(f"    {'efSearch':>8} {'recall@' + str(k):>9} {'p50 ms':>7} {'p99 ms':>7}")
    chosen = None
    for ef in efs:
        got = search_ef(queries, ef)
        r = recall(truth, got, k)
        p50, p99 = timed_single(lambda q, ef=ef: search_ef(q, ef), queries)
        mark = ""
        if chosen is None and r >= target:
            chosen, mark = ef, "  <- smallest efSearch with recall >= %.2f" % target
        print(f"    {ef:>8} {r:>9.4f} {p50:>7.3f} {p99:>7.3f}{mark}", flush=True)
    return chosen


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=768)
    ap.add_argument("--clusters", type=int, default=10_000)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--m", type=int, default=V.HNSW_M)
    ap.add_argument("--ef-construction", type=int, default=V.HNSW_EF_CONSTRUCTION)
    ap.add_argument("--ef", type=str, default="16,32,48,64,96,128,192,256", help="efSearch values to sweep")
    ap.add_argument("--chunk", type=int, default=50_000, help="vectors per add() call (progress granularity)")
    ap.add_argument("--target", type=float, default=0.95)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-sq", action="store_true", help="only our VectorIndex (HNSW flat)")
    ap.add_argument("--skip-flat", action="store_true", help="only the SQ8 HNSW")
    ap.add_argument("--workdir", type=Path, default=None, help="where the index file goes (default: a temp dir)")
    args = ap.parse_args()
    efs = [int(v) for v in args.ef.split(",")]
    # Our VectorIndex builds with the module's parameters; the flags override them for this run.
    K.HNSW_M, K.HNSW_EF_CONSTRUCTION = args.m, args.ef_construction

    print(f"bench/index.py  {time.strftime('%Y-%m-%d %H:%M')}  {platform.node()}  {os.cpu_count()} CPUs  "
          f"faiss {faiss.__version__}  OMP threads {faiss.omp_get_max_threads()}  "
          f"load average {os.getloadavg()[0]:.1f}")
    t0 = time.perf_counter()
    mix = Mixture(args.dim, args.clusters, args.seed)
    base = mix.draw(0, args.n)
    queries = mix.draw(0, args.queries, stream=1)
    print(f"data: {args.n} x {args.dim} float32 ({base.nbytes / 2**30:.2f} GiB), {args.clusters} clusters, "
          f"{args.queries} held-out queries, generated in {time.perf_counter() - t0:.0f} s", flush=True)
    t0 = time.perf_counter()
    truth = exact_topk(base, queries, args.k)
    exact_s = time.perf_counter() - t0
    e50, e99 = timed_single(lambda q: faiss.knn(q, base, args.k, metric=faiss.METRIC_INNER_PRODUCT),
                            queries[:20])
    print(f"exact (IndexFlatIP): ground truth for {args.queries} queries in {exact_s:.0f} s; one query, one "
          f"thread: p50 {e50:.1f} ms p99 {e99:.1f} ms (20 queries); {4 * args.dim} bytes/vector", flush=True)

    summary = []
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        if not args.skip_flat:
            print(f"VectorIndex HNSW flat: M {args.m}, efConstruction {args.ef_construction}", flush=True)
            ix = V.VectorIndex(Path(tmp), args.dim, threshold=0)
            t0 = time.perf_counter()
            first = min(args.chunk, args.n)
            ix.rebuild(list(range(first)), base[:first], kind="hnsw")  # an HNSW index from the first chunk
            for c0 in range(first, args.n, args.chunk):
                c1 = min(args.n, c0 + args.chunk)
                ix.add(range(c0, c1), base[c0:c1], save=False)
                el = time.perf_counter() - t0
                print(f"    added {c1:>8} ({c1 / el:,.0f} vectors/s, {el:,.0f} s, ETA {(args.n - c1) * el / c1:,.0f} s, "
                      f"max RSS {rss_gb():.1f} GB)", flush=True)
            added_s = time.perf_counter() - t0
            ix.save()
            build_s = time.perf_counter() - t0
            size = (Path(tmp) / "index.faiss").stat().st_size
            del ix
            gc.collect()
            loaded = V.VectorIndex(Path(tmp), args.dim, threshold=0)
            print(f"  build {build_s:,.0f} s (adds {added_s:,.0f} s, save {build_s - added_s:.0f} s); file "
                  f"{size / 2**20:,.0f} MiB = {size / args.n:,.0f} bytes/vector; reloaded mmap={loaded._mapped}; "
                  f"max RSS so far {rss_gb():.1f} GB",
                  flush=True)

            def ours(q: np.ndarray, ef: int) -> list[list[int]]:
                return [[h.row for h in hits] for hits in loaded.search(q, args.k, ef_search=ef)]

            chosen = sweep("VectorIndex HNSW flat", efs, truth, args.k, queries, ours, args.target)
            summary.append(("HNSW flat (VectorIndex)", build_s, size / args.n, chosen))
            del loaded
            gc.collect()

        if not args.skip_sq:
            print(f"FAISS IndexHNSWSQ QT_8bit: M {args.m}, efConstruction {args.ef_construction}", flush=True)
            sq = faiss.IndexHNSWSQ(args.dim, faiss.ScalarQuantizer.QT_8bit, args.m, faiss.METRIC_INNER_PRODUCT)
            sq.hnsw.efConstruction = args.ef_construction
            t0 = time.perf_counter()
            sq.train(base[:min(args.n, 100_000)])
            for c0 in range(0, args.n, args.chunk):
                c1 = min(args.n, c0 + args.chunk)
                sq.add(base[c0:c1])
                el = time.perf_counter() - t0
                print(f"    added {c1:>8} ({c1 / el:,.0f} vectors/s, {el:,.0f} s, ETA {(args.n - c1) * el / c1:,.0f} s)",
                      flush=True)
            build_s = time.perf_counter() - t0
            path = Path(tmp) / "sq8.faiss"
            faiss.write_index(sq, str(path))
            size = path.stat().st_size
            print(f"  build {build_s:,.0f} s; file {size / 2**20:,.0f} MiB = {size / args.n:,.0f} bytes/vector",
                  flush=True)

            def sq_search(q: np.ndarray, ef: int) -> list[list[int]]:
                params = faiss.SearchParametersHNSW()
                params.efSearch = ef
                return sq.search(q, args.k, params=params)[1].tolist()

            chosen = sweep("HNSW SQ8", efs, truth, args.k, queries, sq_search, args.target)
            summary.append(("HNSW SQ8 (raw FAISS)", build_s, size / args.n, chosen))

    print("summary:")
    for name, build_s, bpv, chosen in summary:
        print(f"  {name}: n {args.n}, build {build_s:,.0f} s, {bpv:,.0f} bytes/vector, smallest efSearch with "
              f"recall@{args.k} >= {args.target}: {chosen if chosen is not None else 'none in the sweep'}")


if __name__ == "__main__":
    main()
