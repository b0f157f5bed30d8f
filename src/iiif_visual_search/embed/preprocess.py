"""Batched image preprocessing that reproduces the Hugging Face image processors of our three architectures.

The HF processors (PIL backend) resize a uint8 RGB PIL image with PIL, centre-crop, then rescale and normalise
one image at a time in float64/float32 numpy. We keep the PIL resize (so the pixels are identical) but do it
in worker threads, stack the uint8 results, and rescale+normalise the whole batch at once in torch, on the
device that runs the model. ``PreprocessSpec.from_hf`` reads the parameters from a checkpoint's processor, so
a fine-tuned checkpoint with another size or mean/std is preprocessed the way it was trained.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from PIL import Image

_RESAMPLE_NAMES = {0: "nearest", 1: "lanczos", 2: "bilinear", 3: "bicubic", 4: "box", 5: "hamming"}
_RESAMPLE_CODES = {v: k for k, v in _RESAMPLE_NAMES.items()}

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class PreprocessSpec:
    """How one architecture turns a picture into ``pixel_values``.

    mode "squash": resize to (height, width) ignoring the aspect ratio.
    mode "shortest_edge": resize so the short side is ``shortest_edge`` (long side truncated as HF does),
    then centre-crop (height, width).
    """

    mode: str
    height: int
    width: int
    shortest_edge: int = 0
    resample: str = "bicubic"
    rescale_factor: float = 1 / 255
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PreprocessSpec:
        d = dict(d)
        d["mean"], d["std"] = tuple(d["mean"]), tuple(d["std"])
        return cls(**d)

    @classmethod
    def from_hf(cls, processor: Any) -> PreprocessSpec:
        """Read the parameters of a HF image processor (slow, PIL or fast variant)."""
        size = _as_dict(getattr(processor, "size", None))
        crop = _as_dict(getattr(processor, "crop_size", None))
        resample = getattr(processor, "resample", 2)
        resample_code = int(getattr(resample, "value", resample)) if not isinstance(resample, str) else None
        resample_name = _RESAMPLE_NAMES.get(resample_code, "bilinear") if resample_code is not None else resample
        mean = tuple(float(v) for v in (getattr(processor, "image_mean", None) or (0.5, 0.5, 0.5)))
        std = tuple(float(v) for v in (getattr(processor, "image_std", None) or (0.5, 0.5, 0.5)))
        rescale = float(getattr(processor, "rescale_factor", 1 / 255) or 1 / 255)
        if not getattr(processor, "do_normalize", True):
            mean, std = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
        if size.get("shortest_edge"):
            edge = int(size["shortest_edge"])
            do_crop = getattr(processor, "do_center_crop", False) and crop
            h = int(crop["height"]) if do_crop else edge
            w = int(crop["width"]) if do_crop else edge
            return cls("shortest_edge", h, w, edge, resample_name, rescale, mean, std)  # type: ignore[arg-type]
        return cls("squash", int(size["height"]), int(size["width"]), 0, resample_name, rescale, mean, std)  # type: ignore[arg-type]


def _as_dict(size: Any) -> dict[str, Any]:
    if size is None:
        return {}
    if isinstance(size, dict):
        return {k: v for k, v in size.items() if v is not None}
    return {k: getattr(size, k) for k in ("height", "width", "shortest_edge", "longest_edge")
            if getattr(size, k, None) is not None}


SIGLIP_SPEC = PreprocessSpec("squash", 256, 256, resample="bicubic")
CLIP_SPEC = PreprocessSpec("shortest_edge", 224, 224, 224, "bicubic", mean=CLIP_MEAN, std=CLIP_STD)
VIT_SPEC = PreprocessSpec("squash", 224, 224, resample="bilinear")  # ViTImageProcessor default is BILINEAR


def to_rgb(image: Image.Image) -> Image.Image:
    """RGB the way HF's ``convert_rgb`` does it: transparent areas become white, not black."""
    if image.mode == "RGB":
        return image
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def resize_crop(image: Image.Image, spec: PreprocessSpec) -> np.ndarray:
    """One image → uint8 array (H, W, 3). Thread-safe; this is the part that runs in the worker pool."""
    image = to_rgb(image)
    resample = _RESAMPLE_CODES[spec.resample]
    if spec.mode == "squash":
        out = image.resize((spec.width, spec.height), resample=resample)
        return np.asarray(out, dtype=np.uint8)
    w, h = image.size
    short, long = (w, h) if w <= h else (h, w)
    new_short, new_long = spec.shortest_edge, int(spec.shortest_edge * long / short)
    new_w, new_h = (new_short, new_long) if w <= h else (new_long, new_short)
    arr = np.asarray(image.resize((new_w, new_h), resample=resample), dtype=np.uint8)
    # Same arithmetic as transformers' center_crop: top/left rounded down after halving.
    top = (new_h - spec.height) // 2
    left = (new_w - spec.width) // 2
    if top < 0 or left < 0:
        # Image smaller than the crop: HF pads with zeros around it; do the same.
        pad = np.zeros((max(new_h, spec.height), max(new_w, spec.width), 3), dtype=np.uint8)
        ph, pw = (pad.shape[0] - new_h) // 2, (pad.shape[1] - new_w) // 2
        pad[ph:ph + new_h, pw:pw + new_w] = arr
        arr, top, left = pad, (pad.shape[0] - spec.height) // 2, (pad.shape[1] - spec.width) // 2
    return arr[top:top + spec.height, left:left + spec.width]


@dataclass(frozen=True)
class SpecPreparer:
    """The CPU half of an ``HFEmbedder`` (its ``prepare``) without the model: what decode workers that never
    load the weights run (a Ray job's preprocessing tasks)."""

    spec: PreprocessSpec

    def prepare(self, image: Image.Image) -> np.ndarray:
        return resize_crop(image, self.spec)


def normalise_batch(batch: np.ndarray | torch.Tensor, spec: PreprocessSpec,
                    device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """uint8 (N, H, W, 3) → normalised (N, 3, H, W) in ``dtype`` on ``device``.

    The uint8 batch travels to the device (4× less than float32) and is normalised there in float32,
    then cast, so the values match HF's float32 result before the cast.
    """
    t = torch.as_tensor(batch).to(device, non_blocking=True)
    t = t.permute(0, 3, 1, 2).to(torch.float32)
    mean = torch.tensor(spec.mean, dtype=torch.float32, device=t.device).view(1, 3, 1, 1)
    std = torch.tensor(spec.std, dtype=torch.float32, device=t.device).view(1, 3, 1, 1)
    t = (t * spec.rescale_factor - mean) / std
    return t.to(dtype).contiguous()


def preprocess(images: list[Image.Image], spec: PreprocessSpec) -> torch.Tensor:
    """Convenience: the whole pipeline on the calling thread, float32 on the CPU."""
    if not images:
        return torch.empty((0, 3, spec.height, spec.width), dtype=torch.float32)
    return normalise_batch(np.stack([resize_crop(im, spec) for im in images]), spec)
