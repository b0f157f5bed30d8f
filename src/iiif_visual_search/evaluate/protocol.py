"""The paper's exact-retrieval protocol (CHR 2024, chr24.md §4a), with its crop bug fixed.

Each original gets one random augmentation: rotation U(-10°, 10°) (bicubic, white fill, canvas expanded),
then crops of U(0, 0.15) of the rotated size from each of the four sides (the paper's code never applied the
bottom crop; we do), then independent width and height scaling U(0.8, 1.2) with Lanczos. The augmented image
queries an index of the originals; the rank of its own original is recorded.

An embedder with local features (``fingerprint``: ``extract_local``) is scored the way its search orders
hits (``search_scores``, re-ranking with ``index.keypoints.rerank``): candidates by vector and by descriptor votes, then geometric
verification. ``exact_retrieval``, ``ivs evaluate retrieval`` and ``bench/fingerprint.py`` all go through it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class Augmentation:
    rotation: float
    crop_left: float
    crop_right: float
    crop_top: float
    crop_bottom: float
    width_scale: float
    height_scale: float

    @classmethod
    def draw(cls, rng: np.random.Generator) -> Augmentation:
        return cls(float(rng.uniform(-10, 10)), *(float(v) for v in rng.uniform(0, 0.15, 4)),
                   *(float(v) for v in rng.uniform(0.8, 1.2, 2)))

    def apply(self, image: Image.Image) -> Image.Image:
        im = image.convert("RGB").rotate(self.rotation, resample=Image.Resampling.BICUBIC,
                                         fillcolor="white", expand=True)
        w, h = im.size
        box = (round(self.crop_left * w), round(self.crop_top * h),
               round(w - self.crop_right * w), round(h - self.crop_bottom * h))
        im = im.crop(box)
        size = (max(1, round(im.width * self.width_scale)), max(1, round(im.height * self.height_scale)))
        return im.resize(size, Image.Resampling.LANCZOS)


def augment_all(images: Sequence[Image.Image], seed: int = 42) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    return [Augmentation.draw(rng).apply(im) for im in images]


@dataclass(frozen=True)
class RetrievalResult:
    ranks: np.ndarray  # 0-based rank of each query's original, -1 when not among the ranked

    def top(self, k: int) -> float:
        return float(np.mean((self.ranks >= 0) & (self.ranks < k)))

    def summary(self) -> dict[str, float]:
        return {f"top{k}": self.top(k) for k in (1, 5, 10, 50)}


def ranks_from_scores(scores: np.ndarray) -> np.ndarray:
    """scores[i, j] = similarity of query i to original j; query i's target is original i."""
    order = np.argsort(-scores, axis=1, kind="stable")
    return np.argmax(order == np.arange(len(scores))[:, None], axis=1)


class ImageEmbedder(Protocol):
    def embed_images(self, images: list[Image.Image]) -> np.ndarray: ...


def reranks(embedder: Any) -> bool:
    """Whether ``embedder``'s search re-ranks by local features (the fingerprint does)."""
    return hasattr(embedder, "extract_local")


def search_scores(embedder: Any, queries: Iterable[Image.Image], gallery: Iterable[Image.Image],
                  scores: np.ndarray) -> np.ndarray:
    """``scores`` (queries × gallery inner products) as the embedder's search orders them: re-ranked by
    local features where ``reranks(embedder)``, else unchanged. Images are read one at a time."""
    if not reranks(embedder):
        return scores
    q = [embedder.extract_local([im])[0] for im in queries]
    g = [embedder.extract_local([im])[0] for im in gallery]
    from ..index.keypoints import rerank

    return rerank(q, g, scores)


def exact_retrieval(originals: Sequence[Image.Image],
                    embed: ImageEmbedder | Callable[[list[Image.Image]], np.ndarray], seed: int = 42, *,
                    rerank: bool = True) -> RetrievalResult:
    """Embed the originals and one augmentation of each; rank all originals (exact search). ``embed``: an
    embedder (its search's ranking: re-ranked where it has local features, unless ``rerank`` is False) or
    a function from images to vectors (inner product)."""
    fn = embed.embed_images if hasattr(embed, "embed_images") else embed
    augmented = augment_all(originals, seed)
    scores = fn(augmented) @ fn(list(originals)).T
    if rerank:
        scores = search_scores(embed, augmented, originals, scores)
    return RetrievalResult(ranks_from_scores(scores))
