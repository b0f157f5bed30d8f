"""Crops cut from local page images by layout block id: labelled fixtures and ``--images``-style runs
without a catalogue. The layout's page size is mapped onto the image size (thumbnails, rescaled scans)."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from PIL import Image

from ..sources.layout import read_layout


@dataclass(frozen=True)
class LabelledCrop:
    layout: str  # path relative to the base directory
    image: str
    block_id: str
    label: str
    book: str

    @property
    def id(self) -> str:
        return f"{self.layout}#{self.block_id}"


def read_crop_list(path: Path) -> list[LabelledCrop]:
    """CSV with columns layout,image,block_id,label,book (paths relative to the data directory)."""
    with path.open(newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if r.get("layout") and not r["layout"].startswith("#")]
    return [LabelledCrop(r["layout"], r["image"], r["block_id"], r["label"], r["book"]) for r in rows]


@lru_cache(maxsize=64)
def _boxes(layout_path: Path, image_size: tuple[int, int]) -> dict[str, tuple[int, int, int, int]]:
    page = read_layout(layout_path.read_bytes(), source=str(layout_path))
    sx = image_size[0] / page.width if page.width else 1.0
    sy = image_size[1] / page.height if page.height else 1.0
    return {r.block_id: (round(r.x * sx), round(r.y * sy), round((r.x + r.w) * sx), round((r.y + r.h) * sy))
            for r in page.regions}


def cut_crop(base: Path, crop: LabelledCrop, longest: int | None = 512) -> Image.Image:
    """The RGB crop of ``crop.block_id``; shrunk to ``longest`` px on its long side (None: full size)."""
    with Image.open(base / crop.image) as page:
        boxes = _boxes(base / crop.layout, page.size)
        if crop.block_id not in boxes:
            raise KeyError(f"{crop.layout} has no graphical block {crop.block_id!r}")
        im = page.crop(boxes[crop.block_id]).convert("RGB")
    if longest and max(im.size) > longest:
        s = longest / max(im.size)
        im = im.resize((max(1, round(im.width * s)), max(1, round(im.height * s))), Image.Resampling.LANCZOS)
    return im


def images_in(directory: Path) -> list[tuple[str, str, Path]]:
    """(id, label, path) for every image under ``directory``; the label is the sub-folder name."""
    out = []
    for p in sorted(directory.rglob("*")):
        if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".bmp", ".gif"):
            rel = p.relative_to(directory)
            label = rel.parts[0] if len(rel.parts) > 1 else "image"
            out.append((str(rel), label, p))
    return out
