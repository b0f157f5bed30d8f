"""Read the graphical regions of a PAGE-XML page (PRImA 2010, 2013, 2017, 2018 and 2019 schemas).

Regions: ImageRegion, GraphicRegion, ChartRegion, MusicRegion, MapRegion and LineDrawingRegion
(block_type = the element name). TableRegion, MathsRegion and ChemRegion are deliberately left out: their
content is text-like (OCR reads it), and a picture search over tables would mostly return tables of numbers.
SeparatorRegion, NoiseRegion, AdvertRegion and UnknownRegion are not pictures either.

Coordinates are the bounding box of ``Coords@points`` (2013+) or of ``Coords/Point`` (2010); PAGE is
always in image pixels. Regions nested inside other regions are found wherever they sit.
Context text comes from TextRegions, in the order of ``ReadingOrder`` where the file has one.
"""

from __future__ import annotations

import re

from lxml import etree

from iiif_visual_search.records import LayoutError, LayoutPage, LayoutRegion
from iiif_visual_search.sources import numbers
from iiif_visual_search.sources.context import PageText, RegionPlace, TextBlock

GRAPHIC_REGIONS = frozenset(
    {"ImageRegion", "GraphicRegion", "ChartRegion", "MusicRegion", "MapRegion", "LineDrawingRegion"}
)
_ITER_TAGS = ("{*}TextRegion", *(f"{{*}}{name}" for name in sorted(GRAPHIC_REGIONS)))
_NS_YEAR = re.compile(r"pagecontent/(\d{4})")


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _number(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _box(el: etree._Element) -> tuple[float, float, float, float] | None:
    """Bounding box (x0, y0, x1, y1) of the element's Coords polygon, or None without usable coordinates."""
    coords = el.find("{*}Coords")
    if coords is None:
        return None
    points = coords.get("points")
    try:
        if points is not None:
            nums = [float(v) for v in points.replace(",", " ").split()]
            xs, ys = nums[0::2], nums[1::2]
        else:
            pts = coords.findall("{*}Point")
            xs = [float(p.get("x")) for p in pts]  # type: ignore[arg-type]
            ys = [float(p.get("y")) for p in pts]  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    if not xs or len(xs) != len(ys):
        return None
    for value in (*xs, *ys):
        numbers.coordinate(value, f"<{_local(el.tag)} id={el.get('id')!r}> Coords")
    return min(xs), min(ys), max(xs), max(ys)


def _first_unicode(el: etree._Element) -> str:
    """Text of the element's own TextEquiv (the lowest ``index`` when there are several)."""
    equivs = el.findall("{*}TextEquiv")
    if not equivs:
        return ""
    if len(equivs) > 1:
        equivs.sort(key=lambda e: _number(e.get("index")) or 0.0)
    uni = equivs[0].findtext("{*}Unicode") or ""
    if not uni.strip():
        uni = equivs[0].findtext("{*}PlainText") or ""  # PRImA's 2010 samples fill only PlainText
    return " ".join(uni.split())


def region_text(region: etree._Element, limit: int | None = None, tail: bool = False) -> str:
    """A TextRegion's text: its own TextEquiv, else its lines' (else their words') joined by spaces.

    ``limit`` and ``tail`` are accepted for :class:`PageText` and ignored: PAGE text is one string
    per region already, so there is nothing to save by stopping early."""
    text = _first_unicode(region)
    if text:
        return text
    lines = (_line_text(line) for line in region.iterchildren("{*}TextLine"))
    return " ".join(t for t in lines if t)


def _line_text(line: etree._Element) -> str:
    # PAGE 2010 files often carry text only on Word (or Glyph) level.
    text = _first_unicode(line)
    if text:
        return text
    words = (_first_unicode(word) for word in line.iterchildren("{*}Word"))
    return " ".join(t for t in words if t)


def _ordered_refs(group: etree._Element, out: list[str]) -> None:
    """Append region ids of a ReadingOrder group, depth first, ordered groups sorted by ``index``."""
    children = [c for c in group if isinstance(c.tag, str)]
    if _local(group.tag).startswith("Ordered"):
        children.sort(key=lambda c: _number(c.get("index")) or 0.0)
    for child in children:
        ref = child.get("regionRef")
        if ref:
            out.append(ref)
        if "Group" in _local(child.tag):
            _ordered_refs(child, out)


def _reading_rank(page: etree._Element) -> dict[str, int]:
    order = page.find("{*}ReadingOrder")
    if order is None:
        return {}
    refs: list[str] = []
    _ordered_refs(order, refs)
    rank: dict[str, int] = {}
    for ref in refs:
        rank.setdefault(ref, len(rank))
    return rank


def read_page(root: etree._Element) -> LayoutPage:
    """The page of a PAGE-XML document as a :class:`LayoutPage` (unit ``pixel``)."""
    if _local(root.tag) != "PcGts":
        raise LayoutError(f"not PAGE-XML: root element is <{_local(root.tag)}>")
    page = root.find("{*}Page")
    if page is None:
        raise LayoutError("PAGE-XML has no Page element")
    width = numbers.size(_number(page.get("imageWidth")) or 0.0, "Page imageWidth")
    height = numbers.size(_number(page.get("imageHeight")) or 0.0, "Page imageHeight")
    match = _NS_YEAR.search(etree.QName(root).namespace or "")
    version = match.group(1) if match else ""

    # Everything of interest in document order; reading order is applied after.
    items: list[tuple[etree._Element, bool]] = []
    for el in page.iter(*_ITER_TAGS):
        items.append((el, _local(el.tag) != "TextRegion"))

    rank = _reading_rank(page)
    if rank:
        keys: list[float] = []
        last = -1.0
        for el, _ in items:
            rid = el.get("id")
            if rid in rank:
                last = float(rank[rid])
                keys.append(last)
            else:
                # Not in the reading order (graphics often are not): keep it right after its predecessor.
                keys.append(last + 0.5)
        order = sorted(range(len(items)), key=keys.__getitem__)
        items = [items[i] for i in order]

    graphic_elements = {el for el, is_graphic in items if is_graphic}
    regions: list[LayoutRegion] = []
    places: list[RegionPlace] = []
    place_of: dict[etree._Element, RegionPlace] = {}
    blocks: list[TextBlock] = []
    inside: list[tuple[etree._Element, etree._Element]] = []
    for el, is_graphic in items:
        box = _box(el)
        if is_graphic:
            if box is None:
                continue
            x0, y0, x1, y1 = box
            regions.append(LayoutRegion(el.get("id") or "", _local(el.tag), x0, y0, x1 - x0, y1 - y0))
            place = RegionPlace(x0, y0, x1, y1, len(blocks), ordered=el.get("id") in rank)
            places.append(place)
            place_of[el] = place
            continue
        if graphic_elements:
            owner = next((a for a in el.iterancestors() if a in graphic_elements), None)
            if owner is not None:
                inside.append((owner, el))
                continue
        x0, y0, x1, y1 = box if box is not None else (0.0, 0.0, 0.0, 0.0)
        blocks.append(TextBlock(x0, y0, x1, y1, el))
    # Text inside a picture region (a poster's lettering, a map's legend) is that picture's caption.
    for owner, el in inside:
        place = place_of.get(owner)
        text = region_text(el) if place is not None else ""
        if place is not None and text:
            place.own_text = f"{place.own_text} {text}" if place.own_text else text

    if regions:
        PageText(blocks, region_text, height).fill(regions, places)

    return LayoutPage(
        format="page",
        version=version,
        width=width,
        height=height,
        unit="pixel",
        image_filename=page.get("imageFilename") or "",
        regions=regions,
    )
