"""From a layout file's coordinates to integer canvas pixels, and the flags filters rely on."""

from __future__ import annotations

import math
from dataclasses import dataclass

from .records import LayoutPage, LayoutRegion

# Length of one unit in inches.
_UNIT_INCHES = {"mm10": 1 / 254.0, "inch1200": 1 / 1200.0}

# The paper drops regions whose longer side is 50 times the shorter: rules and separators.
ASPECT_RATIO_LIMIT = 50.0
# "tiny": a shorter side under this many canvas pixels, whatever the page size: too small for any model to
# read (a picture 98x97 on a large page is a decorated initial, and is not tiny).
TINY_SIDE = 16
PAGE_SIZED_FRACTION = 0.85
SEPARATOR_RATIO = 12.0
SEPARATOR_THIN_FRACTION = 0.01


@dataclass(frozen=True)
class CanvasBox:
    x: int
    y: int
    w: int
    h: int


class GeometryError(ValueError):
    pass


def page_scale(page: LayoutPage, canvas_w: int, canvas_h: int, dpi: float | None) -> tuple[float, float]:
    """Factors that turn layout units into canvas pixels.

    When the layout states its page size, that size is mapped onto the canvas: this holds whatever the unit
    and whatever resolution the OCR ran at (canvas and layout page often differ a little). Only when the page
    size is missing do we fall back to the unit and a DPI, assuming the canvas is the scan at that DPI.
    """
    if page.width > 0 and page.height > 0:
        return _finite_scale(canvas_w / page.width, canvas_h / page.height)
    if page.unit == "pixel":
        return 1.0, 1.0
    if not dpi:
        raise GeometryError(
            f"the layout uses {page.unit} and gives no page size, and no DPI is known "
            "(the manifest has no physical-dimensions service); pass --dpi"
        )
    factor = _UNIT_INCHES[page.unit] * dpi
    return _finite_scale(factor, factor)


def _finite_scale(sx: float, sy: float) -> tuple[float, float]:
    # A page of 1e-300 units, or a DPI of 1e308, maps every box to infinity.
    if not (math.isfinite(sx) and math.isfinite(sy)) or sx <= 0 or sy <= 0 or max(sx, sy) > 1e6:
        raise GeometryError(f"the layout's page size gives an absurd scale onto the canvas ({sx:g} x {sy:g})")
    return sx, sy


def to_canvas(region: LayoutRegion, sx: float, sy: float, canvas_w: int, canvas_h: int) -> CanvasBox | None:
    """Integer canvas box, clipped to the canvas; None when nothing of it lies on the canvas.

    Position and size are each rounded (not the two corners): a box of the same size in the layout keeps
    one size on the canvas wherever it sits, which is what a crop-size comparison expects.
    """
    if not all(math.isfinite(v) for v in (region.x, region.y, region.w, region.h)):
        raise GeometryError(f"block {region.block_id!r} has a coordinate that is not a finite number")
    x0 = max(0.0, region.x * sx)
    y0 = max(0.0, region.y * sy)
    x1 = min(float(canvas_w), (region.x + region.w) * sx)
    y1 = min(float(canvas_h), (region.y + region.h) * sy)
    ix, iy = int(round(x0)), int(round(y0))
    iw = min(int(round(x1 - x0)), canvas_w - ix)
    ih = min(int(round(y1 - y0)), canvas_h - iy)
    if iw < 1 or ih < 1:
        return None
    return CanvasBox(ix, iy, iw, ih)


def flags_for(box: CanvasBox, canvas_w: int, canvas_h: int) -> tuple[str, ...]:
    """Why a filter might skip this region. Regions are kept either way; flags only inform."""
    flags: list[str] = []
    long_side, short_side = max(box.w, box.h), max(1, min(box.w, box.h))
    ratio = long_side / short_side
    if ratio >= ASPECT_RATIO_LIMIT:
        flags.append("aspect")
    if min(box.w, box.h) < TINY_SIDE:
        flags.append("tiny")
    if box.w >= PAGE_SIZED_FRACTION * canvas_w and box.h >= PAGE_SIZED_FRACTION * canvas_h:
        flags.append("page")
    # A separator is a long thin line: thin relative to the page, long relative to its width.
    thin = short_side < SEPARATOR_THIN_FRACTION * max(canvas_w, canvas_h)
    if ratio >= SEPARATOR_RATIO and thin:
        flags.append("separator")
    return tuple(sorted(flags))
