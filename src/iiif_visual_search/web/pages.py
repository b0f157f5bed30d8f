"""The search page for people (``GET /``): the seed paper's Bildesøk page, server-rendered, HTMX on top.

Every search state is a URL (``/?q=…&by=…&model=…&class=…&page=…``), so the page works without JavaScript,
results can be bookmarked and shared, and HTMX only swaps the result list in place (``HX-Target: results``
gets the ``_results.html`` partial, plus out-of-band copies of the query fields so they match the results).
An uploaded picture is stored (shrunk, content-addressed) under ``data_dir/uploads`` and searched through a
``?upload=<hash>`` URL, so an upload has a permalink too.

Routes: ``/`` (search), ``/region/{region}`` (detail: the page with the box drawn), ``POST /search/image``
(upload or URL, then a redirect to the permalink), ``/search/uploads/{name}.jpg`` (the query picture),
``/page-image/{canvas}.jpg`` (a page thumbnail for canvases without an image service), ``/static``.
The searches themselves are the service's: the FTS5 text index and ``similar.find_similar``.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlparse

from jinja2 import Environment, FileSystemLoader, select_autoescape
from PIL import Image
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from ..files import atomic_write_bytes
from ..iiif.common import RegionView, thumbnail
from .errors import ApiError, error_response
from .i18n import LANGUAGES, class_name, pick_language, translator
from .images import decode_image, fetch_bytes
from .outbound import read_catalogue_image
from .security import safe_link

HERE = Path(__file__).resolve().parent
PAGE_SIZE = 24
MAX_TEXT_MATCHES = 1000           # text hits read before filtering; the count says "of at least" beyond it
PAGE_THUMB_WIDTH = 800
UPLOAD_MAX_SIDE = 1024            # uploads are kept this small: enough for every model's preprocessing
UPLOAD_KEEP = 500                 # uploads kept on disk; the oldest go first
UNCLASSIFIED = "_none"
TEXT_ARCHITECTURES = ("siglip", "clip")

_ID = re.compile(r"^[A-Za-z0-9_.-]{1,80}$")
_UPLOAD = re.compile(r"^[0-9a-f]{32}$")
_YEAR = re.compile(r"(?<!\d)(1[0-9]{3}|20[0-9]{2})(?!\d)")
_YEAR_LABEL = re.compile(r"date|year|dato|\bår\b|utgi|publi|issued|created|datum|jahr|ann[ée]e|druck|imprint",
                         re.IGNORECASE)
_AUTHOR_LABEL = re.compile(r"author|creator|forfatter|auteur|contributor|opphav|verfasser|autor|artist",
                           re.IGNORECASE)

_env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]),
                   trim_blocks=True, lstrip_blocks=True)
_env.filters["safe_link"] = safe_link  # every link taken from a document goes through it


class PageError(Exception):
    """A search that cannot run: shown on the page with this status, in the reader's language."""

    def __init__(self, status: int, key: str, **values: object) -> None:
        super().__init__(key)
        self.status, self.key, self.values, self.message = status, key, values, ""

    @classmethod
    def plain(cls, status: int, message: str) -> PageError:
        err = cls(status, "")
        err.message = message
        return err


# --- what the catalogue knows about books, models and classes -------------------------------------------------


@dataclass(frozen=True)
class Book:
    id: str
    uri: str
    label: str
    author: str = ""
    year: int | None = None
    homepage: str = ""
    urls: tuple[str, ...] = ()     # every address the manifest is known by (collection members use these)


@dataclass(frozen=True)
class ModelChoice:
    key: str
    label: str
    reads_text: bool


@dataclass
class Facets:
    books: dict[str, Book]
    collections: list[tuple[str, str, frozenset[str]]]  # (uri, label, member manifest ids)
    classes: list[tuple[str, int]]                       # labels present, with counts
    models: list[ModelChoice]
    regions: int
    hidden_classes: frozenset[str] = frozenset()  # left out unless the sidebar asks (settings.hidden_classes)

    @property
    def years(self) -> tuple[int, int] | None:
        years = [b.year for b in self.books.values() if b.year is not None]
        return (min(years), max(years)) if years else None

    def model(self, key: str) -> ModelChoice | None:
        return next((m for m in self.models if m.key == key), None)

    @property
    def default_model(self) -> str:
        keys = [m.key for m in self.models]
        if "siglip" in keys:
            return "siglip"
        for wanted in (lambda m: m.reads_text, lambda m: m.key != "fingerprint", lambda m: True):
            for m in self.models:
                if wanted(m):
                    return m.key
        return ""


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def book_from_row(row: Any) -> Book:
    """Author and year from the manifest's metadata (labels in several languages), else its navDate."""
    author, year = "", None
    try:
        metadata = json.loads(row["metadata"] or "[]")
    except (TypeError, ValueError):
        metadata = []
    for entry in metadata if isinstance(metadata, list) else []:
        if not isinstance(entry, dict):
            continue
        label, value = _text(entry.get("label")), _text(entry.get("value"))
        if not author and _AUTHOR_LABEL.search(label) and value:
            author = re.sub(r"<[^>]+>", "", value).strip()
        if year is None and _YEAR_LABEL.search(label):
            m = _YEAR.search(value)
            year = int(m.group(1)) if m else None
    nav_date = row["nav_date"] if "nav_date" in row.keys() else ""
    if year is None and isinstance(nav_date, str):
        m = re.match(r"\s*(\d{4})", nav_date)
        year = int(m.group(1)) if m else None
    return Book(id=row["id"], uri=row["uri"], label=row["label"] or row["uri"], author=author[:200], year=year,
                homepage=safe_link(row["homepage"]), urls=(row["uri"], row["url"]))


class PageData:
    """Facets cached until the catalogue or the vector indexes change (checked at most every 2 s)."""

    def __init__(self, st: Any) -> None:
        self.st = st
        self._lock = threading.Lock()
        self._signature: tuple[Any, ...] | None = None
        self._facets: Facets | None = None

    def _signature_now(self) -> tuple[Any, ...]:
        cat = self.st.catalogue
        seq = cat.query_one("SELECT COALESCE(MAX(seq), 0) AS s FROM change")["s"]
        labels = cat.query_one("SELECT COUNT(*) AS n, COALESCE(SUM(LENGTH(label)), 0) AS l FROM label")
        emb = cat.query_one("SELECT COUNT(*) AS n FROM embedding")["n"]
        vec_root = Path(self.st.settings.data_dir) / "vectors"
        stamps = tuple(sorted((p.parent.name, p.stat().st_mtime_ns) for p in vec_root.glob("*/index.json"))) \
            if vec_root.is_dir() else ()
        return (seq, labels["n"], labels["l"], emb, stamps)

    def facets(self) -> Facets:
        signature = self._signature_now()
        with self._lock:
            if self._facets is None or signature != self._signature:
                self._facets = self._load()
                self._signature = signature
            return self._facets

    def _load(self) -> Facets:
        cat = self.st.catalogue
        books = {r["id"]: book_from_row(r) for r in cat.query(
            "SELECT id, uri, url, label, metadata, homepage, "
            # navDate without reading whole manifests into Python (raw may be megabytes each)
            "CASE WHEN json_valid(raw) THEN json_extract(raw, '$.navDate') END AS nav_date "
            "FROM manifest WHERE status='ok' ORDER BY label")}
        by_url = {u: b.id for b in books.values() for u in b.urls}
        collections = []
        for c in cat.query("SELECT uri, label FROM collection ORDER BY label"):
            members = frozenset(by_url[m["member_url"]] for m in cat.query(
                "SELECT member_url FROM collection_member WHERE collection_uri=? AND kind='manifest'", (c["uri"],))
                if m["member_url"] in by_url)
            if members:
                collections.append((c["uri"], c["label"] or c["uri"], members))
        classes = [(r["label"], int(r["n"])) for r in cat.query(
            """SELECT COALESCE(lm.label, lo.label) AS label, COUNT(*) AS n FROM region r
               LEFT JOIN label lm ON lm.region_id = r.id AND lm.source = 'manual'
               LEFT JOIN label lo ON lo.region_id = r.id AND lo.source = 'model'
               WHERE r.deleted = 0 AND COALESCE(lm.label, lo.label) IS NOT NULL GROUP BY 1 ORDER BY 1""")]
        regions = int(cat.query_one("SELECT COUNT(*) AS n FROM region WHERE deleted=0")["n"])
        return Facets(books, collections, classes, self._models(), regions,
                      frozenset(self.st.settings.hidden_classes))

    def _models(self) -> list[ModelChoice]:
        from ..embed.models import MODEL_NAMES
        from ..index.vectors import list_models, vectors_dir

        data_dir = Path(self.st.settings.data_dir)
        counts = self.st.store.models()
        out = []
        for d in list_models(data_dir):
            if not counts.get(d.key) or not (vectors_dir(data_dir, d.key) / "index.faiss").exists():
                continue
            label = d.key if d.key in MODEL_NAMES else f"{d.key} ({d.architecture})"
            out.append(ModelChoice(d.key, label, d.architecture in TEXT_ARCHITECTURES))
        return out


def _page_data(request: Request) -> PageData:
    app_state = request.app.state
    data = getattr(app_state, "ivs_pages", None)
    if data is None:
        data = app_state.ivs_pages = PageData(app_state.ivs)
    return data


# --- the search state: every field is a URL parameter ---------------------------------------------------------


@dataclass(frozen=True)
class SearchState:
    q: str = ""
    by: str = "context"              # context (text index) | meaning (text → image embedding)
    similar: str = ""                # region id
    upload: str = ""                 # stored upload hash
    image_url: str = ""
    model: str = ""                  # '' = the default model
    match: str = "semantic"          # semantic (the chosen model) | duplicate (the fingerprint index)
    classes: tuple[str, ...] | None = None   # None = the default (all but the junk classes)
    books: tuple[str, ...] = ()
    collection: str = ""
    year_from: int | None = None
    year_to: int | None = None
    page: int = 1
    lang: str = ""

    @property
    def kind(self) -> str:
        if self.q:
            return "meaning" if self.by == "meaning" else "text"
        if self.similar:
            return "region"
        if self.upload:
            return "upload"
        if self.image_url:
            return "url"
        return ""

    def params(self, **changes: Any) -> list[tuple[str, str]]:
        """The state as query parameters, defaults left out, with ``changes`` applied."""
        s = replace(self, **changes)
        out: list[tuple[str, str]] = []
        kind = s.kind
        if s.q:
            out.append(("q", s.q))
            if s.by != "context":
                out.append(("by", s.by))
        elif kind == "region":
            out.append(("similar", s.similar))
        elif kind == "upload":
            out.append(("upload", s.upload))
        elif kind == "url":
            out.append(("image_url", s.image_url))
        if s.model:
            out.append(("model", s.model))
        if s.match != "semantic":
            out.append(("match", s.match))
        if s.classes is not None:
            out.append(("cf", "1"))
            out.extend(("class", c) for c in s.classes)
        out.extend(("book", b) for b in s.books)
        if s.collection:
            out.append(("collection", s.collection))
        if s.year_from is not None:
            out.append(("from", str(s.year_from)))
        if s.year_to is not None:
            out.append(("to", str(s.year_to)))
        if s.page != 1:
            out.append(("page", str(s.page)))
        if s.lang:
            out.append(("lang", s.lang))
        return out

    def query(self, **changes: Any) -> str:
        params = self.params(**changes)
        return "?" + urlencode(params) if params else ""


def _year(raw: str | None, name: str) -> int | None:
    if raw is None or raw.strip() == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise PageError.plain(400, f"{name} must be a year, got {raw[:40]!r}") from None
    if not -9999 <= value <= 9999:
        raise PageError.plain(400, f"{name} is out of range: {value}")
    return value


def parse_state(request: Request) -> SearchState:
    """The search state from the query string; PageError 400 for values that cannot mean anything."""
    p = request.query_params
    by = p.get("by") or "context"
    if by not in ("context", "meaning"):
        raise PageError.plain(400, f"by must be context or meaning, got {by[:40]!r}")
    match = p.get("match") or "semantic"
    if match not in ("semantic", "duplicate"):
        raise PageError.plain(400, f"match must be semantic or duplicate, got {match[:40]!r}")
    similar = (p.get("similar") or "").strip()
    if similar and not _ID.match(similar):
        raise PageError.plain(400, "similar must be a region id")
    upload = (p.get("upload") or "").strip()
    if upload and not _UPLOAD.match(upload):
        raise PageError.plain(400, "upload must be the id of an uploaded picture")
    model = (p.get("model") or "").strip()
    if model and not _ID.match(model):
        raise PageError.plain(400, "model must be a model name")
    raw_page = p.get("page") or "1"
    if not raw_page.isdigit() or not 1 <= int(raw_page) <= 10_000:
        raise PageError.plain(400, f"page must be a number from 1 to 10000, got {raw_page[:40]!r}")
    classes = tuple(dict.fromkeys(c for c in p.getlist("class") if c)) if p.get("cf") else None
    books = tuple(dict.fromkeys(b for b in p.getlist("book") if b))
    if any(not _ID.match(b) for b in books):
        raise PageError.plain(400, "book must be a manifest id")
    lang = p.get("lang") or ""
    return SearchState(
        q=" ".join((p.get("q") or "").split())[:500], by=by, similar=similar, upload=upload,
        image_url=(p.get("image_url") or "").strip()[:2000], model=model, match=match, classes=classes,
        books=books, collection=(p.get("collection") or "")[:2000],
        year_from=_year(p.get("from"), "from"), year_to=_year(p.get("to"), "to"), page=int(raw_page),
        lang=lang if lang in LANGUAGES else "")


# --- running a search ------------------------------------------------------------------------------------------


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


def _cards(request: Request, facets: Facets, rows: Iterable[tuple[RegionView, float | None, list[Any]]]) -> list[Card]:
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


def _model_for(state: SearchState, facets: Facets, *, image_query: bool) -> str:
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


def _query_image(request: Request, state: SearchState) -> Image.Image:
    st = request.app.state.ivs
    opts = st.options
    if state.kind == "upload":
        path = _uploads_dir(st) / f"{state.upload}.jpg"
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
        kept = [(views[m.region_id], m.score, m.snippets(width=60, limit=2)) for m in result.matches
                if m.region_id in views and filters.keep(views[m.region_id])]
        out.total = len(kept)
        out.total_at_least = result.total > MAX_TEXT_MATCHES
        out.has_next = start + PAGE_SIZE < len(kept)
        out.cards = _cards(request, facets, kept[start:start + PAGE_SIZE])
        return out
    if not kind:
        return out
    query: dict[str, Any]
    if kind == "meaning":
        model = _model_for(state, facets, image_query=False)
        choice = facets.model(model)
        if choice is not None and not choice.reads_text:
            raise PageError(400, "err_no_text_model", model=model)
        query = {"text": state.q}
    elif kind == "region":
        region = st.store.region(state.similar)
        if region is None:
            raise PageError.plain(404, f"no region {state.similar!r} in the catalogue")
        model = _model_for(state, facets, image_query=True)
        query = {"region_id": state.similar}
        out.query_region = _cards(request, facets, [(region, None, [])])[0]
    else:
        model = _model_for(state, facets, image_query=True)
        query = {"image": _query_image(request, state)}
        out.query_image = (f"{_root(request)}/search/uploads/{state.upload}.jpg" if kind == "upload"
                           else state.image_url)
    out.model = model
    k = min(st.options.similar_max_k, start + PAGE_SIZE + 1)
    hits = st.find_similar(model=model, k=k, manifest=filters.single_book,
                           exclude_classes=filters.excluded_classes or None, **query)
    pairs = [(h.region, float(h.score)) for h in hits]
    views = st.store.regions_by_id([rid for rid, _ in pairs])
    kept = [(views[rid], score, []) for rid, score in pairs if rid in views and filters.keep(views[rid])]
    out.has_next = len(kept) > start + PAGE_SIZE and start + PAGE_SIZE < st.options.similar_max_k
    out.cards = _cards(request, facets, kept[start:start + PAGE_SIZE])
    return out


# --- rendering -------------------------------------------------------------------------------------------------


def _root(request: Request) -> str:
    # Behind a proxy that serves us under --base-url's path (https://host/ivs), links must carry that path:
    # "/static/pages.css" resolved to https://host/static/pages.css. The ASGI root_path wins when set.
    root = request.scope.get("root_path", "") or urlparse(request.app.state.ivs.urls.base).path
    return root.rstrip("/")


def _lang(request: Request, state_lang: str = "") -> str:
    return pick_language(state_lang or request.query_params.get("lang"), request.headers.get("accept-language"))


def _links(request: Request, st: Any, lang: str, state: SearchState | None = None) -> dict[str, Any]:
    root = _root(request)
    keep = {"lang": lang}
    if state is not None:
        keep.update({"model": state.model, "match": state.match if state.match != "semantic" else ""})

    def similar_url(region_id: str) -> str:
        base = state or SearchState()
        return f"{root}/" + base.query(q="", similar=region_id, upload="", image_url="", page=1)

    def detail_url(region_id: str) -> str:
        params = {k: v for k, v in keep.items() if v}
        return f"{root}/region/{region_id}" + ("?" + urlencode(params) if params else "")

    def viewer_url(region: RegionView) -> str:
        params = {"manifest": st.urls.manifest(region.manifest_id), "canvas": region.canvas_uri,
                  "xywh": f"{region.x},{region.y},{region.w},{region.h}", "lang": "nb-NO" if lang == "nb" else "en"}
        return f"{root}/viewer?{urlencode(params)}"

    def page_image_url(canvas_id: str) -> str:
        return f"{root}/page-image/{canvas_id}.jpg"

    return {"similar_url": similar_url, "detail_url": detail_url, "viewer_url": viewer_url,
            "page_image_url": page_image_url}


def _render(name: str, status: int = 200, headers: dict[str, str] | None = None, **context: Any) -> HTMLResponse:
    return HTMLResponse(_env.get_template(name).render(**context), status_code=status, headers=headers)


def _base_context(request: Request, lang: str, state: SearchState | None) -> dict[str, Any]:
    st = request.app.state.ivs
    root = _root(request)
    switch = {}
    for code in LANGUAGES:
        if state is not None:
            switch[code] = f"{root}/" + state.query(lang=code)
        else:
            path = request.url.path  # under root, like every other link (the server may have added it)
            path = path if root and path.startswith(root + "/") else root + path
            switch[code] = path + "?" + urlencode(
                [(k, v) for k, v in request.query_params.multi_items() if k != "lang"] + [("lang", code)])
    return {"lang": lang, "t": translator(lang), "cls": lambda label: class_name(label, lang), "root": root,
            "switch": switch, "urls": st.urls, **_links(request, st, lang, state)}


def _error_text(lang: str, err: PageError) -> str:
    return err.message or translator(lang)(err.key, **err.values)


async def search_page(request: Request) -> Response:
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(_search_page_sync, request)


def _search_page_sync(request: Request) -> Response:
    facets = _page_data(request).facets()
    error, status = "", 200
    try:
        state = parse_state(request)
    except PageError as err:
        state = SearchState(lang=request.query_params.get("lang", "") if request.query_params.get("lang")
                            in LANGUAGES else "")
        lang = _lang(request, state.lang)
        error, status = _error_text(lang, err), err.status
    lang = _lang(request, state.lang)
    outcome = Outcome()
    if not error:
        try:
            outcome = run_search(request, state, facets)
        except PageError as err:
            error, status = _error_text(lang, err), err.status
        except ApiError as err:
            error, status = err.message, err.status
    filters_view = _filters_view(state, facets)
    context = {**_base_context(request, lang, state), "state": state, "facets": facets, "outcome": outcome,
               "error": error, "filters": filters_view, "page_size": PAGE_SIZE}
    headers = {"Vary": "HX-Request, HX-Target, Accept-Language"}
    if request.headers.get("hx-request") == "true" and request.headers.get("hx-target") == "results" \
            and not request.headers.get("hx-history-restore-request"):
        return _render("partial.html", status=status, headers=headers, **context)
    return _render("search.html", status=status, headers=headers, **context)


def _filters_view(state: SearchState, facets: Facets) -> dict[str, Any]:
    offered = [c for c, _ in facets.classes]
    if state.classes is None:
        included = set(offered) - facets.hidden_classes | {UNCLASSIFIED}
    else:
        included = set(state.classes)
    model = state.model or facets.default_model
    return {"included": included, "model": model, "books": set(state.books)}


async def region_page(request: Request) -> Response:
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(_region_page_sync, request)


def _region_page_sync(request: Request) -> Response:
    st = request.app.state.ivs
    lang = _lang(request)
    region_id = request.path_params["region"]
    region = st.store.region(region_id) if _ID.match(region_id) else None
    try:
        state = parse_state(request)
    except PageError:
        state = SearchState()
    state = replace(state, lang=lang if request.query_params.get("lang") else "")
    context = _base_context(request, lang, None)
    if region is None:
        return _render("not_found.html", status=404, **context, what=region_id)
    facets = _page_data(request).facets()
    card = _cards(request, facets, [(region, None, [])])[0]
    canvas = st.catalogue.query_one("SELECT width, height FROM canvas WHERE id=?", (card.canvas_id,))
    cw, ch = (canvas["width"], canvas["height"]) if canvas else (region.canvas_width, region.canvas_height)
    box = {k: round(100.0 * v / d, 3) for k, v, d in
           (("left", region.x, cw), ("top", region.y, ch), ("width", region.w, cw), ("height", region.h, ch))}
    context.update(_links(request, st, lang, state))
    return _render("region.html", **context, card=card, box=box, canvas_w=cw, canvas_h=ch, state=state,
                   back=f"{_root(request)}/" + state.query(q="", similar="", page=1))


# --- uploads and page images -----------------------------------------------------------------------------------


def _uploads_dir(st: Any) -> Path:
    return Path(st.cache_dir) / "uploads"  # the data dir, unless that is served read-only


def _jpeg(image: Image.Image, box: tuple[int, int]) -> bytes:
    image = image.copy()
    image.thumbnail(box, Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    image.convert("RGB").save(buf, "JPEG", quality=90)
    return buf.getvalue()


def store_upload(st: Any, image: Image.Image, original: bytes) -> str:
    """Keep an uploaded picture (shrunk) under its content hash and return the hash; old uploads are pruned."""
    name = hashlib.sha256(original).hexdigest()[:32]
    folder = _uploads_dir(st)
    path = folder / f"{name}.jpg"
    if not path.exists():
        atomic_write_bytes(path, _jpeg(image, (UPLOAD_MAX_SIDE, UPLOAD_MAX_SIDE)), durable=False)
        files = sorted(folder.glob("*.jpg"), key=lambda p: p.stat().st_mtime)
        for old in files[:max(0, len(files) - UPLOAD_KEEP)]:
            old.unlink(missing_ok=True)
    return name


async def image_search(request: Request) -> Response:
    """``POST /search/image``: a file (or a URL) from the upload form; answers with a redirect to the permalink."""
    from starlette.concurrency import run_in_threadpool
    from starlette.exceptions import HTTPException

    st = request.app.state.ivs
    lang = _lang(request)
    try:
        form = await request.form(max_files=1, max_fields=20, max_part_size=st.options.max_body_bytes)
    except HTTPException as exc:
        return _render("message.html", status=400, **_base_context(request, lang, None), title="error",
                       message=str(exc.detail))
    lang = _lang(request, str(form.get("lang") or ""))
    base = SearchState(model=str(form.get("model") or "") if _ID.match(str(form.get("model") or "")) else "",
                       match="duplicate" if form.get("match") == "duplicate" else "semantic",
                       lang=str(form.get("lang") or "") if form.get("lang") in LANGUAGES else "")
    upload = form.get("image")
    data = b""
    if upload is not None and not isinstance(upload, str):
        data = await upload.read()
    url = str(form.get("image_url") or "").strip()
    try:
        if data:
            image = await run_in_threadpool(decode_image, data, st.options.max_image_pixels)
            name = await run_in_threadpool(store_upload, st, image, data)
            target = f"{_root(request)}/" + base.query(upload=name)
        elif url:
            target = f"{_root(request)}/" + base.query(image_url=url[:2000])
        else:
            raise PageError(422, "err_no_file")
    except ApiError as err:
        return _render("message.html", status=err.status, **_base_context(request, lang, base),
                       title="error", message=err.message)
    except PageError as err:
        return _render("message.html", status=err.status, **_base_context(request, lang, base), title="error",
                       message=_error_text(lang, err))
    if request.headers.get("hx-request") == "true":
        return Response(status_code=204, headers={"HX-Redirect": target})
    return RedirectResponse(target, status_code=303)


def upload_image(request: Request) -> Response:
    name = request.path_params["name"]
    path = _uploads_dir(request.app.state.ivs) / f"{name}.jpg"
    if not _UPLOAD.match(name) or not path.is_file():
        return error_response(404, f"no upload {name!r}")
    return FileResponse(path, media_type="image/jpeg", headers={"Cache-Control": "public, max-age=86400"})


def _read_source_image(st: Any, url: str) -> bytes:
    opts = st.options
    return read_catalogue_image(url, max_bytes=opts.max_fetch_bytes, timeout_s=opts.fetch_timeout_s,
                                allow_private=opts.allow_private_urls)


async def page_image(request: Request) -> Response:
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(_page_image_sync, request)


def _page_image_sync(request: Request) -> Response:
    """A page thumbnail: the IIIF image service's rendering when there is one, else a cached shrunk copy."""
    st = request.app.state.ivs
    cid = request.path_params["canvas"]
    canvas = st.catalogue.query_one(
        "SELECT c.* FROM canvas c JOIN manifest m ON m.id = c.manifest_id WHERE c.id=? AND m.status='ok'", (cid,)) \
        if _ID.match(cid) else None
    if canvas is None:
        return error_response(404, f"no canvas {cid!r} in the catalogue")
    width = PAGE_THUMB_WIDTH
    if canvas["image_service"]:
        full_w = canvas["image_width"] or canvas["width"]
        return RedirectResponse(f"{canvas['image_service'].rstrip('/')}/full/{min(width, full_w)},/0/default.jpg",
                                status_code=302)
    if not canvas["image_url"]:
        return error_response(404, f"canvas {cid!r} has no image")
    path = Path(st.cache_dir) / "page-thumbs" / f"{cid}-{width}.jpg"
    if not path.is_file():
        try:
            data = _read_source_image(st, canvas["image_url"])
            image = decode_image(data, st.options.max_image_pixels)
        except (ApiError, OSError) as exc:
            return error_response(502, f"page image unavailable: {getattr(exc, 'message', exc)}")
        atomic_write_bytes(path, _jpeg(image, (width, 8 * width)), durable=False)  # page width, any height
    return FileResponse(path, media_type="image/jpeg", headers={"Cache-Control": "public, max-age=86400"})


def page_routes() -> list[BaseRoute]:
    """The people-facing pages; mount them in the app's route list (``/`` is theirs)."""
    return [
        Route("/", search_page, methods=["GET", "HEAD"]),
        Route("/region/{region}", region_page, methods=["GET", "HEAD"]),
        Route("/search/image", image_search, methods=["POST"]),
        Route("/search/uploads/{name}.jpg", upload_image, methods=["GET", "HEAD"]),
        Route("/page-image/{canvas}.jpg", page_image, methods=["GET", "HEAD"]),
        Mount("/static", app=StaticFiles(directory=HERE / "static"), name="static"),
    ]
