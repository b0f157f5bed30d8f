"""The paper's exact-retrieval protocol (CHR 2024, chr24.md §4a), with its crop bug fixed.

Each original gets one random augmentation: rotation U(-10°, 10°) (bicubic, white fill, canvas expanded),
then crops of U(0, 0.15) of the rotated size from each of the four sides (the paper's code never applied the
bottom crop; we do), then independent width and height scaling U(0.8, 1.2) with Lanczos. The augmented image
queries an index of the originals; the rank of its own original is recorded.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

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


def exact_retrieval(originals: Sequence[Image.Image], embed: Callable[[list[Image.Image]], np.ndarray],
                    seed: int = 42) -> RetrievalResult:
    """Embed the originals and one augmentation of each; rank all originals by inner product (exact)."""
    base = embed(list(originals))
    queries = embed(augment_all(originals, seed))
    return RetrievalResult(ranks_from_scores(queries @ base.T))
