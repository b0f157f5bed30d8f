"""Where each region goes on the map.

The vectors are reduced with PCA (50 dimensions, the usual first step before t-SNE), then a sample of at
most ``fit_sample`` regions is laid out with t-SNE (openTSNE, FFT-accelerated). Every other region — the rest
of a large collection, and regions embedded after the fit — is placed by the stored transform: the PCA
projection, then the median position of its nearest fitted neighbours (openTSNE's own start for new points;
we stop there, so placing is a nearest-neighbour search and costs no optimisation). The transform is plain
arrays (``.npz`` without pickles), so a map on disk can never run code when it is read.

Without openTSNE (the ``map`` extra not installed) the layout falls back to the first two principal
components: every region still gets a place, but clusters overlap far more.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

METHODS = ("tsne", "pca")


def tsne_available() -> bool:
    try:
        import openTSNE  # noqa: F401
    except ImportError:
        return False
    return True


def default_method() -> str:
    return "tsne" if tsne_available() else "pca"


@dataclass(frozen=True)
class LayoutParams:
    """Everything that decides a layout; recorded in the map so that a run can be repeated."""

    method: str = "tsne"
    pca_dims: int = 50
    fit_sample: int = 50_000     # regions laid out by t-SNE; the rest are placed by the transform
    perplexity: float = 30.0     # lowered for collections too small for it (t-SNE needs 3·perplexity < n)
    neighbours: int = 10         # fitted neighbours that place a new region
    seed: int = 0
    n_jobs: int = 0              # 0 = every core

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Transform:
    """The fitted transform: PCA basis, and the fitted regions' reduced vectors with their map positions."""

    mean: np.ndarray             # (d,)
    components: np.ndarray       # (k, d)
    reference: np.ndarray        # (m, k) reduced vectors of the fitted regions
    reference_xy: np.ndarray     # (m, 2) their positions
    reference_cluster: np.ndarray  # (m,) their clusters (-1: none)
    jitter: float = 0.0          # spread of placed regions around their neighbours' median

    def reduce(self, vectors: np.ndarray, chunk: int = 65_536) -> np.ndarray:
        out = np.empty((len(vectors), self.components.shape[0]), dtype=np.float32)
        for start in range(0, len(vectors), chunk):
            block = np.asarray(vectors[start:start + chunk], dtype=np.float32)
            out[start:start + chunk] = (block - self.mean) @ self.components.T
        return out

    def place(self, reduced: np.ndarray, keys: list[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        """Positions and clusters of new regions: the median of their ``k`` nearest fitted neighbours, and
        the cluster most of those neighbours are in. ``keys`` (region ids) seed a small, repeatable jitter,
        so that near-duplicates placed on the same neighbours do not hide each other."""
        import faiss

        if len(reduced) == 0:
            return np.zeros((0, 2), dtype=np.float32), np.zeros(0, dtype=np.int32)
        k = max(1, min(k, len(self.reference)))
        index = faiss.IndexFlatL2(self.reference.shape[1])
        index.add(np.ascontiguousarray(self.reference, dtype=np.float32))
        _, nearest = index.search(np.ascontiguousarray(reduced, dtype=np.float32), k)
        xy = np.median(self.reference_xy[nearest], axis=1).astype(np.float32)
        xy += self.jitter * _unit_offsets(keys)
        return xy, vote(self.reference_cluster[nearest])

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"mean": self.mean, "components": self.components, "reference": self.reference,
                "reference_xy": self.reference_xy, "reference_cluster": self.reference_cluster,
                "jitter": np.float32(self.jitter)}

    @classmethod
    def from_arrays(cls, arrays: Any) -> Transform:
        return cls(arrays["mean"], arrays["components"], arrays["reference"], arrays["reference_xy"],
                   arrays["reference_cluster"], float(arrays["jitter"]))


def vote(neighbour_clusters: np.ndarray) -> np.ndarray:
    """Per row (nearest neighbour first), the most frequent value; a tie goes to the nearer neighbour."""
    rows = np.asarray(neighbour_clusters)
    if rows.size == 0:
        return np.zeros(len(rows), dtype=np.int32)
    counts = np.empty(rows.shape, dtype=np.int32)
    for start in range(0, len(rows), 100_000):  # (n, k, k) comparisons, in slices that fit in memory
        block = rows[start:start + 100_000]
        counts[start:start + 100_000] = (block[:, :, None] == block[:, None, :]).sum(axis=2)
    return rows[np.arange(len(rows)), counts.argmax(axis=1)].astype(np.int32)


def _unit_offsets(keys: list[str]) -> np.ndarray:
    """One offset in [-1, 1]² per key, the same on every run."""
    seeds = [int.from_bytes(hashlib.sha256(k.encode()).digest()[:8], "little") for k in keys]
    return np.array([[(s & 0xFFFF) / 32767.5 - 1.0, ((s >> 16) & 0xFFFF) / 32767.5 - 1.0] for s in seeds],
                    dtype=np.float32).reshape(-1, 2)


def fit_pca(sample: np.ndarray, dims: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(mean, components) of at most ``dims`` principal components of ``sample``."""
    from sklearn.decomposition import PCA

    sample = np.asarray(sample, dtype=np.float32)
    k = max(1, min(dims, sample.shape[1], len(sample)))
    if len(sample) < 2:
        comps = np.eye(sample.shape[1], dtype=np.float32)[:k]
        return sample.mean(axis=0) if len(sample) else np.zeros(sample.shape[1], np.float32), comps
    pca = PCA(n_components=k, svd_solver="auto", random_state=seed).fit(sample)
    return pca.mean_.astype(np.float32), pca.components_.astype(np.float32)


def embed_2d(reduced: np.ndarray, params: LayoutParams) -> tuple[np.ndarray, dict[str, Any]]:
    """2-D positions of the fitted sample, and the parameters actually used (perplexity may be lowered)."""
    n = len(reduced)
    used: dict[str, Any] = {"method": params.method}
    if n == 0:
        return np.zeros((0, 2), dtype=np.float32), used
    if params.method == "tsne" and n >= 4:
        from openTSNE import TSNE

        perplexity = float(min(params.perplexity, max(1.0, (n - 1) / 3.0)))
        jobs = params.n_jobs or os.cpu_count() or 1
        xy = np.asarray(TSNE(perplexity=perplexity, n_jobs=jobs, random_state=params.seed, verbose=False)
                        .fit(np.ascontiguousarray(reduced, dtype=np.float64)), dtype=np.float32)
        used.update(perplexity=perplexity, library=f"openTSNE {_version('openTSNE')}")
    else:
        # PCA's first two axes (the reduced vectors are already in PCA order); tiny sets land here too.
        xy = np.zeros((n, 2), dtype=np.float32)
        xy[:, :min(2, reduced.shape[1])] = reduced[:, :2]
        used["method"] = "pca"
    return xy, used


def normalise(xy: np.ndarray) -> np.ndarray:
    """Into the unit square, centred, aspect kept (the page and the JSON speak these coordinates)."""
    if len(xy) == 0:
        return xy.astype(np.float32)
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    span = float(max(hi - lo)) or 1.0
    return ((xy - (lo + hi) / 2) / span + 0.5).astype(np.float32)


def nearest_spacing(xy: np.ndarray) -> float:
    """Median distance from a fitted region to its nearest neighbour on the map."""
    import faiss

    if len(xy) < 2:
        return 0.0
    sample = xy[:20_000]
    index = faiss.IndexFlatL2(2)
    index.add(np.ascontiguousarray(xy, dtype=np.float32))
    dist, _ = index.search(np.ascontiguousarray(sample, dtype=np.float32), 2)
    return float(np.median(np.sqrt(np.maximum(dist[:, 1], 0))))


def fit(vectors: np.ndarray, params: LayoutParams) -> tuple[Transform, np.ndarray, dict[str, Any]]:
    """Fit on ``vectors`` (the sample): returns the transform (clusters unset), the sample's reduced
    vectors and the parameters used. The sample's positions are ``transform.reference_xy``."""
    mean, components = fit_pca(vectors, params.pca_dims, params.seed)
    transform = Transform(mean, components, np.zeros((0, components.shape[0]), np.float32),
                          np.zeros((0, 2), np.float32), np.zeros(0, np.int32))
    reduced = transform.reduce(vectors)
    xy, used = embed_2d(reduced, params)
    xy = normalise(xy)
    transform.reference, transform.reference_xy = reduced, xy
    transform.reference_cluster = np.full(len(xy), -1, dtype=np.int32)
    transform.jitter = 0.25 * nearest_spacing(xy)
    used["pca_dims"] = int(components.shape[0])
    return transform, reduced, used


def sample_rows(n: int, size: int, seed: int) -> np.ndarray:
    """Which of ``n`` regions are fitted: all of them, or a seeded random ``size`` of them (sorted)."""
    if n <= size:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=size, replace=False))


def _version(module: str) -> str:
    try:
        from importlib.metadata import version

        return version(module.lower())
    except Exception:  # noqa: BLE001 - only recorded for the reader
        return "?"
