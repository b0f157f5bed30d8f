"""Real region crops from ../shared/data for the embedding tests: PAGE-XML regions (DTA, PRImA, OCR-D),
ALTO blocks of the Gallicorpora incunabula, and the ready-made BnF crops and genre icons.

Text regions are kept on purpose: a near-duplicate search has to tell apart many look-alike text blocks,
as a real collection's ALTO "illustrations" are often (chr24.md: 44 %) text or blank by mistake.
"""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
from lxml import etree
from PIL import Image

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
SKIP_TYPES = {"SeparatorRegion", "NoiseRegion"}
PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)


def require_data() -> Path:
    if not DATA.is_dir():
        pytest.skip(f"real test data not found at {DATA} (the shared data bundle is not checked out here)")
    return DATA


def _page_boxes(xml: Path) -> list[tuple[str, tuple[int, int, int, int]]]:
    root = etree.parse(str(xml), PARSER).getroot()
    out = []
    for el in root.iter():
        tag = etree.QName(el).localname if isinstance(el.tag, str) else ""
        if not tag.endswith("Region") or tag in SKIP_TYPES:
            continue
        coords = next((c for c in el if isinstance(c.tag, str) and etree.QName(c).localname == "Coords"), None)
        if coords is None:
            continue
        if coords.get("points"):
            pts = [tuple(int(float(v)) for v in p.split(",")) for p in coords.get("points").split()]
        else:
            pts = [(int(p.get("x")), int(p.get("y"))) for p in coords if isinstance(p.tag, str)]
        if not pts:
            continue
        xs, ys = [p[0] for p in pts], [p[1] for p in pts]
        out.append((f"{xml.stem}#{el.get('id')}", (min(xs), min(ys), max(xs), max(ys))))
    return out


def _alto_boxes(xml: Path) -> list[tuple[str, tuple[int, int, int, int]]]:
    root = etree.parse(str(xml), PARSER).getroot()
    out = []
    for el in root.iter("{*}TextBlock", "{*}Illustration", "{*}GraphicalElement", "{*}ComposedBlock"):
        try:
            x, y = float(el.get("HPOS")), float(el.get("VPOS"))
            w, h = float(el.get("WIDTH")), float(el.get("HEIGHT"))
        except (TypeError, ValueError):
            continue
        out.append((f"{xml.stem}#{el.get('ID')}", (int(x), int(y), int(x + w), int(y + h))))
    return out


def _shrink(im: Image.Image, longest: int) -> Image.Image:
    im = im.convert("RGB")
    if max(im.size) > longest:
        s = longest / max(im.size)
        im = im.resize((max(1, round(im.width * s)), max(1, round(im.height * s))), Image.Resampling.LANCZOS)
    return im


@functools.cache
def real_crops(min_side: int = 48, longest: int = 512) -> tuple[tuple[str, Image.Image], ...]:
    """(name, RGB crop) pairs, deterministic order, each at most ``longest`` px on its long side."""
    return tuple((name, im) for name, im, _ in _crops_with_places(min_side, longest))


def real_crop_places(min_side: int = 48, longest: int = 512) -> tuple[tuple[Path, tuple[int, int, int, int]], ...]:
    """Where each of ``real_crops`` was cut: (image file, box in its pixels; a ready-made crop is its whole file)."""
    return tuple(place for _, _, place in _crops_with_places(min_side, longest))


@functools.cache
def _crops_with_places(min_side: int, longest: int) -> tuple[tuple[str, Image.Image, tuple], ...]:
    data = require_data()
    crops: list[tuple[str, Image.Image, tuple]] = []
    pages: list[tuple[Path, list]] = []
    for xml in sorted((data / "dta-printedbooklayout").glob("*.xml")):
        pages.append((xml.with_suffix(".png"), _page_boxes(xml)))
    pages.append((data / "prima-page-examples" / "AletheiaExamplePage.jpg",
                  _page_boxes(data / "prima-page-examples" / "aletheiaexamplepage.xml")))
    for stem in ("0017", "0020"):
        pages.append((data / "ocrd-kant-1784" / f"INPUT_{stem}.tif",
                      _page_boxes(data / "ocrd-kant-1784" / f"PAGE_{stem}_PAGE.xml")))
    for xml in sorted((data / "gallicorpora-incunabula").glob("*.xml")):
        pages.append((xml.with_suffix(".jpg"), _alto_boxes(xml)))
    for image_path, boxes in pages:
        if not image_path.exists() or not boxes:
            continue
        with Image.open(image_path) as page:
            page = page.convert("RGB")
            for name, (x0, y0, x1, y1) in boxes:
                x0, y0 = max(0, x0), max(0, y0)
                x1, y1 = min(page.width, x1), min(page.height, y1)
                if x1 - x0 < min_side or y1 - y0 < min_side:
                    continue
                crops.append((name, _shrink(page.crop((x0, y0, x1, y1)), longest), (image_path, (x0, y0, x1, y1))))
    for path in sorted((data / "bnf-lacroix-alto-crops" / "expected_crops").glob("*.jpg")) + sorted(
            (data / "bnf-gallicapix-genres").glob("*.jpg")) + sorted((data / "bnf-abbyy-alto-thumbs" / "D").glob("*.jpg")):
        with Image.open(path) as im:
            crops.append((path.name, _shrink(im, longest), (path, (0, 0, im.width, im.height))))
    return tuple(crops)
