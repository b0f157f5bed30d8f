"""Local features with geometric verification: the re-ranking stage of the ``fingerprint`` near-duplicate mode.

The global fingerprint vector finds candidates (FAISS); this module decides among them. The paper's
augmentations (rotation ±10°, crops up to 15 % per side, independent 0.8–1.2 width/height scaling) keep most
of a picture's local structure intact, so the same woodcut or text block shares many keypoints with its
original in a consistent geometric arrangement, while look-alike regions (other text blocks of the same book)
share descriptors but not their layout. Score = RANSAC inliers of an affine model (affine, not similarity:
width and height are scaled independently).

- Extraction: grey, a longest side above ``SIDE`` px reduced to it, one below ``MIN_SIDE`` enlarged to it,
  anything between kept at its own resolution (``scale_for``); SIFT (rotation-invariant; ORB lost thin text
  lines to its 31 px border and reached only ~80 % top-1), the ``KEYPOINTS`` strongest kept. Enlarging
  invents no detail: it helps only where SIFT would find too few keypoints (a 150 px window of a thumbnail
  scan gives 1–5 at its own size), and enlarging every image to ``SIDE`` made a cropped query (a 340 px
  caption, enlarged 1.5×) lose its original to page windows that show the same text at a higher resolution
  (bench/fingerprint.py --many).
- Descriptors stored as RootSIFT (Hellinger-normalised) quantised to uint8, positions as float16 pixels of
  the resized image: (K·128 + K·4) bytes per region, padded to K rows so a candidate set is one array; the
  resized image's width and height beside them (4 bytes), so that verification knows each picture's extent.
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

VERSION = "sift-rootsift-affine2"
SIDE = 512
MIN_SIDE = 448
KEYPOINTS = 256
DESC = 128
RATIO = 0.8
RANSAC_PX = 6.0
MIN_INLIERS = 6   # fewer inliers than this are treated as no geometric agreement at all


@dataclass
class LocalFeatures:
    """The keypoints of one image: ``points`` (K, 2) float16 pixels, ``descriptors`` (K, 128) uint8,
    ``count`` real rows (the rest is zero padding), ``size`` the (width, height) of the resized image the
    points lie in ((0, 0): not known, as for records written before sizes were kept)."""

    points: np.ndarray
    descriptors: np.ndarray
    count: int
    size: tuple[int, int] = (0, 0)


def _cv2():  # noqa: ANN202 - cv2 module
    import cv2

    return cv2


def scale_for(size: tuple[int, int]) -> float:
    """The factor an image of ``size`` (width, height) is resized by before SIFT."""
    longest = max(size)
    return SIDE / longest if longest > SIDE else max(1.0, MIN_SIDE / max(longest, 1))


def _grey(image: Image.Image) -> np.ndarray:
    if image.mode in ("RGBA", "LA", "P"):
        from .preprocess import to_rgb
        image = to_rgb(image)
    g = image.convert("L")
    s = scale_for(g.size)
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
    size = (int(g.shape[1]), int(g.shape[0]))
    if desc is None or not kps:
        return LocalFeatures(pts, out, 0, size)
    # nfeatures keeps the strongest, but ties at the cut can let a few more through.
    order = np.argsort([-k.response for k in kps], kind="stable")[:keypoints]
    d = desc[order].astype(np.float32)
    d = np.sqrt(d / np.maximum(d.sum(1, keepdims=True), 1e-9))  # RootSIFT: unit L2 norm, values in [0, 1]
    n = len(order)
    out[:n] = np.clip(np.rint(d * 255.0), 0, 255).astype(np.uint8)
    pts[:n] = np.array([kps[i].pt for i in order], dtype=np.float32)
    return LocalFeatures(pts, out, n, size)


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


def geometry(query: LocalFeatures, points: np.ndarray, descriptors: np.ndarray, counts: np.ndarray,
             sizes: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``inliers`` and, per candidate, its ``support``: the inliers times the share of each picture that
    the other one shows under the fitted affine model (``overlap``; 0 where there is no model). ``sizes``
    (N, 2): the candidates' image extents, (0, 0) where not known."""
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
    sizes = np.zeros((n_cand, 2), np.int64) if sizes is None else np.asarray(sizes, dtype=np.int64)
    for j in np.flatnonzero(good.sum(0) >= MIN_INLIERS):
        rows = np.flatnonzero(good[:, j])
        src = qpts[rows]
        dst = points[j, best[rows, j]].astype(np.float32)
        model, mask = cv2.estimateAffine2D(src, dst, method=cv2.RANSAC, ransacReprojThreshold=RANSAC_PX,
                                           maxIters=1000, confidence=0.99, refineIters=0)
        if model is not None and mask is not None:
            result[j] = int(mask.sum())
            support[j] = result[j] * overlap(model, qpts, points[j, :int(counts[j])].astype(np.float32),
                                             query.size, tuple(sizes[j]))
    return result, support


def _clipped_area(polygon: list[tuple[float, float]], width: float, height: float) -> float:
    """Area of a convex ``polygon`` inside the rectangle [0, width] × [0, height] (Sutherland–Hodgman)."""
    for axis, limit, below in ((0, 0.0, False), (0, width, True), (1, 0.0, False), (1, height, True)):
        def inside(point: tuple[float, float], axis: int = axis, limit: float = limit, below: bool = below) -> bool:
            return point[axis] <= limit if below else point[axis] >= limit

        kept: list[tuple[float, float]] = []
        for i, p in enumerate(polygon):
            q = polygon[(i + 1) % len(polygon)]
            if inside(p):
                kept.append(p)
            if inside(p) != inside(q):  # the edge crosses the limit (so p and q differ on this axis)
                t = (limit - p[axis]) / (q[axis] - p[axis])
                kept.append((p[0] + t * (q[0] - p[0]), p[1] + t * (q[1] - p[1])))
        polygon = kept
        if len(polygon) < 3:
            return 0.0
    return 0.5 * abs(sum(x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in zip(polygon, polygon[1:] + polygon[:1])))


def overlap(model: np.ndarray, query_points: np.ndarray, candidate_points: np.ndarray,
            query_size: tuple[int, int] = (0, 0), candidate_size: tuple[int, int] = (0, 0)) -> float:
    """How much of each picture the other one shows, under ``model`` (query → candidate, 2×3 affine): the
    share of the query that lands inside the candidate times the share of the candidate whose preimage lies
    inside the query. Shares of the pictures' areas where both image sizes are known, else shares of their
    keypoints within the keypoint extents.

    Inliers alone cannot tell the picture from a larger window that contains it (the window's share of
    the query's keypoints is as high) or from a detail of it (zoomed to the same size, a detail offers as
    many keypoints as the whole); both show only part of the other picture. Areas, not keypoints: the 256
    strongest keypoints of a window around a woodcut all lie on the woodcut, so by its keypoints the window
    looks like the woodcut alone. Among 100k windows of the query's own pages (bench/fingerprint.py --many)
    keypoint extents reached top-1 0.81, areas 0.90 (seed 42)."""
    if len(query_points) == 0 or len(candidate_points) == 0:
        return 0.0
    a, t = model[:, :2].astype(np.float64), model[:, 2].astype(np.float64)
    det = float(np.linalg.det(a))
    if not np.isfinite(det) or abs(det) < 1e-6:
        return 0.0
    if min(query_size) > 0 and min(candidate_size) > 0:
        # The query's rectangle maps to a parallelogram; what of it lies in the candidate's rectangle is
        # the shared part: its area over the parallelogram's is the query's share, over the candidate's
        # the candidate's.
        qw, qh = query_size
        corners = np.array([[0, 0], [qw, 0], [qw, qh], [0, qh]], dtype=np.float64) @ a.T + t
        shared = _clipped_area([(float(x), float(y)) for x, y in corners], *map(float, candidate_size))
        return shared * shared / (abs(det) * qw * qh * candidate_size[0] * candidate_size[1])

    def inside(p: np.ndarray, ref: np.ndarray) -> float:
        lo, hi = ref.min(0), ref.max(0)
        return float(np.mean(np.all((p >= lo) & (p <= hi), axis=1)))

    forward = query_points @ a.T + t
    backward = (candidate_points - t) @ np.linalg.inv(a).T
    return inside(forward, candidate_points) * inside(backward, query_points)


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

FILE_FIELDS = ("count", "points", "descriptors")


def _file_dtype(keypoints: int = KEYPOINTS) -> np.dtype:
    """One record of ``features.bin``: the layout the file has had since it was first written."""
    return np.dtype([("count", "<u2"), ("points", "<f2", (keypoints, 2)), ("descriptors", "u1", (keypoints, DESC))])


def record_dtype(keypoints: int = KEYPOINTS) -> np.dtype:
    """A record in memory and in a Ray job's shards: the file's fields and the image ``size`` (width,
    height; kept in ``sizes.bin`` beside the file)."""
    return np.dtype(_file_dtype(keypoints).descr + [("size", "<u2", (2,))])


def to_records(features: Sequence[LocalFeatures], keypoints: int = KEYPOINTS) -> np.ndarray:
    """Features as records of the stored layout (what ``LocalFeatureStore.read`` returns)."""
    rec = np.zeros(len(features), dtype=record_dtype(keypoints))
    for i, f in enumerate(features):
        rec[i] = (f.count, f.points, f.descriptors, f.size)
    return rec


SIZE_DTYPE = np.dtype(("<u2", (2,)))


def _write_rows(path: Path, start_row: int, row_bytes: int, data: bytes) -> None:
    """``data`` at row ``start_row`` of a file of fixed-size rows: rows past it are cut (a batch whose
    vectors never landed), missing rows before it are zeros (empty records)."""
    with open(path, "ab") as fh:
        offset = start_row * row_bytes
        if fh.tell() > offset:
            fh.truncate(offset)
        elif fh.tell() < offset:
            fh.write(bytes(offset - fh.tell()))
        fh.seek(offset)
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


class LocalFeatureStore:
    """Per-row local features of a vector set: ``<vector dir>/local/features.bin``, one fixed-size record per
    vector row (row r at byte r·record size), so the catalogue's region → row map serves both files, and
    ``sizes.bin``, each row's image size (4 bytes).

    The sizes have a file of their own so that a store written before they were kept stays readable as it
    is (its rows read as size (0, 0), and verification falls back to keypoint extents) and new rows append
    to it; re-embedding fills them in.

    Written *before* the vectors of the same batch: the files are first cut back to the vector file's row
    count (dropping records of a batch whose vectors never landed), so after a crash at any point every row
    that the catalogue references has its record. Rows past the end read as zero keypoints (no re-ranking).
    """

    def __init__(self, vector_dir: Path | str, keypoints: int = KEYPOINTS) -> None:
        self.dir = Path(vector_dir) / "local"
        self.path = self.dir / "features.bin"
        self.sizes_path = self.dir / "sizes.bin"
        self.dtype = record_dtype(keypoints)
        self.file_dtype = _file_dtype(keypoints)
        self.keypoints = keypoints

    def __len__(self) -> int:
        return (self.path.stat().st_size if self.path.exists() else 0) // self.file_dtype.itemsize

    def write_at(self, start_row: int, features: Sequence[LocalFeatures]) -> None:
        self.write_records_at(start_row, to_records(features, self.keypoints))

    def write_records_at(self, start_row: int, rec: np.ndarray) -> None:
        """``write_at`` for records already in memory (``to_records``), as a Ray job's shards hold them;
        records without a size (a shard of an older version) store size (0, 0)."""
        rows = np.zeros(len(rec), dtype=self.file_dtype)
        for field in FILE_FIELDS:
            rows[field] = rec[field]
        sizes = np.asarray(rec["size"], dtype="<u2") if "size" in (rec.dtype.names or ()) else \
            np.zeros((len(rec), 2), dtype="<u2")
        self.dir.mkdir(parents=True, exist_ok=True)
        _write_rows(self.path, start_row, self.file_dtype.itemsize, rows.tobytes())
        _write_rows(self.sizes_path, start_row, SIZE_DTYPE.itemsize, np.ascontiguousarray(sizes).tobytes())

    def read(self, rows: Sequence[int] | np.ndarray) -> np.ndarray:
        """Records of ``rows`` (``record_dtype``); missing rows are empty, missing sizes (0, 0)."""
        rows = np.asarray(rows, dtype=np.int64)
        out = np.zeros(len(rows), dtype=self.dtype)
        n = len(self)
        ok = (rows >= 0) & (rows < n)
        if ok.any():
            got = np.memmap(self.path, dtype=self.file_dtype, mode="r", shape=(n,))[rows[ok]]
            for field in FILE_FIELDS:
                out[field][ok] = got[field]
        sized = (self.sizes_path.stat().st_size if self.sizes_path.exists() else 0) // SIZE_DTYPE.itemsize
        ok &= rows < sized
        if ok.any():
            out["size"][ok] = np.memmap(self.sizes_path, dtype="<u2", mode="r", shape=(sized, 2))[rows[ok]]
        return out


def features_of(record: np.void) -> LocalFeatures:
    size = (int(record["size"][0]), int(record["size"][1])) if "size" in (record.dtype.names or ()) else (0, 0)
    return LocalFeatures(np.array(record["points"]), np.array(record["descriptors"]), int(record["count"]), size)


def inliers_against(query: LocalFeatures, records: np.ndarray) -> np.ndarray:
    """RANSAC inliers of ``query`` against stored records (from ``LocalFeatureStore.read``)."""
    return geometry_against(query, records)[0]


def geometry_against(query: LocalFeatures, records: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``geometry`` (inliers, support) of ``query`` against stored records."""
    sizes = records["size"] if "size" in (records.dtype.names or ()) else None
    return geometry(query, records["points"], records["descriptors"], records["count"].astype(np.int64), sizes)
