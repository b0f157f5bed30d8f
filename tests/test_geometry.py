"""Layout units to canvas pixels."""

from __future__ import annotations

import pytest

from iiif_visual_search.geometry import CanvasBox, GeometryError, flags_for, page_scale, to_canvas
from iiif_visual_search.records import LayoutPage, LayoutRegion


def page(width: float, height: float, unit: str = "pixel") -> LayoutPage:
    return LayoutPage(format="alto", version="4", width=width, height=height, unit=unit)


def test_page_size_maps_onto_the_canvas_whatever_the_unit() -> None:
    # NLN: mm10 page of 1393×1805 on a 2194×2843 canvas (400 dpi).
    sx, sy = page_scale(page(1393, 1805, "mm10"), 2194, 2843, dpi=400)
    assert sx == pytest.approx(2194 / 1393) and sy == pytest.approx(2843 / 1805)
    assert sx == pytest.approx(400 / 254, rel=0.002)


def test_dpi_is_used_only_when_the_page_size_is_missing() -> None:
    assert page_scale(page(0, 0, "inch1200"), 1000, 1000, dpi=300) == (0.25, 0.25)
    assert page_scale(page(0, 0, "mm10"), 1000, 1000, dpi=254) == pytest.approx((1.0, 1.0))
    assert page_scale(page(0, 0, "pixel"), 1000, 1000, dpi=None) == (1.0, 1.0)
    with pytest.raises(GeometryError, match="--dpi"):
        page_scale(page(0, 0, "mm10"), 1000, 1000, dpi=None)


def test_boxes_round_position_and_size_and_clip_to_the_canvas() -> None:
    region = LayoutRegion("b", "Illustration", 10.4, 20.6, 100.5, 50.2)
    assert to_canvas(region, 1.0, 1.0, 1000, 1000) == CanvasBox(10, 21, 100, 50)
    # Same size anywhere on the page.
    moved = LayoutRegion("b", "Illustration", 10.6, 20.4, 100.5, 50.2)
    box = to_canvas(moved, 1.0, 1.0, 1000, 1000)
    assert (box.w, box.h) == (100, 50)
    # Past the right and bottom edges (a real ALTO quirk): clipped.
    assert to_canvas(LayoutRegion("b", "I", 950, 980, 100, 100), 1.0, 1.0, 1000, 1000) == CanvasBox(950, 980, 50, 20)
    # Negative origin: clipped to 0.
    assert to_canvas(LayoutRegion("b", "I", -10, -10, 50, 50), 1.0, 1.0, 1000, 1000) == CanvasBox(0, 0, 40, 40)
    # Entirely off the canvas or degenerate: no box.
    assert to_canvas(LayoutRegion("b", "I", 1200, 10, 50, 50), 1.0, 1.0, 1000, 1000) is None
    assert to_canvas(LayoutRegion("b", "I", 10, 10, 0.2, 50), 1.0, 1.0, 1000, 1000) is None


def test_flags() -> None:
    assert flags_for(CanvasBox(0, 0, 1000, 10), 1000, 1500) == ("aspect", "separator", "tiny")
    assert flags_for(CanvasBox(0, 0, 990, 1480), 1000, 1500) == ("page",)
    assert flags_for(CanvasBox(100, 100, 300, 200), 1000, 1500) == ()
    assert "tiny" in flags_for(CanvasBox(100, 100, 10, 12), 1000, 1500)
    # 'tiny' is an absolute shorter side, not a share of the page: a 98x97 decorated initial on a large page
    # was flagged (and so not fetched, and hidden) by the old area rule.
    assert flags_for(CanvasBox(500, 500, 98, 97), 5000, 7000) == ()
    assert flags_for(CanvasBox(500, 500, 30, 15), 5000, 7000) == ("tiny",)
