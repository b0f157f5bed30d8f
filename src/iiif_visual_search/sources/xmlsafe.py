"""Parse untrusted layout XML with lxml, refusing what could reach the network or blow up memory.

Layout files come from arbitrary IIIF providers, so the parser never resolves entities, never loads a DTD,
never touches the network and keeps libxml2's size limits (``huge_tree`` off). Documents that declare
entities or carry an internal DTD subset are refused outright rather than parsed "safely": no real ALTO or
PAGE file needs them, and refusing is the only behaviour that does not depend on libxml2 version details.
"""

from __future__ import annotations

import re

from lxml import etree

from iiif_visual_search.records import LayoutError

DEFAULT_MAX_BYTES = 50_000_000

_UTF8_BOM = b"\xef\xbb\xbf"
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
_WHITESPACE = b" \t\r\n"
_DECLARED_ENCODING = re.compile(rb"""^<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")
_DOCTYPE_WITH_SUBSET = re.compile(
    rb"""<!DOCTYPE\s+[^\s\[>]+(?:\s+(?:SYSTEM|PUBLIC)(?:\s+(?:"[^"]*"|'[^']*'))+)?\s*\["""
)
_LATIN1_NAMES = frozenset({"iso-8859-1", "iso8859-1", "latin-1", "latin1", "l1", "windows-1252", "cp1252"})


def _parser(encoding: str | None = None) -> etree.XMLParser:
    # A fresh parser per call: lxml parsers are not thread-safe, and creating one costs microseconds.
    return etree.XMLParser(
        encoding=encoding,
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
        # collect_ids=False would look faster, but with it libxml2 tries to fetch an external DOCTYPE's
        # DTD (and fails under no_network), so files with a plain <!DOCTYPE ... SYSTEM "..."> break.
    )


def _normalise_start(data: bytes) -> bytes:
    """Drop whitespace before the XML declaration (seen in NB's Transkribus export), keeping any UTF-8 BOM.

    libxml2 rejects ``\\n<?xml ...?>`` ("XML declaration allowed only at the start"), although the intent
    is clear. UTF-16 documents are left as they are: their whitespace is not these bytes.
    """
    if data.startswith(_UTF16_BOMS):
        return data
    start = len(_UTF8_BOM) if data.startswith(_UTF8_BOM) else 0
    end = start
    # Look at the first bytes only: slicing or stripping a large document would copy all of it.
    while end < len(data) and data[end] in _WHITESPACE:
        end += 1
    if end == start:
        return data
    return data[:start] + data[end:]


def _encoding_override(data: bytes) -> str | None:
    """``"utf-8"`` when a document without BOM declares Latin-1 but its bytes are UTF-8, else None.

    BnF ALTO (e.g. the altoxml documentation's BnF sample) declares ISO-8859-1 and holds UTF-8 bytes;
    read as declared, every accented letter turns into two (``SUPPLÃ\x89MENT``). Real Latin-1 text
    with accents is almost never valid UTF-8, so a clean UTF-8 decode is strong evidence of mislabelling.
    """
    if data.startswith(_UTF8_BOM):
        return None  # libxml2 follows the BOM already
    match = _DECLARED_ENCODING.match(data[:200])
    if match is None or match.group(1).decode("ascii").lower() not in _LATIN1_NAMES:
        return None
    if data.isascii():
        return None
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return "utf-8"


def parse_xml(data: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES) -> etree._Element:
    """Parse ``data`` into an element tree, or raise :class:`LayoutError` saying why it was refused.

    The declared encoding is honoured, except that a byte-order mark wins over it (BnF files declare
    ISO-8859-1 but carry a UTF-8 BOM and UTF-8 bytes; libxml2 follows the BOM, which is what they mean),
    and that a Latin-1 declaration over bytes that are valid, non-ASCII UTF-8 is read as UTF-8.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise LayoutError(f"layout document must be bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) > max_bytes:
        raise LayoutError(f"document too large: {len(data)} bytes (limit {max_bytes})")
    data = _normalise_start(data)
    if not data or data == _UTF8_BOM:
        raise LayoutError("empty document")
    # A byte scan is cheap (memmem) and catches entity declarations before libxml2 sees them, whatever
    # the parser options do with them.
    if b"<!ENTITY" in data:
        raise LayoutError("document declares XML entities (refused: entity expansion is not allowed)")
    doctype = data.find(b"<!DOCTYPE")
    if doctype >= 0 and _DOCTYPE_WITH_SUBSET.match(data, doctype):
        raise LayoutError("document has a DOCTYPE with an internal subset (refused)")
    try:
        root = etree.fromstring(data, _parser(_encoding_override(data)))
    except etree.XMLSyntaxError as exc:
        raise LayoutError(f"not well-formed XML: {exc.msg}") from None
    except (ValueError, LookupError) as exc:  # e.g. an unknown declared encoding
        raise LayoutError(f"cannot parse XML: {exc}") from None
    if root is None:
        raise LayoutError("empty document")
    # Belt and braces for subsets the byte pattern missed (other encodings). libxml2 keeps an "internal
    # DTD" object for every DOCTYPE, even ``<!DOCTYPE alto SYSTEM "...">``, so look at what it declares.
    dtd = root.getroottree().docinfo.internalDTD
    declares = dtd is not None and (
        next(dtd.iterelements(), None) is not None or next(dtd.iterentities(), None) is not None
    )
    if declares:
        raise LayoutError("document has a DOCTYPE with an internal subset (refused)")
    return root
