"""Read the graphical regions of an ALTO page (versions 1.x to 4.x, every producer dialect we have met).

Elements are matched by local name (lxml's ``{*}`` wildcard), never by one namespace: ALTO comes without a
namespace (1.x, CCS), under ns-v2/v3/v4, under BnF's ``alto_prod`` namespace, and with prefixes.

Graphical regions, in the file's own unit:

- ``<Illustration>`` and ``<GraphicalElement>`` (block_type = the element name). Many GraphicalElements are
  separator rules; they are kept, and the pipeline flags them later.
- ``<ComposedBlock TYPE="Illustration">`` (docWorks: NB, BnL, LoC) gives one region
  ``ComposedBlock/Illustration``; the GraphicalElement it wraps is the same picture and is not repeated.
- eScriptorium/SegmOnto zones: any block whose ``TAGREFS`` point at an ``<OtherTag LABEL=...>`` naming a
  graphical zone type (see :data:`GRAPHIC_ZONES`); block_type = the label without its ``#n`` numbering.

Only the first ``<Page>`` is read; ALTO files with several pages are rare and each canvas has its own.
"""

from __future__ import annotations

import logging
import re

from lxml import etree

from iiif_visual_search.records import LayoutError, LayoutPage, LayoutRegion
from iiif_visual_search.sources import numbers
from iiif_visual_search.sources.context import PageText, RegionPlace, TextBlock

log = logging.getLogger(__name__)

UNITS = ("pixel", "mm10", "inch1200")

# SegmOnto zone types that are pictures or decoration rather than running text. MainZone, MarginTextZone,
# NumberingZone, RunningTitleZone, QuireMarksZone and TitlePageZone are text; DamageZone,
# DigitizationArtefactZone and CustomZone mark neither text nor a picture, so they are not regions.
# "Illustration" is the generic label older eScriptorium block-type lists use.
GRAPHIC_ZONES = frozenset(
    {
        "GraphicZone",
        "DropCapitalZone",
        "MusicZone",
        "TableZone",
        "StampZone",
        "SealZone",
        "DecorationZone",
        "FigureZone",
        "Illustration",
    }
)

# ComposedBlock TYPE values (compared case-insensitively) that mean "this block is a picture".
GRAPHIC_COMPOSED_TYPES = frozenset({"illustration", "image", "photo", "picture", "figure", "map", "graphic"})

# Elements under a Page that hold no blocks: not worth descending into.
_LEAVES = frozenset({"Shape", "TextLine", "String", "SP", "HYP", "Polygon", "Ellipse", "Circle"})

_SCHEMA_VERSION = re.compile(r"^\d+(\.\d+)*$")
_XSD_VERSION = re.compile(r"alto[-_]?v?(\d+)[-_.](\d+)", re.IGNORECASE)
_NS_VERSION = re.compile(r"ns-v(\d+)")
_XSI = "{http://www.w3.org/2001/XMLSchema-instance}"


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _version(root: etree._Element) -> str:
    declared = (root.get("SCHEMAVERSION") or "").strip()
    if _SCHEMA_VERSION.match(declared):
        return declared
    for attr in (_XSI + "schemaLocation", _XSI + "noNamespaceSchemaLocation"):
        match = _XSD_VERSION.search(root.get(attr) or "")
        if match:
            return f"{match.group(1)}.{match.group(2)}"
    match = _NS_VERSION.search(etree.QName(root).namespace or "")
    if match:
        return match.group(1)
    ns = etree.QName(root).namespace or ""
    if "bibnum.bnf.fr" in ns:
        return "bnf-" + ns.rstrip("/").rpartition("/")[2]  # BnF's own dialect, e.g. "bnf-alto_prod"
    # No namespace, or the CCS namespace: the pre-standard ALTO 1.x family.
    return "1" if not ns or "ccs-gmbh" in ns else ""


def _unit(description: etree._Element | None) -> str:
    el = description.find("{*}MeasurementUnit") if description is not None else None
    raw = (el.text or "").strip() if el is not None else ""
    if not raw:
        return "pixel"  # the ALTO default
    if raw.lower() in UNITS:
        return raw.lower()
    raise LayoutError(f"invalid MeasurementUnit {raw!r} (expected one of {', '.join(UNITS)})")


def _image_filename(description: etree._Element | None) -> str:
    if description is None:
        return ""
    el = description.find("{*}sourceImageInformation/{*}fileName")
    return (el.text or "").strip() if el is not None else ""


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return float(value.strip().replace(",", "."))
    except ValueError:
        return None


def _box(el: etree._Element) -> tuple[float, float, float, float] | None:
    """(x, y, w, h) from HPOS/VPOS/WIDTH/HEIGHT, else the bounding box of a Shape/Polygon, else None.

    Non-finite or absurd numbers raise LayoutError: the file is broken, and a guess would place a bogus box.
    """
    box = _raw_box(el)
    if box is not None:
        what = f"<{_local(el.tag)} ID={el.get('ID')!r}>"
        for name, value in zip(("HPOS", "VPOS", "WIDTH", "HEIGHT"), box):
            numbers.coordinate(value, f"{what} {name}")
    return box


def _raw_box(el: etree._Element) -> tuple[float, float, float, float] | None:
    get = el.get
    try:  # the common case, kept cheap: there is one call per text block
        return (
            float(get("HPOS")),  # type: ignore[arg-type]
            float(get("VPOS")),  # type: ignore[arg-type]
            float(get("WIDTH")),  # type: ignore[arg-type]
            float(get("HEIGHT")),  # type: ignore[arg-type]
        )
    except (TypeError, ValueError):
        pass
    x, y = _number(get("HPOS")), _number(get("VPOS"))
    w, h = _number(get("WIDTH")), _number(get("HEIGHT"))
    if x is not None and y is not None and w is not None and h is not None:
        return x, y, w, h
    poly = el.find("{*}Shape/{*}Polygon")
    if poly is not None:
        nums = [_number(v) for v in (poly.get("POINTS") or "").replace(",", " ").split()]
        if nums and len(nums) % 2 == 0 and all(n is not None for n in nums):
            xs, ys = nums[0::2], nums[1::2]
            return min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)  # type: ignore[type-var,operator]
    return None


def _graphic_tags(root: etree._Element) -> dict[str, str]:
    """OtherTag ID → label (numbering ``#n`` removed) for the labels that name graphical zones."""
    tags = root.find("{*}Tags")
    if tags is None:
        return {}
    found: dict[str, str] = {}
    for tag in tags.iterchildren("{*}OtherTag"):
        label = (tag.get("LABEL") or "").strip().split("#", 1)[0]
        if label.split(":", 1)[0] in GRAPHIC_ZONES and tag.get("ID"):
            found[tag.get("ID")] = label  # type: ignore[index]
    return found


def _join_words(elements) -> list[str]:
    """Words from String/HYP elements in order, with line-end hyphenation undone.

    ``SUBS_TYPE="HypPart1"`` + ``SUBS_CONTENT`` gives the whole word once; a bare ``<HYP/>`` at a line end
    glues the next word on. ``<SP/>`` needs no handling: words are always joined by one space.
    """
    words: list[str] = []
    glue = False
    skip_part2 = False
    for el in elements:
        if el.tag.endswith("HYP"):
            glue = True
            continue
        subs_type = el.get("SUBS_TYPE")
        if subs_type is not None:
            if subs_type == "HypPart2" and skip_part2:
                skip_part2 = glue = False
                continue
            if subs_type == "HypPart1" and el.get("SUBS_CONTENT"):
                words.append(el.get("SUBS_CONTENT"))
                skip_part2 = True
                glue = False
                continue
        content = el.get("CONTENT")
        if not content:
            continue
        if glue and words:
            words[-1] += content
        else:
            words.append(content)
        glue = False
    return words


def block_text(block: etree._Element, limit: int | None = None, tail: bool = False) -> str:
    """Words of a text block joined by spaces; with ``limit``, only whole lines enough to give that many
    characters from the start (or from the end, with ``tail``), since context keeps ~300 characters and
    a newspaper article can hold thousands of words."""
    if limit is None:
        return " ".join(_join_words(block.iter("{*}String", "{*}HYP")))
    lines = block.findall("{*}TextLine")
    if tail:
        lines.reverse()
    chosen: list[list[etree._Element]] = []
    size = 0
    for line in lines:
        elements = list(line.iter("{*}String", "{*}HYP"))
        chosen.append(elements)
        if size > limit:
            break  # one line beyond the limit, so that a word hyphenated across the cut is joined
        size += sum(len(el.get("CONTENT") or "") + 1 for el in elements)
    if tail:
        chosen.reverse()
    return " ".join(_join_words(el for elements in chosen for el in elements))


def read_alto(root: etree._Element) -> LayoutPage:
    """The first page of an ALTO document as a :class:`LayoutPage` in the file's own unit."""
    if _local(root.tag).lower() != "alto":
        raise LayoutError(f"not ALTO: root element is <{_local(root.tag)}>")
    description = root.find("{*}Description")
    unit = _unit(description)
    layout = root.find("{*}Layout")
    pages = layout.findall("{*}Page") if layout is not None else []
    if not pages:
        raise LayoutError("ALTO has no Layout/Page element")
    if len(pages) > 1:
        log.info("ALTO file has %d pages; reading only the first (ID %s)", len(pages), pages[0].get("ID"))
    page = pages[0]
    width = numbers.size(_number(page.get("WIDTH")) or 0.0, "Page WIDTH")
    height = numbers.size(_number(page.get("HEIGHT")) or 0.0, "Page HEIGHT")

    zone_labels = _graphic_tags(root)
    regions: list[LayoutRegion] = []
    places: list[RegionPlace] = []
    blocks: list[TextBlock] = []
    # Picture ComposedBlocks already emitted: what they contain is part of that picture (its inner
    # GraphicalElement) or its own caption (its TextBlocks).
    picture_blocks: dict[etree._Element, int] = {}

    def enclosing_picture(el: etree._Element) -> int | None:
        if not picture_blocks:
            return None
        parent = el.getparent()
        while parent is not None and parent is not page:
            if parent in picture_blocks:
                return picture_blocks[parent]
            parent = parent.getparent()
        return None

    def add_region(el: etree._Element, block_type: str) -> int | None:
        box = _box(el)
        if box is None:
            log.info("ALTO %s %s has no coordinates; skipped", block_type, el.get("ID"))
            return None
        x, y, w, h = box
        if w < 0 or h < 0:
            raise LayoutError(f"ALTO {block_type} {el.get('ID')!r} has a negative size ({w} x {h})")
        regions.append(LayoutRegion(el.get("ID") or "", block_type, x, y, w, h))
        places.append(RegionPlace(x, y, x + w, y + h, len(blocks)))
        return len(regions) - 1

    # Walk the block level only (Page → margins/PrintSpace → blocks, into ComposedBlocks), never down to
    # lines and words: on a newspaper page that is a few hundred nodes instead of a few hundred thousand.
    stack = [iter(page)]
    while stack:
        el = next(stack[-1], None)
        if el is None:
            stack.pop()
            continue
        tag = el.tag
        if not isinstance(tag, str):
            continue  # comments, processing instructions
        name = tag[tag.rfind("}") + 1 :]
        if name == "TextBlock":
            refs = el.get("TAGREFS")
            label = None
            if refs and zone_labels:
                label = next((zone_labels[r] for r in refs.split() if r in zone_labels), None)
            if label is not None:
                index = add_region(el, label)
                if index is not None:
                    places[index].own_text = block_text(el)
                continue
            owner = enclosing_picture(el)
            if owner is not None:
                text = block_text(el)
                if text:
                    own = places[owner].own_text
                    places[owner].own_text = f"{own} {text}" if own else text
                continue
            box = _box(el)
            if box is not None:
                x, y, w, h = box
                blocks.append(TextBlock(x, y, x + w, y + h, el))
            else:
                blocks.append(TextBlock(0.0, 0.0, 0.0, 0.0, el))  # still counts for reading order
        elif name == "Illustration" or name == "GraphicalElement":
            if enclosing_picture(el) is None:
                add_region(el, name)
        elif name == "ComposedBlock":
            kind = (el.get("TYPE") or "").strip()
            if kind.lower() in GRAPHIC_COMPOSED_TYPES and enclosing_picture(el) is None:
                index = add_region(el, f"ComposedBlock/{kind}")
                if index is not None:
                    picture_blocks[el] = index
            stack.append(iter(el))
        elif name not in _LEAVES:
            stack.append(iter(el))  # PrintSpace, margins, and whatever else may hold blocks

    if regions:
        PageText(blocks, block_text, height).fill(regions, places)

    return LayoutPage(
        format="alto",
        version=_version(root),
        width=width,
        height=height,
        unit=unit,
        image_filename=_image_filename(description),
        regions=regions,
    )
