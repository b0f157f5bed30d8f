"""ALTO reader: real files from ../shared/data (every dialect we hold) and small inline edge cases."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

from iiif_visual_search.records import LayoutError, LayoutPage
from iiif_visual_search.sources.alto import block_text
from iiif_visual_search.sources.layout import read_layout
from iiif_visual_search.sources.xmlsafe import parse_xml

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def shared(relative: str) -> Path:
    path = SHARED / relative
    if not path.exists():
        pytest.skip(f"shared test data not available: {path} (clone the bundle next to the repo)")
    return path


def read(relative: str) -> LayoutPage:
    return read_layout(shared(relative).read_bytes(), source=relative)


def alto(body: str, *, ns: str = "http://www.loc.gov/standards/alto/ns-v4#", unit: str = "pixel") -> bytes:
    xmlns = f' xmlns="{ns}"' if ns else ""
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><alto{xmlns}><Description><MeasurementUnit>{unit}'
        f"</MeasurementUnit></Description><Layout><Page ID='p1' WIDTH='1000' HEIGHT='2000'><PrintSpace>"
        f"{body}</PrintSpace></Page></Layout></alto>"
    ).encode()


def words(block_id: str, x: int, y: int, w: int, h: int, text: str) -> str:
    strings = "<SP/>".join(f'<String CONTENT="{word}"/>' for word in text.split())
    return (
        f'<TextBlock ID="{block_id}" HPOS="{x}" VPOS="{y}" WIDTH="{w}" HEIGHT="{h}">'
        f"<TextLine>{strings}</TextLine></TextBlock>"
    )


# --- eScriptorium / SegmOnto (Gallicorpora incunabula) -------------------------------------------


GALLICORPORA = [
    "bpt6k10516302_f10",
    "bpt6k1057722q_f17",
    "bpt6k1057726c_f11",
    "bpt6k1521441j_f8",
    "bpt6k15223596_f21",
    "btv1b8600143n_f21",
]


def test_gallicorpora_segmonto_zone_counts_match_the_data_notes() -> None:
    # research/data.md: 11 GraphicZone, 4 DropCapitalZone, 3 StampZone over the six pages.
    total: Counter[str] = Counter()
    for name in GALLICORPORA:
        page = read(f"gallicorpora-incunabula/{name}.xml")
        assert (page.format, page.version, page.unit) == ("alto", "4.2", "pixel")
        total.update(r.block_type for r in page.regions)
    assert total == Counter({"GraphicZone": 11, "DropCapitalZone": 4, "StampZone": 3})


def test_gallicorpora_text_only_page_has_no_regions() -> None:
    page = read("gallicorpora-incunabula/btv1b8600143n_f21.xml")
    assert page.regions == []
    assert (page.width, page.height) == (2017, 3109)
    assert page.image_filename == "btv1b8600143n_f21.jpg"


def test_segmonto_numbered_labels_and_text_zones() -> None:
    # MainZone#1 is text; GraphicZone#2 is a picture and its block_type drops the numbering.
    data = (
        '<alto xmlns="http://www.loc.gov/standards/alto/ns-v4#"><Tags>'
        '<OtherTag ID="T1" LABEL="MainZone#1"/><OtherTag ID="T2" LABEL="GraphicZone#2"/>'
        '<OtherTag ID="T3" LABEL="DamageZone"/><OtherTag ID="T4" LABEL="MusicZone"/></Tags>'
        '<Layout><Page WIDTH="100" HEIGHT="100"><PrintSpace>'
        '<TextBlock ID="a" TAGREFS="T1" HPOS="0" VPOS="0" WIDTH="50" HEIGHT="10"><TextLine>'
        '<String CONTENT="hello"/></TextLine></TextBlock>'
        '<TextBlock ID="b" TAGREFS="T2" HPOS="0" VPOS="20" WIDTH="50" HEIGHT="50"/>'
        '<TextBlock ID="c" TAGREFS="T3" HPOS="60" VPOS="20" WIDTH="10" HEIGHT="10"/>'
        '<TextBlock ID="d" TAGREFS="LT9 T4" HPOS="0" VPOS="80" WIDTH="50" HEIGHT="10"/>'
        "</PrintSpace></Page></Layout></alto>"
    ).encode()
    page = read_layout(data)
    assert [(r.block_id, r.block_type) for r in page.regions] == [("b", "GraphicZone"), ("d", "MusicZone")]
    assert page.regions[0].context_before == "hello"


# --- docWorks ComposedBlock TYPE="Illustration" ---------------------------------------------------


def test_nb_docworks_alto_1_2_composed_block_is_one_region_in_mm10() -> None:
    page = read("alto-variants/nb-norway/nb-docworks-alto-1.2-P31.xml")
    assert (page.version, page.unit, page.width, page.height) == ("1.2", "mm10", 1145, 1652)
    assert page.image_filename.endswith("digibok_2017112148128_I1.tif")
    # The GraphicalElement P31_CB00004_SUB inside is the same picture: no duplicate region.
    assert [(r.block_id, r.block_type, r.x, r.y, r.w, r.h) for r in page.regions] == [
        ("P31_CB00004", "ComposedBlock/Illustration", 47, 104, 984, 698)
    ]
    # docWorks lists the picture after all the text, but it heads the page: the text follows it.
    assert page.regions[0].context_before == ""
    assert "Grunnlagt 1767" in page.regions[0].context_after


def test_chronam_inch1200_composed_blocks_get_their_captions_below() -> None:
    page = read("alto-variants/chronam/ocr.xml")
    assert page.unit == "inch1200"
    assert Counter(r.block_type for r in page.regions) == {"ComposedBlock/Illustration": 3}
    captions = {r.block_id: r.caption for r in page.regions}
    assert captions["P2_CB00003"].startswith("FRESrDEXT ROOSEVELT.")
    assert captions["P2_CB00001"].startswith("EX-PRESTDENT CKOVEK CLEVE")


def test_text_inside_a_picture_composed_block_is_its_caption_not_context() -> None:
    body = (
        words("t1", 0, 0, 1000, 100, "before text")
        + '<ComposedBlock ID="cb" TYPE="Illustration" HPOS="0" VPOS="200" WIDTH="800" HEIGHT="600">'
        '<Illustration ID="inner" HPOS="0" VPOS="200" WIDTH="800" HEIGHT="500"/>'
        + words("cap", 0, 700, 800, 100, "Fig. 3 a bridge")
        + "</ComposedBlock>"
        + words("t2", 0, 1000, 1000, 100, "after text")
    )
    page = read_layout(alto(body))
    assert [(r.block_id, r.block_type) for r in page.regions] == [("cb", "ComposedBlock/Illustration")]
    region = page.regions[0]
    assert (region.context_before, region.caption, region.context_after) == (
        "before text",
        "Fig. 3 a bridge",
        "after text",
    )


# --- units, sizes, dialects -----------------------------------------------------------------------


def test_transkribus_mm10_page_size_and_leading_blank_line() -> None:
    page = read("alto-variants/nb-norway/transkribus-alto-mm10.xml")
    assert (page.unit, page.width, page.height) == ("mm10", 1393, 1805)
    assert page.regions == []


def test_kraken_invalid_measurement_unit_is_refused_with_the_reason() -> None:
    with pytest.raises(LayoutError, match="invalid MeasurementUnit 'mm'"):
        read("alto-variants/kraken-invalid/mu.xml")


def test_missing_measurement_unit_means_pixel_and_units_are_normalised() -> None:
    no_unit = b'<alto><Layout><Page WIDTH="10" HEIGHT="20"/></Layout></alto>'
    assert read_layout(no_unit).unit == "pixel"
    assert read_layout(alto("", unit=" MM10 ")).unit == "mm10"
    with pytest.raises(LayoutError, match="invalid MeasurementUnit 'cm'"):
        read_layout(alto("", unit="cm"))


def test_float_coordinates_are_kept() -> None:
    page = read("alto-variants/solr-ocrhighlighting/alto_float.xml")
    assert (page.unit, page.width, page.height) == ("inch1200", 11520, 15416)
    data = alto('<Illustration ID="i" HPOS="10.5" VPOS="20.25" WIDTH="30.75" HEIGHT="40.5"/>')
    (region,) = read_layout(data).regions
    assert (region.x, region.y, region.w, region.h) == (10.5, 20.25, 30.75, 40.5)


def test_prefixed_namespace_alto() -> None:
    page = read("alto-variants/solr-ocrhighlighting/alto_namespaced.xml")
    assert page.version == "2.0"
    assert Counter(r.block_type for r in page.regions) == {"Illustration": 5}
    inline = (
        b'<a:alto xmlns:a="http://www.loc.gov/standards/alto/ns-v3#"><a:Layout><a:Page WIDTH="9" HEIGHT="9">'
        b'<a:PrintSpace><a:GraphicalElement ID="g" HPOS="1" VPOS="2" WIDTH="3" HEIGHT="4"/></a:PrintSpace>'
        b"</a:Page></a:Layout></a:alto>"
    )
    assert [r.block_id for r in read_layout(inline).regions] == ["g"]


def test_non_namespaced_alto_inline() -> None:
    page = read_layout(alto('<Illustration ID="i" HPOS="1" VPOS="2" WIDTH="3" HEIGHT="4"/>', ns=""))
    assert (page.version, [r.block_type for r in page.regions]) == ("1", ["Illustration"])


def test_multi_page_alto_reads_the_first_page_only() -> None:
    page = read("alto-variants/solr-ocrhighlighting/alto.xml")
    assert (page.unit, page.width, page.height) == ("inch1200", 9148, 10928)


def test_versions_from_namespace_schema_version_and_dialect() -> None:
    assert read("alto-variants/solr-ocrhighlighting/alto_nospace.xml").version == "4.1"
    assert read("alto-variants/alto-tools/PPN720183197-PHYS_0004.xml").version == "3.0"
    assert read("bnf-abbyy-alto-thumbs/X/X0000001.xml").version == "3"  # alto_bnf-v2_0 under ns-v3
    assert read("bnf-lacroix-alto-crops/X0000001.xml").version == "bnf-alto_prod"


def test_page_without_layout_page_is_refused() -> None:
    with pytest.raises(LayoutError, match="no Layout/Page"):
        read_layout(b"<alto><Description/></alto>")


def test_region_without_coordinates_is_skipped_and_polygon_used_when_present() -> None:
    body = (
        '<Illustration ID="nobox"/>'
        '<Illustration ID="poly"><Shape><Polygon POINTS="10,20 50,20 50,80 10,80"/></Shape></Illustration>'
    )
    regions = read_layout(alto(body)).regions
    assert [(r.block_id, r.x, r.y, r.w, r.h) for r in regions] == [("poly", 10, 20, 40, 60)]


# --- BnF -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 2, 3])
def test_bnf_lacroix_illustration_size_equals_the_gallica_crop(n: int) -> None:
    page = read(f"bnf-lacroix-alto-crops/X000000{n}.xml")
    assert page.unit == "pixel" and page.image_filename == f"0000000{n}.tif"
    by_id = {r.block_id: r for r in page.regions}
    region = by_id[f"PAG_0000000{n}_IL000001"]
    with Image.open(shared(f"bnf-lacroix-alto-crops/expected_crops/220169-{n}-1.jpg")) as crop:
        assert (int(region.w), int(region.h)) == crop.size


def test_bnf_lacroix_iso_8859_1_with_bom_decodes_accents() -> None:
    page = read("bnf-lacroix-alto-crops/X0000002.xml")
    text = " ".join(r.context_before + r.context_after for r in page.regions)
    assert "Nîmes" in text and "Ã" not in text


def test_bnf_sample_declaring_latin1_over_utf8_bytes_is_read_as_utf8() -> None:
    # Bug found here: the altoxml BnF sample declares ISO-8859-1 without a BOM but holds UTF-8.
    page = read("alto-variants/altoxml-doc/ALTO-BnF-V2.xml")
    assert "SUPPLÉMENT" in page.regions[0].context_before
    assert "Ã" not in page.regions[0].context_before


def test_bnf_abbyy_blank_leaves_and_cover_are_page_sized_illustrations() -> None:
    page_sized = set()
    for n in range(1, 21):
        page = read(f"bnf-abbyy-alto-thumbs/X/X{n:07d}.xml")
        for r in page.regions:
            if r.block_type == "Illustration" and r.w >= 0.95 * page.width and r.h >= 0.95 * page.height:
                page_sized.add(n)
                assert len([x for x in page.regions if x.block_type == "Illustration"]) == 1
    assert page_sized == {1, 2, 3, 7}


# --- separators ------------------------------------------------------------------------------------


def test_ocrd_kant_graphical_elements_are_separator_rules() -> None:
    regions = [
        r for n in ("0017", "0020") for r in read(f"ocrd-kant-1784/PAGE_{n}_ALTO.xml").regions
    ]
    assert [r.block_type for r in regions] == ["GraphicalElement"] * 4
    for r in regions:
        assert r.w / r.h > 20  # long thin rules, not pictures
        assert r.h < 0.02 * 2083


# --- context text ----------------------------------------------------------------------------------


def test_context_before_after_and_caption_in_reading_order() -> None:
    body = (
        words("t1", 0, 0, 1000, 100, "first block")
        + words("t2", 0, 150, 1000, 100, "second block")
        + '<Illustration ID="ill" HPOS="100" VPOS="300" WIDTH="600" HEIGHT="400"/>'
        + words("cap", 150, 720, 400, 40, "Fig. 1 The harbour")  # 20 units below: a caption
        + words("t3", 0, 900, 1000, 100, "third block")
    )
    (region,) = read_layout(alto(body)).regions
    assert region.context_before == "first block second block"
    assert region.context_after == "Fig. 1 The harbour third block"
    assert region.caption == "Fig. 1 The harbour"


def test_caption_above_when_nothing_below_and_none_when_far_or_beside() -> None:
    picture = '<Illustration ID="i" HPOS="100" VPOS="300" WIDTH="600" HEIGHT="400"/>'
    above = words("cap", 100, 250, 600, 40, "Plate II") + picture
    assert read_layout(alto(above)).regions[0].caption == "Plate II"
    far = picture + words("t", 100, 900, 600, 40, "far away")
    assert read_layout(alto(far)).regions[0].caption == ""  # a gap of 200 > 3 % of 2000
    beside = picture + words("t", 750, 710, 400, 40, "next column")
    assert read_layout(alto(beside)).regions[0].caption == ""


def test_context_is_bounded_and_keeps_the_words_nearest_the_region() -> None:
    long_before = " ".join(f"b{i}" for i in range(400))
    long_after = " ".join(f"a{i}" for i in range(400))
    body = (
        words("t1", 0, 0, 1000, 100, long_before)
        + '<Illustration ID="i" HPOS="0" VPOS="500" WIDTH="100" HEIGHT="100"/>'
        + words("t2", 0, 1500, 1000, 100, long_after)
    )
    (region,) = read_layout(alto(body)).regions
    assert len(region.context_before) <= 300 and region.context_before.endswith("b398 b399")
    assert len(region.context_after) <= 300 and region.context_after.startswith("a0 a1 a2")
    assert not region.context_before.startswith(" ") and region.context_before.split()[0].startswith("b")


def test_hyphenation_is_joined() -> None:
    block = parse_xml(
        b'<TextBlock><TextLine><String CONTENT="the"/><SP/><String CONTENT="rail" SUBS_TYPE="HypPart1" '
        b'SUBS_CONTENT="railway"/><HYP CONTENT="-"/></TextLine><TextLine><String CONTENT="way" '
        b'SUBS_TYPE="HypPart2" SUBS_CONTENT="railway"/><SP/><String CONTENT="station"/></TextLine>'
        b'<TextLine><String CONTENT="steam"/><HYP CONTENT="-"/></TextLine><TextLine><String CONTENT="boat"/>'
        b"</TextLine></TextBlock>"
    )
    assert block_text(block) == "the railway station steamboat"
    assert block_text(block, limit=5) == "the railway station"  # whole lines, one beyond the limit
    assert block_text(block, limit=3, tail=True) == "steamboat"


def test_faune_captions_agree_with_gallicapix_legends() -> None:
    # GallicaPix's <leg> is the text block next to the picture; ours should start the same way.
    from lxml import etree

    folder = shared("alto-variants/bnf-image-retrieval/faune-entomologique-9612399")
    expected = etree.parse(str(folder / "EXPECTED_extracted_illustrations.xml")).getroot()
    legends = {i.get("n"): (i.findtext("leg") or "") for i in expected.iter("ill")}
    agree = checked = 0
    for n in range(17, 26):
        page = read(f"alto-variants/bnf-image-retrieval/faune-entomologique-9612399/X{n:07d}.xml")
        for k, region in enumerate((r for r in page.regions if r.block_type == "Illustration"), start=1):
            legend = legends[f"{n}-{k}"]
            if not legend:
                continue
            checked += 1
            head = legend.replace("'", " ").split()[:3]
            agree += region.caption.replace("'", " ").split()[:3] == head
    assert checked >= 10 and agree / checked >= 0.8, (agree, checked)


def test_zones_listed_after_the_text_get_the_text_around_them_on_the_page() -> None:
    """eScriptorium writes every SegmOnto zone after all the text; context must follow the page, not the file."""
    page = read_layout(shared("gallicorpora-incunabula/bpt6k10516302_f10.xml").read_bytes())
    woodcut = min((r for r in page.regions if r.block_type == "GraphicZone"), key=lambda r: r.y)
    # The woodcut heads the page, above the only text block: nothing before it, the text after it.
    assert woodcut.context_before == ""
    assert len(woodcut.context_after) > 50
