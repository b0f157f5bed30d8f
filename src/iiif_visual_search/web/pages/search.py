"""Running a search from its state: text, meaning, similar region or picture, filtered by the sidebar."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from PIL import Image
from starlette.requests import Request

from ...iiif.common import RegionView, thumbnail
from ..images import decode_image
from ..outbound import fetch_bytes
from .errors import PageError
from .facets import Book, Facets
from .render import root_path
from .search_state import SearchState
from .uploads import uploads_dir

PAGE_SIZE = 24
MAX_TEXT_MATCHES = 1000           # text hits read before filtering; the count says "of at least" beyond it
UNCLASSIFIED = "_none"


@dataclass
class Card:
    region: RegionView
    book: Book
    score: float | None
    page_label: str
    canvas_id: str
    thumb: str
    snippets: list[tuple[str, str, str]] = field(default_factory=list)


@dataclass
class Outcome:
    cards: list[Card] = field(default_factory=list)
    total: int | None = None          # None: an open list (nearest neighbours), known only page by page
    total_at_least: bool = False
    has_next: bool = False
    model: str = ""
    query_region: Card | None = None
    query_image: str = ""
    relative: bool = False            # scores are relative to the best hit (text search: BM25 / best BM25)


class Filters:
    """The sidebar's filters as one predicate over regions, plus what can be pushed down to the searches."""

    def __init__(self, state: SearchState, facets: Facets) -> None:
        offered = {c for c, _ in facets.classes}
        if state.classes is None:
            self.included = (offered - facets.hidden_classes) | {UNCLASSIFIED}
        else:
            self.included = set(state.classes)
        self.excluded_classes = sorted(offered - self.included)
        self.offered = offered
        books = set(state.books)
        if state.collection:
            members = next((m for uri, _, m in facets.collections if uri == state.collection), None)
            if members is None:
                raise PageError.plain(404, f"no collection {state.collection[:200]!r}")
            books = (books & members) if books else set(members)
        self.books = books
        self.explicit_books = bool(state.books or state.collection)
        self.year_from, self.year_to = state.year_from, state.year_to
        self.facets = facets

    @property
    def single_book(self) -> str | None:
        return next(iter(self.books)) if len(self.books) == 1 else None

    def keep(self, region: RegionView) -> bool:
        if self.explicit_books and region.manifest_id not in self.books:
            return False
        label = region.label or UNCLASSIFIED
        if label not in self.included and (label in self.offered or label == UNCLASSIFIED):
            return False
        if self.year_from is not None or self.year_to is not None:
            book = self.facets.books.get(region.manifest_id)
            year = book.year if book else None
            if year is None:
                return False
            if self.year_from is not None and year < self.year_from:
                return False
            if self.year_to is not None and year > self.year_to:
                return False
        return True


def _canvas_info(st: Any, region_ids: Sequence[str]) -> dict[str, tuple[str, str]]:
    """region id → (canvas id, canvas label)."""
    out: dict[str, tuple[str, str]] = {}
    for start in range(0, len(region_ids), 500):
        chunk = list(region_ids[start:start + 500])
        for r in st.catalogue.query(
                f"SELECT r.id, c.id AS cid, c.label FROM region r JOIN canvas c ON c.id = r.canvas_id "
                f"WHERE r.id IN ({','.join('?' * len(chunk))})", chunk):
            out[r["id"]] = (r["cid"], r["label"] or "")
    return out


def cards(request: Request, facets: Facets, rows: Iterable[tuple[RegionView, float | None, list[Any]]]) -> list[Card]:
    st = request.app.state.ivs
    rows = list(rows)
    info = _canvas_info(st, [r.id for r, _, _ in rows])
    cards = []
    for region, score, snippets in rows:
        cid, clabel = info.get(region.id, ("", ""))
        book = facets.books.get(region.manifest_id) or Book(region.manifest_id, region.manifest_uri,
                                                           region.manifest_label or region.manifest_uri)
        thumbs = thumbnail(region, st.urls, 300)
        cards.append(Card(region=region, book=book, score=score, page_label=clabel or str(region.canvas_position + 1),
                          canvas_id=cid, thumb=thumbs[0]["id"] if thumbs else "", snippets=snippets))
    return cards


def model_for(state: SearchState, facets: Facets, *, image_query: bool) -> str:
    if not facets.models:
        raise PageError(503, "err_no_model")
    if image_query and state.match == "duplicate":
        if facets.model("fingerprint") is None:
            raise PageError.plain(400, "near-duplicate search needs the fingerprint index: "
                                       "run ivs embed --model fingerprint")
        return "fingerprint"
    key = state.model or facets.default_model
    if facets.model(key) is None:
        raise PageError.plain(400, f"model {key!r} is not indexed here; "
                                   f"indexed: {', '.join(m.key for m in facets.models)}")
    return key


def query_image(request: Request, state: SearchState) -> Image.Image:
    st = request.app.state.ivs
    opts = st.options
    if state.kind == "upload":
        path = uploads_dir(st) / f"{state.upload}.jpg"
        if not path.is_file():
            raise PageError(404, "err_upload_missing")
        return decode_image(path.read_bytes(), opts.max_image_pixels)
    data = fetch_bytes(state.image_url, max_bytes=opts.max_fetch_bytes, timeout_s=opts.fetch_timeout_s,
                       allow_private=opts.allow_private_urls)
    return decode_image(data, opts.max_image_pixels)


def run_search(request: Request, state: SearchState, facets: Facets) -> Outcome:
    st = request.app.state.ivs
    filters = Filters(state, facets)
    kind = state.kind
    out = Outcome()
    start = (state.page - 1) * PAGE_SIZE
    if kind == "text":
        result = st.text_index().search(state.q, manifest_id=filters.single_book, limit=MAX_TEXT_MATCHES)
        views = st.store.regions_by_id([m.region_id for m in result.matches])
        # BM25 relative to the best hit: a word in nearly every text has an IDF near 0, and raw scores all
        # printed as 0.000.
        best = max((m.score for m in result.matches), default=0.0) or 1.0
        kept = [(views[m.region_id], m.score / best, m.snippets(width=60, limit=2)) for m in result.matches
                if m.region_id in views and filters.keep(views[m.region_id])]
        out.relative = True
        out.total = len(kept)
        out.total_at_least = result.total > MAX_TEXT_MATCHES
        out.has_next = start + PAGE_SIZE < len(kept)
        out.cards = cards(request, facets, kept[start:start + PAGE_SIZE])
        return out
    if not kind:
        return out
    query: dict[str, Any]
    if kind == "meaning":
        model = model_for(state, facets, image_query=False)
        choice = facets.model(model)
        if choice is not None and not choice.reads_text:
            raise PageError(400, "err_no_text_model", model=model)
        query = {"text": state.q}
    elif kind == "region":
        region = st.store.region(state.similar)
        if region is None:
            raise PageError.plain(404, f"no region {state.similar!r} in the catalogue")
        model = model_for(state, facets, image_query=True)
        query = {"region_id": state.similar}
        out.query_region = cards(request, facets, [(region, None, [])])[0]
    else:
        model = model_for(state, facets, image_query=True)
        query = {"image": query_image(request, state)}
        out.query_image = (f"{root_path(request)}/search/uploads/{state.upload}.jpg" if kind == "upload"
                           else state.image_url)
    out.model = model
    # Every neighbour up to the service's cap, so the page can say how many there are in all.
    k = st.options.similar_max_k
    hits = st.find_similar(model=model, k=k, manifest=filters.single_book,
                           exclude_classes=filters.excluded_classes or None, **query)
    pairs = [(h.region, float(h.score)) for h in hits]
    views = st.store.regions_by_id([rid for rid, _ in pairs])
    kept = [(views[rid], score, []) for rid, score in pairs if rid in views and filters.keep(views[rid])]
    out.total = len(kept)
    out.total_at_least = len(hits) >= k
    out.has_next = len(kept) > start + PAGE_SIZE
    out.cards = cards(request, facets, kept[start:start + PAGE_SIZE])
    return out
