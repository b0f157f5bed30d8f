"""Every XML file of ../shared/data through ``read_layout``; safe parsing; crops of real scans; GallicaPix oracle."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from lxml import etree
from PIL import Image

from iiif_visual_search.records import LayoutError, LayoutPage
from iiif_visual_search.sources.layout import read_layout
from iiif_visual_search.sources.xmlsafe import parse_xml

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"

needs_data = pytest.mark.skipif(
    not SHARED.is_dir(), reason=f"shared test data not available at {SHARED} (clone the bundle next to the repo)"
)

# Files that are not layout files, and the reason read_layout gives for each.
NOT_LAYOUT = {
    "bnf-abbyy-alto-thumbs/manifest.xml": "root element is <mets>",
    "ocrd-kant-1784/mets.xml": "root element is <mets>",
    "ocrd-indian-ferns/mets.xml": "root element is <mets>",
    "bnf-lacroix-alto-crops/X0220169.XML": "root element is <refNum>",
    "nln-chr24-image-labels/template.xml": "root element is <View>",
    # GallicaPix output: the oracle for the ALTO next to it, not a layout file.
    "alto-variants/bnf-image-retrieval/faune-entomologique-9612399/EXPECTED_extracted_illustrations.xml": (
        "root element is <analyseAlto>"
    ),
    "alto-variants/bnf-image-retrieval/lhumanite-1904-04-18/EXPECTED_extracted_illustrations.xml": (
        "root element is <analyseAlto>"
    ),
    "alto-variants/bnf-image-retrieval/restauration-maxillo-faciale-6519970/EXPECTED_extracted_illustrations.xml": (
        "root element is <analyseAlto>"
    ),
    # Deliberately invalid upstream fixture (kraken): the unit must be one of the three ALTO values.
    "alto-variants/kraken-invalid/mu.xml": "invalid MeasurementUnit 'mm'",
}


# Upstream files whose regions really do leave the page (the geometry step clamps them), with why.
OFF_PAGE = {
    # tesseract 4.1 sample: Illustration block_19 ends at x=545 on a Page WIDTH of 537.
    "alto-variants/alto-tools/PPN720183197-PHYS_0004.xml",
}


def xml_files() -> list[str]:
    if not SHARED.is_dir():
        return []
    return sorted(
        str(p.relative_to(SHARED))
        for p in SHARED.rglob("*")
        if p.is_file() and p.suffix.lower() == ".xml" and "schema" not in p.parts
    )


@needs_data
@pytest.mark.parametrize("relative", xml_files())
def test_every_xml_file_is_read_or_refused_for_the_stated_reason(relative: str) -> None:
    data = (SHARED / relative).read_bytes()
    if relative in NOT_LAYOUT:
        with pytest.raises(LayoutError, match=NOT_LAYOUT[relative].replace("(", r"\(")) as caught:
            read_layout(data, source=relative)
        assert str(caught.value).startswith(relative)  # the quarantine reason names the file
        return
    page = read_layout(data, source=relative)
    assert page.format in ("alto", "page")
    assert page.unit in ("pixel", "mm10", "inch1200")
    assert page.width > 0 and page.height > 0
    for r in page.regions:
        assert r.block_type and r.w >= 0 and r.h >= 0
        assert len(r.context_before) <= 300 and len(r.context_after) <= 300 and len(r.caption) <= 300
        if relative in OFF_PAGE:
            continue
        # Regions lie on the page (1 unit of slack for producers that round outward).
        assert -1 <= r.x and r.x + r.w <= page.width + 1, (r.block_id, r.x, r.w, page.width)
        assert -1 <= r.y and r.y + r.h <= page.height + 1, (r.block_id, r.y, r.h, page.height)


@needs_data
def test_the_sweep_covers_the_bundle() -> None:
    files = xml_files()
    layout = [f for f in files if f not in NOT_LAYOUT]
    assert len(layout) >= 85, len(layout)
    assert set(NOT_LAYOUT) <= set(files)


# --- GallicaPix oracle -----------------------------------------------------------------------------


def gallicapix_pages(folder: Path) -> dict[int, list[tuple[int, int, int, int]]]:
    root = etree.parse(str(folder / "EXPECTED_extracted_illustrations.xml")).getroot()
    return {
        int(page.get("ordre")): sorted(
            (int(i.get("x")), int(i.get("y")), int(i.get("w")), int(i.get("h"))) for i in page.iter("ill")
        )
        for page in root.iter("page")
    }


@needs_data
@pytest.mark.parametrize(
    "folder", ["faune-entomologique-9612399", "lhumanite-1904-04-18", "restauration-maxillo-faciale-6519970"]
)
def test_illustrations_equal_gallicapix_extraction(folder: str) -> None:
    base = SHARED / "alto-variants" / "bnf-image-retrieval" / folder
    expected = gallicapix_pages(base)
    checked = 0
    for path in sorted(base.glob("*.xml")):
        if path.name.startswith("EXPECTED"):
            continue
        number = int("".join(c for c in path.stem if c.isdigit()))
        page = read_layout(path.read_bytes())
        ours = sorted(
            (int(r.x), int(r.y), int(r.w), int(r.h)) for r in page.regions if r.block_type == "Illustration"
        )
        assert ours == expected[number], path.name
        checked += len(ours)
    assert checked > 0


# --- crops of real scans ---------------------------------------------------------------------------


def crops(page: LayoutPage, image: Path) -> list[np.ndarray]:
    with Image.open(image) as im:
        assert im.size == (page.width, page.height)  # these pairs are 1:1
        gray = im.convert("L")
        return [
            np.asarray(gray.crop((int(r.x), int(r.y), int(r.x + r.w), int(r.y + r.h))), dtype=np.float32)
            for r in page.regions
        ]


@needs_data
def test_gallicorpora_crops_hold_ink_and_negative_has_none() -> None:
    folder = SHARED / "gallicorpora-incunabula"
    stds = []
    for xml in sorted(folder.glob("*.xml")):
        page = read_layout(xml.read_bytes())
        if xml.stem == "btv1b8600143n_f21":
            assert page.regions == []
            continue
        stds += [float(c.std()) for c in crops(page, xml.with_suffix(".jpg"))]
    assert len(stds) == 18
    # A blank patch of these scans has a std-dev of a few grey levels; printed graphics far more.
    assert min(stds) > 10, stds


@needs_data
def test_dta_crops_hold_ink_and_negative_has_none() -> None:
    folder = SHARED / "dta-printedbooklayout"
    stds = []
    for xml in sorted(folder.glob("*.xml")):
        page = read_layout(xml.read_bytes())
        if xml.stem == "altmann_elementarorganismen_1890_0061":
            assert page.regions == []
            continue
        stds += [float(c.std()) for c in crops(page, xml.with_suffix(".png"))]
    assert len(stds) == 20
    assert min(stds) > 40, stds  # binarized: a graphic is a mix of black and white


# --- safe parsing, inline fixtures -----------------------------------------------------------------

MINIMAL_ALTO = (
    b'<alto xmlns="http://www.loc.gov/standards/alto/ns-v4#"><Layout><Page WIDTH="1" HEIGHT="1"/></Layout></alto>'
)


def test_entity_declarations_are_refused() -> None:
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE alto [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;">]>'
        b"<alto><Layout><Page WIDTH='1' HEIGHT='1'/></Layout>&b;</alto>"
    )
    with pytest.raises(LayoutError, match="declares XML entities"):
        read_layout(bomb)
    external = b'<!DOCTYPE alto [<!ENTITY x SYSTEM "file:///etc/passwd">]><alto>&x;</alto>'
    with pytest.raises(LayoutError, match="entities"):
        parse_xml(external)


def test_internal_subset_without_entities_is_refused_and_external_doctype_allowed() -> None:
    for subset in (b"<!ELEMENT alto ANY>", b'<!ATTLIST alto a CDATA "x">', b'<!NOTATION n SYSTEM "x">', b""):
        with pytest.raises(LayoutError, match="internal subset"):
            parse_xml(b"<!DOCTYPE alto [" + subset + b"]><alto/>")
    with pytest.raises(LayoutError, match="internal subset"):
        parse_xml(b'<!DOCTYPE alto PUBLIC "-//x//y" "http://x/a.dtd" [ ]><alto/>')
    # A plain external DOCTYPE is neither fetched nor a risk with no_network and load_dtd off.
    root = parse_xml(b'<!DOCTYPE alto SYSTEM "http://example.invalid/alto.dtd">' + MINIMAL_ALTO)
    assert root.tag.endswith("alto")


@pytest.mark.parametrize("data", [b"", b"   \n\t ", b"\xef\xbb\xbf", b"\xef\xbb\xbf\n  "])
def test_empty_documents_are_refused(data: bytes) -> None:
    with pytest.raises(LayoutError, match="empty document"):
        read_layout(data)


@pytest.mark.parametrize(
    "data",
    [
        MINIMAL_ALTO[:-20],  # truncated download
        b"%PDF-1.4 not xml at all",
        b"\x89PNG\r\n\x1a\n\x00\x00",
        b'{"json": true}',
    ],
)
def test_non_xml_and_truncated_documents_are_refused(data: bytes) -> None:
    with pytest.raises(LayoutError, match="not well-formed XML"):
        read_layout(data, source="https://example.org/f1.xml")


def test_wrong_root_is_refused_with_its_name() -> None:
    with pytest.raises(LayoutError, match=r"not ALTO or PAGE-XML: root element is <html>"):
        read_layout(b'<html xmlns="http://www.w3.org/1999/xhtml"><body/></html>')


def test_size_limit() -> None:
    with pytest.raises(LayoutError, match="too large"):
        read_layout(MINIMAL_ALTO, max_bytes=len(MINIMAL_ALTO) - 1)
    assert read_layout(MINIMAL_ALTO, max_bytes=len(MINIMAL_ALTO)).format == "alto"


def test_bom_and_declared_encodings() -> None:
    text = "Légende"
    body = f'<alto><Layout><Page WIDTH="1" HEIGHT="1"/></Layout><x>{text}</x></alto>'
    latin1_decl = '<?xml version="1.0" encoding="ISO-8859-1"?>'
    # BOM + ISO-8859-1 declaration + UTF-8 bytes (BnF): the BOM wins.
    assert parse_xml(b"\xef\xbb\xbf" + (latin1_decl + body).encode("utf-8")).findtext("x") == text
    # Real ISO-8859-1 bytes, as declared.
    assert parse_xml((latin1_decl + body).encode("latin-1")).findtext("x") == text
    # ISO-8859-1 declared, UTF-8 bytes, no BOM (BnF sample in the ALTO docs): read as UTF-8.
    assert parse_xml((latin1_decl + body).encode("utf-8")).findtext("x") == text
    # Whitespace before the declaration, with and without a BOM (NB/Transkribus).
    decl = '<?xml version="1.0" encoding="UTF-8"?>'
    assert parse_xml(("\n  " + decl + body).encode()).findtext("x") == text
    assert parse_xml(b"\xef\xbb\xbf\r\n" + (decl + body).encode()).findtext("x") == text
    # UTF-16 with its BOM.
    assert parse_xml(("\ufeff" + body).encode("utf-16-le")).findtext("x") == text


def test_non_bytes_input_is_refused() -> None:
    with pytest.raises(LayoutError, match="must be bytes"):
        parse_xml("<alto/>")  # type: ignore[arg-type]
