"""Context text for graphical regions: nearest text before and after in reading order, and a caption.

Shared by the ALTO and PAGE readers. Text blocks are given in reading order with their bounding boxes;
their text is computed lazily, because most pages have many more text blocks than regions and building
the text of every block would cost more than parsing the file.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..records import LayoutRegion

# The paper used the region's textual surroundings for TF-IDF search; a few sentences each side is
# enough for that and keeps the catalogue rows small.
CONTEXT_CHARS = 300
# A caption sits within 3 % of the page height of the picture, above or below it.
CAPTION_GAP = 0.03
# A block may overlap the picture edge by up to 1 % of the page height and still count as adjacent.
CAPTION_OVERLAP = 0.01
# Horizontal overlap needed, as a share of the narrower of the two boxes, to be "under" the picture.
CAPTION_MIN_HOVERLAP = 0.25


@dataclass
class TextBlock:
    """A text block in reading order, with its bounding box; its text comes from ``PageText.text_of``."""

    x0: float
    y0: float
    x1: float
    y1: float
    source: object
    _text: dict[tuple[int | None, bool], str] = field(default_factory=dict, repr=False)


@dataclass
class RegionPlace:
    """Where a region sits: its box, and how many text blocks come before it in reading order."""

    x0: float
    y0: float
    x1: float
    y1: float
    position: int
    own_text: str = ""
    # True when the file's explicit reading order places the region; then its position is trusted.
    ordered: bool = False


@dataclass
class RegionContext:
    before: str
    after: str
    caption: str


def clip_tail(text: str, limit: int = CONTEXT_CHARS) -> str:
    """Keep the last ``limit`` characters, starting on a word boundary (the words nearest what follows)."""
    if len(text) <= limit:
        return text
    cut = text[-limit:]
    if not text[-limit - 1].isspace():
        space = cut.find(" ")
        cut = cut[space + 1 :] if space >= 0 else cut
    return cut.strip()


def clip_head(text: str, limit: int = CONTEXT_CHARS) -> str:
    """Keep the first ``limit`` characters, ending on a word boundary (the words nearest what precedes)."""
    if len(text) <= limit:
        return text
    cut = text[:limit]
    if not text[limit].isspace():
        space = cut.rfind(" ")
        cut = cut[:space] if space >= 0 else cut
    return cut.strip()


class PageText:
    """The text blocks of one page, with lookups for the context of each region."""

    def __init__(
        self,
        blocks: list[TextBlock],
        text_of: Callable[[object, int | None, bool], str],
        page_height: float,
    ) -> None:
        self.blocks = blocks
        self._text_of = text_of
        if page_height <= 0:
            # The file does not say; the lowest block edge is the best estimate of the page height.
            page_height = max((b.y1 for b in blocks), default=0.0)
        self._gap = CAPTION_GAP * page_height
        self._overlap = CAPTION_OVERLAP * page_height
        self._by_top: list[TextBlock] | None = None
        self._boxes: np.ndarray | None = None  # block boxes as an array, built on first use
        self._tops: list[float] = []
        self._by_bottom: list[TextBlock] = []
        self._bottoms: list[float] = []

    def text(self, block: TextBlock, limit: int | None = None, tail: bool = False) -> str:
        """The block's text; with ``limit``, at least that many characters from its start (or end)
        when it has them: readers may stop early, since context keeps only the words nearest a region."""
        key = (limit, tail)
        cached = block._text.get(key)
        if cached is None:
            full = block._text.get((None, False))
            cached = full if full is not None else self._text_of(block.source, limit, tail)
            block._text[key] = cached
        return cached

    def before(self, position: int, limit: int = CONTEXT_CHARS) -> str:
        parts: list[str] = []
        size = 0
        i = position - 1
        while i >= 0 and size < limit:
            t = self.text(self.blocks[i], limit, True)
            if t:
                parts.append(t)
                size += len(t) + 1
            i -= 1
        return clip_tail(" ".join(reversed(parts)), limit)

    def after(self, position: int, limit: int = CONTEXT_CHARS) -> str:
        parts: list[str] = []
        size = 0
        i = position
        while i < len(self.blocks) and size < limit:
            t = self.text(self.blocks[i], limit)
            if t:
                parts.append(t)
                size += len(t) + 1
            i += 1
        return clip_head(" ".join(parts), limit)

    def _index(self) -> None:
        self._by_top = sorted(self.blocks, key=lambda b: b.y0)
        self._tops = [b.y0 for b in self._by_top]
        self._by_bottom = sorted(self.blocks, key=lambda b: b.y1)
        self._bottoms = [b.y1 for b in self._by_bottom]

    @staticmethod
    def _hoverlaps(block: TextBlock, x0: float, x1: float) -> bool:
        overlap = min(block.x1, x1) - max(block.x0, x0)
        narrower = min(block.x1 - block.x0, x1 - x0)
        return overlap > 0 and overlap >= CAPTION_MIN_HOVERLAP * narrower

    def caption(self, x0: float, y0: float, x1: float, y1: float, limit: int = CONTEXT_CHARS) -> str:
        """Text of the nearest non-empty block just below the box, else just above it."""
        if self._by_top is None:
            self._index()
        assert self._by_top is not None
        best: tuple[float, TextBlock] | None = None
        lo = bisect_left(self._tops, y1 - self._overlap)
        hi = bisect_right(self._tops, y1 + self._gap)
        for block in self._by_top[lo:hi]:
            if block.y1 > y1 and self._hoverlaps(block, x0, x1) and self.text(block, limit):
                gap = abs(block.y0 - y1)
                if best is None or gap < best[0]:
                    best = (gap, block)
        if best is None:
            lo = bisect_left(self._bottoms, y0 - self._gap)
            hi = bisect_right(self._bottoms, y0 + self._overlap)
            for block in self._by_bottom[lo:hi]:
                if block.y0 < y0 and self._hoverlaps(block, x0, x1) and self.text(block, limit):
                    gap = abs(y0 - block.y1)
                    if best is None or gap < best[0]:
                        best = (gap, block)
        return clip_head(self.text(best[1], limit), limit) if best else ""

    def _column(self, place: RegionPlace) -> tuple[np.ndarray, np.ndarray]:
        """For every block: whether it shares the region's column, and its vertical middle."""
        if self._boxes is None:
            self._boxes = np.array([(b.x0, b.y0, b.x1, b.y1) for b in self.blocks], dtype=np.float64).reshape(-1, 4)
        x0, y0, x1, y1 = self._boxes.T
        overlap = np.minimum(x1, place.x1) - np.maximum(x0, place.x0)
        narrower = np.minimum(x1 - x0, place.x1 - place.x0)
        same_column = (overlap > 0) & (overlap >= CAPTION_MIN_HOVERLAP * narrower)
        return same_column, (y0 + y1) / 2

    def context(self, place: RegionPlace) -> RegionContext:
        caption = clip_head(place.own_text) if place.own_text else ""
        if not caption:
            caption = self.caption(place.x0, place.y0, place.x1, place.y1)
        position = place.position
        if not place.ordered and position >= len(self.blocks) and self.blocks:
            # Listed after every text block: if text of its column follows it on the page, the file's order
            # says nothing about where the region is read. Then it is read after the last block of its column
            # that lies above its middle (eScriptorium writes all zones after the text).
            same_column, middles = self._column(place)
            middle = (place.y0 + place.y1) / 2
            if bool(np.any(same_column & (middles > middle))):
                above = np.flatnonzero(same_column & (middles < middle))
                position = int(above[-1]) + 1 if above.size else 0
        return RegionContext(self.before(position), self.after(position), caption)

    def fill(self, regions: list[LayoutRegion], places: list[RegionPlace]) -> None:
        """Set each region's context and caption from its place on this page."""
        for region, place in zip(regions, places, strict=True):
            found = self.context(place)
            region.context_before = found.before
            region.context_after = found.after
            region.caption = found.caption
