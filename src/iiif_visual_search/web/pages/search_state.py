"""The search state: every field is a URL parameter, so each search is a permalink."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request

from ..i18n import LANGUAGES
from .errors import PageError

ID_PATTERN = re.compile(r"^[A-Za-z0-9_.-]{1,80}$")
UPLOAD_PATTERN = re.compile(r"^[0-9a-f]{32}$")


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
    if similar and not ID_PATTERN.match(similar):
        raise PageError.plain(400, "similar must be a region id")
    upload = (p.get("upload") or "").strip()
    if upload and not UPLOAD_PATTERN.match(upload):
        raise PageError.plain(400, "upload must be the id of an uploaded picture")
    model = (p.get("model") or "").strip()
    if model and not ID_PATTERN.match(model):
        raise PageError.plain(400, "model must be a model name")
    raw_page = p.get("page") or "1"
    if not raw_page.isdigit() or not 1 <= int(raw_page) <= 10_000:
        raise PageError.plain(400, f"page must be a number from 1 to 10000, got {raw_page[:40]!r}")
    classes = tuple(dict.fromkeys(c for c in p.getlist("class") if c)) if p.get("cf") else None
    books = tuple(dict.fromkeys(b for b in p.getlist("book") if b))
    if any(not ID_PATTERN.match(b) for b in books):
        raise PageError.plain(400, "book must be a manifest id")
    lang = p.get("lang") or ""
    return SearchState(
        q=" ".join((p.get("q") or "").split())[:500], by=by, similar=similar, upload=upload,
        image_url=(p.get("image_url") or "").strip()[:2000], model=model, match=match, classes=classes,
        books=books, collection=(p.get("collection") or "")[:2000],
        year_from=_year(p.get("from"), "from"), year_to=_year(p.get("to"), "to"), page=int(raw_page),
        lang=lang if lang in LANGUAGES else "")
