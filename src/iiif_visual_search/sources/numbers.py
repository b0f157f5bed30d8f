"""The numbers a layout file or manifest may state: finite, and no larger than any page ever scanned.

A value beyond these bounds is a broken or hostile file, not a big page: ``inf`` or ``1e400`` overflowed the
canvas mapping, ``NaN`` made a region run to the canvas edge, and a canvas 2**63 wide overflowed SQLite.
"""

from __future__ import annotations

import math

from iiif_visual_search.records import LayoutError

# A 2 m wide map scanned at 1200 dpi is under 100,000 pixels; mm10 and inch1200 units stay below this too.
MAX_COORDINATE = 10_000_000.0


def is_sane(value: float) -> bool:
    return math.isfinite(value) and abs(value) <= MAX_COORDINATE


def coordinate(value: float, what: str) -> float:
    """``value`` when finite and within ±MAX_COORDINATE; else LayoutError naming ``what``."""
    if not is_sane(value):
        raise LayoutError(f"{what} is {value!r}: coordinates must be finite numbers within ±{MAX_COORDINATE:.0f}")
    return value


def size(value: float, what: str) -> float:
    """A page or region size: a coordinate that is not negative."""
    coordinate(value, what)
    if value < 0:
        raise LayoutError(f"{what} is {value!r}: a size cannot be negative")
    return value
