"""Full-text index over the text around each region (context before/after and caption).

SQLite FTS5 in its own file next to the catalogue: BM25 ranking, case folding and accent folding
(``unicode61 remove_diacritics 2``), prefix queries (``bir*``) and the term vocabulary for autocomplete.
The index follows the catalogue's change log, so after an ingest (in any process) ``sync`` applies only
what changed; a catalogue that was rebuilt from scratch is noticed and re-indexed whole.

Stored text is folded one character for one character (long s → s, …), so the offsets FTS5 reports on it
are offsets into the original text too: snippets are cut from the original, unfolded text.
"""

from __future__ import annotations

import re
import sqlite3
import threading
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# One-for-one folds the unicode61 tokenizer does not do. Each maps one character to one character.
_FOLD = str.maketrans({"ſ": "s", "ß": "ß", "æ": "æ", "Æ": "Æ"})
_WORD = re.compile(r"\w", re.UNICODE)

# Regions the layout marked that are not pictures (rules, slivers, specks: geometry.flags_for). Their
# context text is the same page text as the real pictures' beside them, so indexing them floods results.
NOISE_FLAGS = frozenset({"separator", "aspect", "tiny"})


def is_noise(flags: str) -> bool:
    return any(f in NOISE_FLAGS for f in flags.split(","))

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS doc (
    rowid INTEGER PRIMARY KEY,
    region_id TEXT NOT NULL UNIQUE,
    manifest_id TEXT NOT NULL,
    text TEXT NOT NULL            -- the original (unfolded) text, to cut snippets from
);
CREATE INDEX IF NOT EXISTS doc_manifest ON doc(manifest_id);
CREATE VIRTUAL TABLE IF NOT EXISTS fts USING fts5(
    text, caption, scope, tokenize = "unicode61 remove_diacritics 2", prefix = '2 3'
);
CREATE VIRTUAL TABLE IF NOT EXISTS vocab_col USING fts5vocab(fts, 'col');
CREATE VIRTUAL TABLE IF NOT EXISTS vocab_inst USING fts5vocab(fts, 'instance');
"""

# BM25 column weights: text (before + caption + after), caption again (a caption names the picture), scope.
BM25 = "bm25(fts, 1.0, 2.0, 0.0)"


def fold(text: str) -> str:
    return text.translate(_FOLD)


def fold_term(term: str) -> str:
    """A term as the tokenizer stores it: lower case, no diacritics."""
    decomposed = unicodedata.normalize("NFKD", fold(term).lower())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def region_text(before: str, caption: str, after: str) -> str:
    return " ".join(t for t in (before, caption, after) if t)


def build_query(q: str) -> str | None:
    """An FTS5 expression from user input: every term must occur; ``term*`` is a prefix.

    Each term is quoted, so FTS5 operators and column filters in the input are plain text; terms without
    a letter or digit are dropped. None when nothing searchable is left.
    """
    parts = []
    for raw in q.split():
        prefix = raw.endswith("*")
        term = fold(raw.rstrip("*"))
        if not _WORD.search(term):
            continue
        quoted = '"' + term.replace('"', '""') + '"'
        parts.append(quoted + (" *" if prefix else ""))
    if not parts:
        return None
    return "{text caption} : (" + " AND ".join(parts) + ")"


@dataclass(frozen=True)
class Span:
    start: int
    end: int


@dataclass
class TextMatch:
    region_id: str
    manifest_id: str
    score: float  # BM25, higher is better
    text: str
    spans: list[Span] = field(default_factory=list)

    def snippets(self, width: int = 80, limit: int = 3) -> list[tuple[str, str, str]]:
        """(prefix, exact, suffix) around each match, cut at word boundaries."""
        out = []
        for span in self.spans[:limit]:
            before = self.text[max(0, span.start - width):span.start]
            after = self.text[span.end:span.end + width]
            if span.start - width > 0 and " " in before:
                before = before[before.index(" ") + 1:]
            if span.end + width < len(self.text) and " " in after:
                after = after[:after.rindex(" ")]
            out.append((before, self.text[span.start:span.end], after))
        return out


@dataclass
class TextResults:
    total: int
    matches: list[TextMatch]


_TOKEN = re.compile(r"[^\W_]+", re.UNICODE)


def query_terms(q: str) -> list[tuple[str, bool]]:
    """(folded token, is prefix) for every token of the query, as the tokenizer splits them."""
    out = []
    for raw in q.split():
        prefix = raw.endswith("*")
        tokens = _TOKEN.findall(fold(raw.rstrip("*")))
        for i, token in enumerate(tokens):
            out.append((fold_term(token), prefix and i == len(tokens) - 1))
    return out


def find_spans(text: str, terms: list[tuple[str, bool]]) -> list[Span]:
    """Where the query's tokens occur in ``text`` (folded like the index folds), in text order."""
    if not terms:
        return []
    exact = {t for t, p in terms if not p}
    prefixes = tuple(t for t, p in terms if p)
    spans = []
    for m in _TOKEN.finditer(fold(text)):
        token = fold_term(m.group())
        if token in exact or (prefixes and token.startswith(prefixes)):
            spans.append(Span(m.start(), m.end()))
    return spans


class TextIndex:
    """The index file. Reads use one connection per thread; writes are serialised by a lock."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._write_lock = threading.Lock()
        conn = self._conn()
        conn.execute("PRAGMA journal_mode=WAL")
        conn.executescript(SCHEMA)

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
        return conn

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    # --- writing -------------------------------------------------------------------------------

    def _meta(self, key: str, default: str = "") -> str:
        row = self._conn().execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else default

    @property
    def last_seq(self) -> int:
        return int(self._meta("last_seq", "0"))

    def __len__(self) -> int:
        return int(self._conn().execute("SELECT COUNT(*) FROM doc").fetchone()[0])

    @staticmethod
    def _upsert(conn: sqlite3.Connection, row: Any) -> None:
        text = region_text(row["context_before"], row["caption"], row["context_after"])
        if is_noise(row["flags"]):
            text = ""
        old = conn.execute("SELECT rowid FROM doc WHERE region_id=?", (row["id"],)).fetchone()
        if old is not None:
            conn.execute("DELETE FROM fts WHERE rowid=?", (old[0],))
            conn.execute("UPDATE doc SET manifest_id=?, text=? WHERE rowid=?", (row["manifest_id"], text, old[0]))
            rowid = old[0]
        else:
            rowid = conn.execute("INSERT INTO doc(region_id, manifest_id, text) VALUES (?, ?, ?)",
                                 (row["id"], row["manifest_id"], text)).lastrowid
        if text:  # regions without text keep a doc row (so sync can find them) but no fts row
            conn.execute("INSERT INTO fts(rowid, text, caption, scope) VALUES (?, ?, ?, ?)",
                         (rowid, fold(text), fold(row["caption"]), row["manifest_id"]))

    @staticmethod
    def _delete(conn: sqlite3.Connection, region_id: str) -> None:
        old = conn.execute("SELECT rowid FROM doc WHERE region_id=?", (region_id,)).fetchone()
        if old is not None:
            conn.execute("DELETE FROM fts WHERE rowid=?", (old[0],))
            conn.execute("DELETE FROM doc WHERE rowid=?", (old[0],))

    def rebuild(self, catalogue: Any) -> int:
        """Index every live region of the catalogue from scratch. Returns the number of regions."""
        with self._write_lock:
            seq = _catalogue_seq(catalogue)
            rows = catalogue.query(
                "SELECT id, manifest_id, context_before, context_after, caption, flags FROM region WHERE deleted=0")
            conn = self._conn()
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute("DELETE FROM fts")
                conn.execute("DELETE FROM doc")
                for row in rows:
                    self._upsert(conn, row)
                conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('last_seq', ?)", (str(seq),))
                conn.execute("INSERT INTO fts(fts) VALUES ('optimize')")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return len(rows)

    def sync(self, catalogue: Any) -> int:
        """Apply the catalogue changes logged since the last sync. Returns how many regions it touched."""
        seq = _catalogue_seq(catalogue)
        last = self.last_seq
        if seq == last:
            return 0
        if last == 0 or seq < last:  # never indexed, or a catalogue rebuilt from scratch
            return self.rebuild(catalogue)
        with self._write_lock:
            last = self.last_seq
            changed = {r["object_id"] for r in catalogue.query(
                "SELECT object_id FROM change WHERE seq > ? AND seq <= ? AND object_type='region'", (last, seq))}
            conn = self._conn()
            conn.execute("BEGIN IMMEDIATE")
            try:
                for region_id in changed:
                    row = catalogue.query_one(
                        "SELECT id, manifest_id, context_before, context_after, caption, flags, deleted FROM region "
                        "WHERE id=?", (region_id,))
                    if row is None or row["deleted"]:
                        self._delete(conn, region_id)
                    else:
                        self._upsert(conn, row)
                conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('last_seq', ?)", (str(seq),))
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return len(changed)

    # --- reading -------------------------------------------------------------------------------

    def search(self, q: str, *, manifest_id: str | None = None, limit: int = 20, offset: int = 0) -> TextResults:
        """Regions whose text matches every term of ``q``, best BM25 first, with match spans."""
        expr = build_query(q)
        if expr is None:
            return TextResults(0, [])
        if manifest_id:
            expr = 'scope : "' + manifest_id.replace('"', '""') + '" AND ' + expr
        conn = self._conn()
        try:
            total = conn.execute("SELECT COUNT(*) FROM fts WHERE fts MATCH ?", (expr,)).fetchone()[0]
            # Spans are found in Python on the page's texts: FTS5 highlight() costs a second pass over
            # every match (a prefix query rebuilds its whole doclist), 2-5x the ranked query at 100k regions.
            rows = conn.execute(
                f"""SELECT d.region_id, d.manifest_id, d.text, r.score FROM
                      (SELECT rowid, -{BM25} AS score FROM fts WHERE fts MATCH ? ORDER BY {BM25} LIMIT ? OFFSET ?) r
                    JOIN doc d ON d.rowid = r.rowid ORDER BY r.score DESC""",
                (expr, limit, offset)).fetchall()
        except sqlite3.OperationalError as exc:  # e.g. a query FTS5 cannot parse despite quoting
            raise ValueError(f"cannot search for {q!r}: {exc}") from None
        terms = query_terms(q)
        matches = [TextMatch(r[0], r[1], float(r[3]), r[2], find_spans(r[2], terms)) for r in rows]
        return TextResults(int(total), matches)

    def terms(self, prefix: str, *, manifest_id: str | None = None, limit: int = 20,
              min_count: int = 1) -> list[tuple[str, int]]:
        """Indexed terms starting with ``prefix`` (folded) and how many regions hold them.

        The ``limit`` most frequent, returned in alphabetical order as Content Search 2.0 §5 asks.
        """
        start = fold_term(prefix.strip().rstrip("*"))
        if not start or not _WORD.search(start):
            return []
        end = start + "\U0010ffff"
        conn = self._conn()
        if manifest_id:
            rows = conn.execute(
                """SELECT term, COUNT(DISTINCT doc) AS n FROM vocab_inst
                   WHERE term >= ? AND term < ? AND col = 'text'
                     AND doc IN (SELECT rowid FROM doc WHERE manifest_id = ?)
                   GROUP BY term HAVING n >= ? ORDER BY n DESC, term LIMIT ?""",
                (start, end, manifest_id, min_count, limit)).fetchall()
        else:
            rows = conn.execute(
                """SELECT term, doc AS n FROM vocab_col WHERE term >= ? AND term < ? AND col = 'text'
                   AND doc >= ? ORDER BY n DESC, term LIMIT ?""",
                (start, end, min_count, limit)).fetchall()
        return sorted(((r[0], int(r[1])) for r in rows), key=lambda t: t[0])


def _catalogue_seq(catalogue: Any) -> int:
    row = catalogue.query_one("SELECT COALESCE(MAX(seq), 0) AS s FROM change")
    return int(row["s"]) if row is not None else 0


def open_text_index(data_dir: Path | str) -> TextIndex:
    return TextIndex(Path(data_dir) / "text-index.sqlite")
