"""PAGE-XML reader: PRImA region-type samples (2010, 2013, 2018), DTA (2019), OCR-D and inline cases."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from iiif_visual_search.records import LayoutError, LayoutPage
from iiif_visual_search.sources.layout import read_layout

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
NS2019 = "http://schema.primaresearch.org/PAGE/gts/pagecontent/2019-07-15"


def read(relative: str) -> LayoutPage:
    path = SHARED / relative
    if not path.exists():
        pytest.skip(f"shared test data not available: {path} (clone the bundle next to the repo)")
    return read_layout(path.read_bytes(), source=relative)


def pcgts(body: str, reading_order: str = "") -> bytes:
    return (
        f'<PcGts xmlns="{NS2019}"><Page imageFilename="p.png" imageWidth="1000" imageHeight="2000">'
        f"{reading_order}{body}</Page></PcGts>"
    ).encode()


def text_region(rid: str, points: str, text: str) -> str:
    return (
        f'<TextRegion id="{rid}"><Coords points="{points}"/>'
        f"<TextEquiv><Unicode>{text}</Unicode></TextEquiv></TextRegion>"
    )


def test_region_types_2010_with_point_children() -> None:
    page = read("prima-page-examples/RegionTypes_2010-01-12.xml")
    assert (page.format, page.version, page.unit) == ("page", "2010", "pixel")
    assert (page.width, page.height, page.image_filename) == (700, 800, "RegionTypes.tif")
    got = [(r.block_id, r.block_type, r.x, r.y, r.w, r.h) for r in page.regions]
    # Table, maths, separator, noise and unknown regions are not pictures.
    assert got == [
        ("r181", "ImageRegion", 335, 28, 196, 117),
        ("r182", "LineDrawingRegion", 28, 193, 196, 117),
        ("r183", "GraphicRegion", 335, 194, 196, 117),
        ("r185", "ChartRegion", 338, 344, 196, 117),
    ]
    # Text there sits on Word level, in PlainText only.
    assert page.regions[0].context_before.endswith("It contains text lines, words and glyphs.")


def test_region_types_2013_adds_music_and_same_boxes_from_points() -> None:
    page = read("prima-page-examples/regiontypes_2013-07-15.xml")
    assert page.version == "2013"
    assert [r.block_type for r in page.regions] == [
        "ImageRegion",
        "LineDrawingRegion",
        "GraphicRegion",
        "ChartRegion",
        "MusicRegion",
    ]
    assert (page.regions[0].x, page.regions[0].y, page.regions[0].w, page.regions[0].h) == (335, 28, 196, 117)


def test_aletheia_poster_counts_and_captions() -> None:
    page = read("prima-page-examples/aletheiaexamplepage.xml")
    assert page.version == "2018"
    assert Counter(r.block_type for r in page.regions) == {"ImageRegion": 23, "GraphicRegion": 4}
    captions = {r.block_id: r.caption for r in page.regions}
    assert captions["r9"] == "Screenshot of Aletheia showing regions and properties"


def test_dta_graphic_region_counts() -> None:
    folder = SHARED / "dta-printedbooklayout"
    if not folder.is_dir():
        pytest.skip(f"shared test data not available: {folder}")
    counts = {p.stem: len(read(f"dta-printedbooklayout/{p.name}").regions) for p in sorted(folder.glob("*.xml"))}
    assert len(counts) == 16 and sum(counts.values()) == 20
    assert counts["altmann_elementarorganismen_1890_0061"] == 0  # the text-only negative
    assert counts["beck_eisen01_1884_0641"] == 3
    assert counts["busch_max_1865_0029"] == 2


def test_ocrd_kant_page_has_only_separators_so_no_regions() -> None:
    for n in ("0017", "0020"):
        page = read(f"ocrd-kant-1784/PAGE_{n}_PAGE.xml")
        assert page.regions == [] and page.width == 1457


def test_page2alto_pair_agrees_with_the_converted_alto() -> None:
    source = read("alto-variants/page2alto-converter/source_extra_regions.page.xml")
    converted = read("alto-variants/page2alto-converter/JPageConverter_extra_regions.alto.xml")
    (p,) = source.regions
    (a,) = converted.regions
    assert (p.block_id, p.block_type, a.block_id, a.block_type) == ("r_0_1", "ImageRegion", "r_0_1", "Illustration")
    # JPageConverter writes width as x1 - x0 + 1; the boxes agree to one pixel.
    assert (p.x, p.y) == (a.x, a.y) and abs(p.w - a.w) <= 1 and abs(p.h - a.h) <= 1
    assert (source.width, source.height) == (converted.width, converted.height)


def test_reading_order_decides_before_and_after() -> None:
    body = (
        text_region("late", "0,900 1000,900 1000,1000 0,1000", "read last")
        + '<ImageRegion id="img"><Coords points="0,300 500,300 500,700 0,700"/></ImageRegion>'
        + text_region("early", "0,0 1000,0 1000,100 0,100", "read first")
    )
    order = (
        '<ReadingOrder><OrderedGroup id="g"><RegionRefIndexed index="1" regionRef="late"/>'
        '<RegionRefIndexed index="0" regionRef="early"/><RegionRefIndexed index="2" regionRef="img"/>'
        "</OrderedGroup></ReadingOrder>"
    )
    (region,) = read_layout(pcgts(body, order)).regions
    assert (region.context_before, region.context_after) == ("read first read last", "")
    # Without a reading order, document order rules.
    (region,) = read_layout(pcgts(body)).regions
    assert (region.context_before, region.context_after) == ("read last", "read first")


def test_nested_regions_and_text_inside_a_picture() -> None:
    body = (
        '<TableRegion id="t"><Coords points="0,0 900,0 900,900 0,900"/>'
        '<ImageRegion id="nested"><Coords points="10,10 100,10 100,100 10,100"/></ImageRegion></TableRegion>'
        '<ImageRegion id="poster"><Coords points="0,1000 900,1000 900,1900 0,1900"/>'
        + text_region("label", "10,1800 300,1800 300,1850 10,1850", "Grand Concert")
        + "</ImageRegion>"
    )
    regions = read_layout(pcgts(body)).regions
    assert [(r.block_id, r.block_type) for r in regions] == [("nested", "ImageRegion"), ("poster", "ImageRegion")]
    assert regions[1].caption == "Grand Concert"
    assert regions[0].context_after == ""  # the label belongs to the poster, not the page text


def test_region_without_coords_is_skipped_and_bad_points_too() -> None:
    body = '<ImageRegion id="a"/><ImageRegion id="b"><Coords points="1,2 x,y"/></ImageRegion>'
    assert read_layout(pcgts(body)).regions == []


def test_page_without_page_element_is_refused() -> None:
    with pytest.raises(LayoutError, match="no Page element"):
        read_layout(f'<PcGts xmlns="{NS2019}"><Metadata/></PcGts>'.encode())
