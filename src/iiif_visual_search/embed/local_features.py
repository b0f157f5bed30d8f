"""Local features with geometric verification: the re-ranking stage of the ``fingerprint`` near-duplicate mode.

The global fingerprint vector finds candidates (FAISS); this module decides among them. The paper's
augmentations (rotation ±10°, crops up to 15 % per side, independent 0.8–1.2 width/height scaling) keep most
of a picture's local structure intact, so the same woodcut or text block shares many keypoints with its
original in a consistent geometric arrangement, while look-alike regions (other text blocks of the same book)
share descriptors but not their layout. Score = RANSAC inliers of an affine model (affine, not similarity:
width and height are scaled independently).

- Extraction: grey, resized so the longest side is ``SIDE`` px (up or down: region images come at any size
  and the query is rescaled by the same rule, so keypoint scales agree), SIFT (rotation-invariant; ORB lost
  thin text lines to its 31 px border and reached only ~80 % top-1), the ``KEYPOINTS`` strongest kept.
- Descriptors stored as RootSIFT (Hellinger-normalised) quantised to uint8, positions as float16 pixels of
  the resized image: (K·128 + K·4) bytes per region, padded to K rows so a candidate set is one array.
- Matching: one matrix product of the query against all candidates, Lowe's ratio test per candidate, then
  ``cv2.estimateAffine2D`` (RANSAC) on the survivors.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

VERSION = "sift-rootsift-affine1"
SIDE = 512
KEYPOINTS = 256
DESC = 128
RATIO = 0.8
RANSAC_PX = 6.0
MIN_INLIERS = 6   # fewer inliers than this are treated as no geometric agreement at all


@dataclass
class LocalFeatures:
    """The keypoints of one image: ``points`` (K, 2) float16 pixels, ``descriptors`` (K, 128) uint8,
    ``count`` real rows (the rest is zero padding)."""

    points: np.ndarray
    descriptors: np.ndarray
    count: int


def _cv2():  # noqa: ANN202 - cv2 module
    import cv2

    return cv2


def _grey(image: Image.Image) -> np.ndarray:
    if image.mode in ("RGBA", "LA", "P"):
        from .preprocess import to_rgb
        image = to_rgb(image)
    g = image.convert("L")
    s = SIDE / max(g.size)
    if abs(s - 1) > 1e-3:
        g = g.resize((max(1, round(g.width * s)), max(1, round(g.height * s))),
                     Image.Resampling.BICUBIC if s > 1 else Image.Resampling.BOX)
    return np.asarray(g, dtype=np.uint8)


def extract(image: Image.Image, keypoints: int = KEYPOINTS) -> LocalFeatures:
    cv2 = _cv2()
    g = _grey(image)
    sift = cv2.SIFT_create(nfeatures=keypoints)
    kps, desc = sift.detectAndCompute(g, None)
    pts = np.zeros((keypoints, 2), dtype=np.float16)
    out = np.zeros((keypoints, DESC), dtype=np.uint8)
    if desc is None or not kps:
        return LocalFeatures(pts, out, 0)
    # nfeatures keeps the strongest, but ties at the cut can let a few more through.
    order = np.argsort([-k.response for k in kps], kind="stable")[:keypoints]
    d = desc[order].astype(np.float32)
    d = np.sqrt(d / np.maximum(d.sum(1, keepdims=True), 1e-9))  # RootSIFT: unit L2 norm, values in [0, 1]
    n = len(order)
    out[:n] = np.clip(np.rint(d * 255.0), 0, 255).astype(np.uint8)
    pts[:n] = np.array([kps[i].pt for i in order], dtype=np.float32)
    return LocalFeatures(pts, out, n)


def _unit(desc: np.ndarray) -> np.ndarray:
    d = desc.astype(np.float32)
    return d / np.maximum(np.linalg.norm(d, axis=-1, keepdims=True), 1e-9)


def unit_descriptors(descriptors: np.ndarray) -> np.ndarray:
    """Stored uint8 descriptors → float32 unit rows (what ``inliers`` compares); convert a gallery once."""
    return _unit(descriptors)


def inliers(query: LocalFeatures, points: np.ndarray, descriptors: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """RANSAC affine inliers of ``query`` against each candidate: ``points`` (N, K, 2), ``descriptors``
    (N, K, 128) uint8 or already ``unit_descriptors``, ``counts`` (N,). Returns (N,) int32."""
    return geometry(query, points, descriptors, counts)[0]


def geometry(query: LocalFeatures, points: np.ndarray, descriptors: np.ndarray,
             counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``inliers`` and, per candidate, its ``support``: the inliers times the two pictures' mutual
    ``coverage`` under the fitted affine model (0 where there is no model)."""
    cv2 = _cv2()
    n_cand = len(counts)
    result = np.zeros(n_cand, dtype=np.int32)
    support = np.zeros(n_cand, dtype=np.float64)
    if query.count < MIN_INLIERS or n_cand == 0:
        return result, support
    q = _unit(query.descriptors[:query.count])
    c = descriptors.reshape(-1, DESC) if descriptors.dtype == np.float32 else _unit(descriptors.reshape(-1, DESC))
    k = descriptors.shape[1]
    sims = (q @ c.T).reshape(query.count, n_cand, k)
    pad = np.arange(k)[None, :] >= counts[:, None]            # (N, K) padding rows never match
    sims[:, pad] = -1.0
    # Best and second best per (query keypoint, candidate); argmax + mask is ~15x faster than np.partition.
    best = np.argmax(sims, axis=2)                              # (n, N)
    s1 = np.take_along_axis(sims, best[..., None], 2)[..., 0]
    np.put_along_axis(sims, best[..., None], -1.0, 2)
    s2 = sims.max(axis=2)
    d1 = np.sqrt(np.maximum(2 - 2 * s1, 0))
    d2 = np.sqrt(np.maximum(2 - 2 * s2, 0))
    good = d1 < RATIO * d2
    qpts = query.points[:query.count].astype(np.float32)
    for j in np.flatnonzero(good.sum(0) >= MIN_INLIERS):
        rows = np.flatnonzero(good[:, j])
        src = qpts[rows]
        dst = points[j, best[rows, j]].astype(np.float32)
        model, mask = cv2.estimateAffine2D(src, dst, method=cv2.RANSAC, ransacReprojThreshold=RANSAC_PX,
                                           maxIters=1000, confidence=0.99, refineIters=0)
        if model is not None and mask is not None:
            result[j] = int(mask.sum())
            support[j] = result[j] * coverage(model, qpts, points[j, :int(counts[j])].astype(np.float32))
    return result, support


def coverage(model: np.ndarray, query_points: np.ndarray, candidate_points: np.ndarray) -> float:
    """How much of each picture the other one shows, under ``model`` (query → candidate, 2×3 affine):
    the geometric mean of the share of query keypoints that land inside the candidate's keypoint extent
    and the share of candidate keypoints whose preimage lies inside the query's extent.

    Inliers alone cannot tell the picture from a larger window that contains it (the window's share of
    the query's keypoints is as high) or from a detail of it (zoomed to the same size, a detail offers as
    many keypoints as the whole); both show only part of the other picture. In ``bench/fingerprint.py``'s
    many-distractor set, windows of the query's own page won 17 of 22 misses at 4,096 regions."""
    if len(query_points) == 0 or len(candidate_points) == 0:
        return 0.0
    a, t = model[:, :2].astype(np.float64), model[:, 2].astype(np.float64)
    det = float(np.linalg.det(a))
    if not np.isfinite(det) or abs(det) < 1e-6:
        return 0.0

    def inside(p: np.ndarray, ref: np.ndarray) -> float:
        lo, hi = ref.min(0), ref.max(0)
        return float(np.mean(np.all((p >= lo) & (p <= hi), axis=1)))

    forward = query_points @ a.T + t
    backward = (candidate_points - t) @ np.linalg.inv(a).T
    return float(np.sqrt(inside(forward, candidate_points) * inside(backward, query_points)))


def rerank_order(inlier_counts: np.ndarray, global_scores: np.ndarray,
                 support: np.ndarray | None = None) -> np.ndarray:
    """Candidate order: geometrically verified first (by ``support``, the inliers where not given), then
    the rest by global score."""
    return np.argsort(-rerank_scores(inlier_counts, global_scores, support), kind="stable")


def rerank_scores(inlier_counts: np.ndarray, global_scores: np.ndarray,
                  support: np.ndarray | None = None) -> np.ndarray:
    """One score per candidate whose descending order is ``rerank_order``: candidates verified by at least
    ``MIN_INLIERS`` inliers get 2 + MIN_INLIERS + support + cosine (always above the rest: support ≥ 0,
    cosine ≥ -1), the others 2 + cosine, so re-ranked candidates stay above everything that was not
    re-ranked (cosine ≤ 1). ``support`` (from ``geometry``) defaults to the inliers."""
    inl = np.asarray(inlier_counts, dtype=np.float64)
    cos = np.asarray(global_scores, dtype=np.float64)
    sup = inl if support is None else np.asarray(support, dtype=np.float64)
    return 2.0 + np.where(inl >= MIN_INLIERS, MIN_INLIERS + sup, 0.0) + cos


# --- storage ---------------------------------------------------------------------------------------

def record_dtype(keypoints: int = KEYPOINTS) -> np.dtype:
    return np.dtype([("count", "<u2"), ("points", "<f2", (keypoints, 2)), ("descriptors", "u1", (keypoints, DESC))])


def to_records(features: Sequence[LocalFeatures], keypoints: int = KEYPOINTS) -> np.ndarray:
    """Features as records of the stored layout (what ``LocalFeatureStore.read`` returns)."""
    rec = np.zeros(len(features), dtype=record_dtype(keypoints))
    for i, f in enumerate(features):
        rec[i] = (f.count, f.points, f.descriptors)
    return rec


class LocalFeatureStore:
    """Per-row local features of a vector set: ``<vector dir>/local/features.bin``, one fixed-size record per
    vector row (row r at byte r·record size), so the catalogue's region → row map serves both files.

    Written *before* the vectors of the same batch: the file is first cut back to the vector file's row
    count (dropping records of a batch whose vectors never landed), so after a crash at any point every row
    that the catalogue references has its record. Rows past the end read as zero keypoints (no re-ranking).
    """

    def __init__(self, vector_dir: Path | str, keypoints: int = KEYPOINTS) -> None:
        self.dir = Path(vector_dir) / "local"
        self.path = self.dir / "features.bin"
        self.dtype = record_dtype(keypoints)
        self.keypoints = keypoints

    def __len__(self) -> int:
        return (self.path.stat().st_size if self.path.exists() else 0) // self.dtype.itemsize

    def write_at(self, start_row: int, features: Sequence[LocalFeatures]) -> None:
        self.write_records_at(start_row, to_records(features, self.keypoints))

    def write_records_at(self, start_row: int, rec: np.ndarray) -> None:
        """``write_at`` for records already in the file's layout (``to_records``), as a Ray job's shards
        hold them."""
        rec = np.ascontiguousarray(rec, dtype=self.dtype)
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.path, "ab") as fh:
            size = start_row * self.dtype.itemsize
            if fh.tell() > size:
                fh.truncate(size)
            elif fh.tell() < size:  # rows embedded before local features existed: empty records
                fh.write(bytes(size - fh.tell()))
            fh.seek(size)
            fh.write(rec.tobytes())
            fh.flush()
            os.fsync(fh.fileno())

    def read(self, rows: Sequence[int] | np.ndarray) -> np.ndarray:
        """Records of ``rows`` (structured array with count, points, descriptors); missing rows are empty."""
        rows = np.asarray(rows, dtype=np.int64)
        out = np.zeros(len(rows), dtype=self.dtype)
        n = len(self)
        ok = (rows >= 0) & (rows < n)
        if ok.any():
            mm = np.memmap(self.path, dtype=self.dtype, mode="r", shape=(n,))
            out[ok] = mm[rows[ok]]
        return out


def features_of(record: np.void) -> LocalFeatures:
    return LocalFeatures(np.array(record["points"]), np.array(record["descriptors"]), int(record["count"]))


def inliers_against(query: LocalFeatures, records: np.ndarray) -> np.ndarray:
    """RANSAC inliers of ``query`` against stored records (from ``LocalFeatureStore.read``)."""
    return geometry_against(query, records)[0]


def geometry_against(query: LocalFeatures, records: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``geometry`` (inliers, support) of ``query`` against stored records."""
    return geometry(query, records["points"], records["descriptors"], records["count"].astype(np.int64))
