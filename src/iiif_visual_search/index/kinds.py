"""Which FAISS index a vector set gets, by its size and the memory it may take, and how each kind is made.

| kind       | FAISS                                   | bytes per 768-d vector in RAM | search                         |
|------------|-----------------------------------------|-------------------------------|--------------------------------|
| `flat`     | IndexFlatIP (exact)                     | 3,072                         | exact; below ``HNSW_THRESHOLD``|
| `hnsw`     | IndexHNSWFlat, inner product            | ~3,350                        | efSearch, calibrated           |
| `hnsw-sq8` | IndexHNSWSQ, 8-bit scalar quantiser     | ~1,040                        | efSearch, then exact re-rank   |
| `ivf-pq`   | IndexIVFPQ, dim/8 bytes per code        | ~120                          | nprobe, then exact re-rank     |

Every kind sits inside an IndexIDMap2 whose ids are the vector file's rows. The quantised kinds re-rank their
candidates exactly with the float32 rows of ``vectors.f32``, memory-mapped: the page cache holds what is
read, shared by every process that serves the same data directory and given back under memory pressure.

``choose_kind`` picks the first kind, in the order of the table, whose index fits the memory budget:
``IVS_INDEX_MEMORY_GB`` (default a quarter of the machine's RAM, so that one model of a million 768-d
regions stays HNSW flat on a 24 GB machine and serving stays within ~6 GB).
"""

from __future__ import annotations

import os

import faiss
import numpy as np

KINDS = ("flat", "hnsw", "hnsw-sq8", "ivf-pq")
AUTO = "auto"
HNSW_THRESHOLD = 20_000   # below this many rows exact search is fast enough (< 2 ms at 768-d) and exact
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 80
MEMORY_ENV = "IVS_INDEX_MEMORY_GB"
MEMORY_SHARE = 0.25       # of physical RAM, when IVS_INDEX_MEMORY_GB is not set
IVF_TRAIN_PER_LIST = 64   # training vectors per IVF list (FAISS warns below 39)
PQ_BITS = 8


def memory_budget() -> int:
    """Bytes one vector index may hold in RAM: ``IVS_INDEX_MEMORY_GB`` or a quarter of physical memory."""
    value = os.environ.get(MEMORY_ENV, "").strip()
    if value:
        try:
            gb = float(value)
        except ValueError:
            gb = -1.0
        if gb <= 0:
            raise ValueError(f"{MEMORY_ENV} must be a positive number of gigabytes, got {value!r}")
        return int(gb * 1e9)
    try:
        ram = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        ram = 8 * 10**9
    return int(ram * MEMORY_SHARE)


def pq_bytes(dim: int) -> int:
    """PQ code bytes: about dim/8 sub-quantisers (96 at 768-d), the largest such divisor of ``dim``."""
    target = max(1, dim // 8)
    return max(m for m in range(1, target + 1) if dim % m == 0)


def ivf_lists(n: int) -> int:
    """IVF lists for ``n`` vectors: about 4·sqrt(n), a power of two, with enough training points per list."""
    target = min(4 * np.sqrt(max(n, 1)), n / IVF_TRAIN_PER_LIST)
    return int(2 ** max(0, int(np.floor(np.log2(max(target, 1))))))


def bytes_per_vector(kind: str, dim: int, n: int = 1_000_000) -> float:
    """RAM per vector of an index of ``kind`` (codes, graph links, ids and id map; FAISS's own sizes)."""
    ids = 16  # IndexIDMap2: the id array and its reverse map
    if kind == "flat":
        return 4 * dim + ids
    if kind == "hnsw":
        return 4 * dim + HNSW_M * 2 * 4 * 1.05 + ids
    if kind == "hnsw-sq8":
        return dim + HNSW_M * 2 * 4 * 1.05 + ids
    if kind == "ivf-pq":
        return pq_bytes(dim) + 8 + ids + ivf_lists(n) * dim * 4 / max(n, 1)
    raise ValueError(f"unknown index kind {kind!r}; one of {', '.join(KINDS)}")


def choose_kind(n: int, dim: int, *, threshold: int = HNSW_THRESHOLD, budget: int | None = None) -> str:
    """Exact below ``threshold`` rows; else the most accurate kind whose index fits ``budget`` bytes."""
    if n < threshold:
        return "flat"
    budget = memory_budget() if budget is None else budget
    for kind in KINDS[1:-1]:
        if n * bytes_per_vector(kind, dim, n) <= budget:
            return kind
    return "ivf-pq"


def rank(kind: str) -> int:
    """Position in ``KINDS``: a collection that grows only ever moves to a higher one on its own."""
    return KINDS.index(kind)


def reranked(kind: str) -> bool:
    """Kinds whose codes are approximate, so their candidates are re-scored from the float32 rows."""
    return kind in ("hnsw-sq8", "ivf-pq")


def new_index(kind: str, dim: int, n: int) -> faiss.Index:
    """An empty index of ``kind`` for about ``n`` vectors, wrapped in IndexIDMap2 (ids = vector rows).
    The quantised kinds still need ``train``: see ``needs_training``."""
    if kind == "flat":
        inner = faiss.IndexFlatIP(dim)
    elif kind == "hnsw":
        inner = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        inner.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
    elif kind == "hnsw-sq8":
        inner = faiss.IndexHNSWSQ(dim, faiss.ScalarQuantizer.QT_8bit, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        inner.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
    elif kind == "ivf-pq":
        quantizer = faiss.IndexFlatIP(dim)
        inner = faiss.IndexIVFPQ(quantizer, dim, ivf_lists(n), pq_bytes(dim), PQ_BITS, faiss.METRIC_INNER_PRODUCT)
        inner.own_fields = True
        quantizer.this.disown()  # the IVF index owns its quantiser now (freed with it)
    else:
        raise ValueError(f"unknown index kind {kind!r}; one of {', '.join(KINDS)}")
    return faiss.IndexIDMap2(inner)


def training_sample(kind: str, dim: int, n: int) -> int:
    """Vectors to train an index of ``kind`` over ``n`` vectors on (0: none needed)."""
    if kind == "hnsw-sq8":
        return min(n, 100_000)
    if kind == "ivf-pq":
        return min(n, max(ivf_lists(n) * IVF_TRAIN_PER_LIST, 256 * 40))
    return 0
