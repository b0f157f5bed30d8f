"""One entry point for layout files: parse safely, recognise ALTO or PAGE-XML, return a LayoutPage."""

from __future__ import annotations

from iiif_visual_search.records import LayoutError, LayoutPage
from iiif_visual_search.sources.alto import read_alto
from iiif_visual_search.sources.pagexml import read_page
from iiif_visual_search.sources.xmlsafe import DEFAULT_MAX_BYTES, parse_xml

FORMATS = ("alto", "page")


def detect_format(root_local_name: str) -> str | None:
    """``"alto"`` or ``"page"`` from the root element's local name (any namespace, or none)."""
    if root_local_name.lower() == "alto":
        return "alto"
    if root_local_name == "PcGts":
        return "page"
    return None


def read_layout(data: bytes, *, source: str = "", max_bytes: int = DEFAULT_MAX_BYTES) -> LayoutPage:
    """Read an ALTO or PAGE-XML document; raise :class:`LayoutError` with the reason when it cannot.

    ``source`` (a URL or path) only serves to make the error message say which file failed.
    """
    try:
        root = parse_xml(data, max_bytes=max_bytes)
        name = root.tag.rpartition("}")[2] if isinstance(root.tag, str) else ""
        fmt = detect_format(name)
        if fmt == "alto":
            return read_alto(root)
        if fmt == "page":
            return read_page(root)
        raise LayoutError(f"not ALTO or PAGE-XML: root element is <{name}>")
    except LayoutError as exc:
        if source:
            raise LayoutError(f"{source}: {exc}") from None
        raise
