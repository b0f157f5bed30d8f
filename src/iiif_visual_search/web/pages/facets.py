"""What the catalogue knows about books, models and classes: the sidebar's facets, cached per catalogue state."""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.requests import Request

from ..security import safe_link

_YEAR = re.compile(r"(?<!\d)(1[0-9]{3}|20[0-9]{2})(?!\d)")
_YEAR_LABEL = re.compile(r"date|year|dato|\bår\b|utgi|publi|issued|created|datum|jahr|ann[ée]e|druck|imprint",
                         re.IGNORECASE)
_AUTHOR_LABEL = re.compile(r"author|creator|forfatter|auteur|contributor|opphav|verfasser|autor|artist",
                           re.IGNORECASE)


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
    def reads_text(self) -> bool:
        """Whether any indexed model reads text: else "what the picture shows" search is not offered."""
        return any(m.reads_text for m in self.models)

    @property
    def offers_match_choice(self) -> bool:
        """Near-duplicates vs similar content is a choice only with the fingerprint and another model."""
        return self.model("fingerprint") is not None and any(m.key != "fingerprint" for m in self.models)

    @property
    def default_model(self) -> str:
        """The best indexed model (``models`` is in ``index.model_choice`` order)."""
        return self.models[0].key if self.models else ""


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
        from ...embed.models import MODEL_NAMES
        from ...index.model_choice import indexed_models

        counts = self.st.store.models()
        out = []
        for m in indexed_models(Path(self.st.settings.data_dir)):  # best first: the first is the default
            if not counts.get(m.key):
                continue
            label = m.key if m.key in MODEL_NAMES else f"{m.key} ({m.architecture})"
            out.append(ModelChoice(m.key, label, m.reads_text))
        return out


def page_data(request: Request) -> PageData:
    app_state = request.app.state
    data = getattr(app_state, "ivs_pages", None)
    if data is None:
        data = app_state.ivs_pages = PageData(app_state.ivs)
    return data
