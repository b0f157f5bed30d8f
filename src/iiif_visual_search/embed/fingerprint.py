"""``fingerprint``: a weight-free descriptor for near-duplicate search (the same woodcut or plate reprinted).

Design, for the paper's augmentations (rotation ±10° with white fill, crops up to 15 % per side, independent
width/height scaling 0.8–1.2):
- grey, trim near-white margins (removes the white corners a rotation adds and the paper margins a crop
  removes), robust autocontrast (1st–99th percentile), squash to 64×64 — squashing cancels the anisotropic
  scaling entirely;
- a gradient-orientation histogram (8 unsigned orientations, soft-binned, so a ±10° rotation moves mass by
  less than half a bin) pooled in 4×4 Gaussian-weighted cells whose width (0.6 cell) absorbs the shifts a crop
  causes; square-rooted (Hellinger) and L2-normalised;
- an 8×8 mean-removed thumbnail of the same image for the global layout;
- the two parts concatenated with equal weight and L2-normalised: 8·16 + 64 = 192 dimensions.
Measured on the 174 real crops of ../shared/data (tests/test_embed_fingerprint.py).

This vector is half of the candidate stage. Each region also gets local features (``local_features.py``:
SIFT keypoints, stored per vector row, their descriptors indexed by ``index/keypoints.py``). A query's
candidates are the vector's top ``RERANK_CANDIDATES`` and the ``VOTED_CANDIDATES`` regions whose descriptors
match most of the query's keypoints (``shortlist``); geometric verification orders them (``verify``). The
vector alone loses ~15 % of originals past its top 200 among 1.7k look-alike regions, the votes almost none
(bench/fingerprint.py). ``find_similar``, ``index.keypoints.rerank`` (the exact-retrieval protocol and
``ivs evaluate retrieval``) share these two functions. The descriptor's revision names both algorithms, so
vector sets written without local features are refused rather than silently searched without re-ranking.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy import ndimage

from . import local_features
from .models import ModelDescriptor, l2_normalise

VERSION = "fp1"
SIZE = 64
GRID = 4
ORIENTATIONS = 8
THUMB = 8
DIM = ORIENTATIONS * GRID * GRID + THUMB * THUMB
REVISION = f"{VERSION}+{local_features.VERSION}"
RERANK_CANDIDATES = 50   # global-vector candidates verified per query (~0.5–1 ms each on one core)
VOTED_CANDIDATES = 50    # descriptor-voting candidates verified besides them


def shortlist(global_rows: Sequence[int] | np.ndarray, voted_rows: Sequence[int] | np.ndarray) -> np.ndarray:
    """The candidates to verify: the global top ``RERANK_CANDIDATES`` (in their order), then the voted rows
    (best first, at most ``VOTED_CANDIDATES``) that are not among them."""
    g = np.asarray(global_rows, dtype=np.int64)[:RERANK_CANDIDATES]
    v = np.asarray(voted_rows, dtype=np.int64)[:VOTED_CANDIDATES]
    return np.concatenate([g, v[~np.isin(v, g)]])


def verify(query: local_features.LocalFeatures, records: np.ndarray,
           cosines: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Candidates' keypoint ``records`` checked against the query: (scores, inliers, support), the scores from
    ``local_features.rerank_scores`` (verified first, by support, then by cosine; all above any cosine)."""
    inl, support = local_features.geometry_against(query, records)
    return local_features.rerank_scores(inl, cosines, support), inl, support


def _unit(v: np.ndarray) -> np.ndarray:
    return v / (np.linalg.norm(v) + 1e-9)


def _trim(g: np.ndarray, threshold: float = 0.02) -> np.ndarray:
    ink = 1.0 - g
    rows = np.flatnonzero(ink.mean(1) > threshold)
    cols = np.flatnonzero(ink.mean(0) > threshold)
    if len(rows) < 4 or len(cols) < 4:
        return g
    return g[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]


def _to_u8(g: np.ndarray) -> Image.Image:
    return Image.fromarray(np.clip(g * 255.0 + 0.5, 0, 255).astype(np.uint8))


def fingerprint(image: Image.Image) -> np.ndarray:
    """One image → (DIM,) float32, L2-normalised."""
    if image.mode in ("RGBA", "LA", "P"):
        from .preprocess import to_rgb
        image = to_rgb(image)
    g = np.asarray(image.convert("L"), dtype=np.float32) / 255.0
    g = _trim(g)
    lo, hi = np.percentile(g, 1), np.percentile(g, 99)
    g = np.clip((g - lo) / max(hi - lo, 1e-3), 0.0, 1.0)
    g = np.asarray(_to_u8(g).resize((SIZE, SIZE), Image.Resampling.BOX), dtype=np.float32) / 255.0
    g = ndimage.gaussian_filter(g, 1.0)
    gx, gy = ndimage.sobel(g, 1), ndimage.sobel(g, 0)
    mag = np.hypot(gx, gy)
    pos = np.mod(np.arctan2(gy, gx), np.pi) / np.pi * ORIENTATIONS
    b0 = np.floor(pos).astype(np.int64) % ORIENTATIONS
    frac = pos - np.floor(pos)
    hist = np.zeros((ORIENTATIONS, SIZE, SIZE), dtype=np.float32)
    ii, jj = np.indices((SIZE, SIZE))
    np.add.at(hist, (b0, ii, jj), mag * (1 - frac))
    np.add.at(hist, ((b0 + 1) % ORIENTATIONS, ii, jj), mag * frac)
    cell = SIZE / GRID
    centres = ((np.arange(GRID) + 0.5) * cell).astype(np.int64)
    pooled = np.stack([ndimage.gaussian_filter(h, cell * 0.6)[np.ix_(centres, centres)] for h in hist])
    hog = _unit(np.sqrt(pooled.ravel()))
    thumb = np.asarray(_to_u8(g).resize((THUMB, THUMB), Image.Resampling.BOX), dtype=np.float32).ravel()
    thumb = _unit(thumb - thumb.mean())
    return _unit(np.concatenate([hog, thumb])).astype(np.float32)


@dataclass
class Prepared:
    """What ``FingerprintEmbedder.prepare`` hands to ``embed_prepared``: the global vector and the local
    features, both computed in the worker thread."""

    vector: np.ndarray
    local: local_features.LocalFeatures


class FingerprintEmbedder:
    """The ``fingerprint`` model: no weights, CPU only, deterministic."""

    supports_text = False

    def __init__(self) -> None:
        self.descriptor = ModelDescriptor(
            name="fingerprint", key="fingerprint", architecture="fingerprint", source="", revision=REVISION,
            dim=DIM, output="soft-pooled gradient-orientation histogram 4x4x8 + 8x8 thumbnail",
            preprocessing={"mode": "trim-white, autocontrast 1-99%, squash", "height": SIZE, "width": SIZE,
                           "local": {"algorithm": local_features.VERSION, "side": local_features.SIDE,
                                     "min_side": local_features.MIN_SIDE,
                                     "keypoints": local_features.KEYPOINTS}},
        )

    @property
    def name(self) -> str:
        return "fingerprint"

    def prepare(self, image: Image.Image) -> Prepared:
        return Prepared(fingerprint(image), local_features.extract(image))

    def embed_prepared(self, batch: list[Prepared] | list[np.ndarray]) -> np.ndarray:
        if not batch:
            return np.zeros((0, DIM), dtype=np.float32)
        return l2_normalise(np.stack([b.vector if isinstance(b, Prepared) else b for b in batch]))

    def embed_images(self, images: list[Image.Image]) -> np.ndarray:
        """Global vectors only (the candidate stage); ``extract_local`` gives the re-ranking half."""
        return l2_normalise(np.stack([fingerprint(im) for im in images])) if images else \
            np.zeros((0, DIM), dtype=np.float32)

    def extract_local(self, images: list[Image.Image]) -> list[local_features.LocalFeatures]:
        return [local_features.extract(im) for im in images]

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        from .models import EmbedderUnavailable
        raise EmbedderUnavailable("fingerprint is an image-only descriptor: text search needs siglip or clip")
