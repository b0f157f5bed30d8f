"""Full-text index over the text around each region (context before/after and caption).

SQLite FTS5 in its own file next to the catalogue: BM25 ranking, case folding and accent folding
(``unicode61 remove_diacritics 2``), prefix queries (``bir*``) and the term vocabulary for autocomplete.
The index follows the catalogue's change log, so after an ingest (in any process) ``sync`` applies only
what changed; a catalogue that was rebuilt from scratch is noticed and re-indexed whole.

Stored text is folded one character for one character (long s → s, …), so the offsets FTS5 reports on it
are offsets into the original text too: snippets are cut from the original, unfolded text.
"""

from __future__ import annotations

import functools
import json
import re
import sqlite3
import threading
import unicodedata
from collections import Counter, OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..sqlite_read_only import connect_read_only

# One-for-one folds the unicode61 tokenizer does not do. Each maps one character to one character.
_FOLD = {"ſ": "s", "ß": "ß", "æ": "æ", "Æ": "Æ"}
# Applied with str.replace, which runs at memchr speed: str.translate looks up every character (30 µs for
# the 500 characters of a region's text, paid for each hit of a search page).
_FOLD_CHANGES = tuple((a, b) for a, b in _FOLD.items() if a != b)
_WORD = re.compile(r"\w", re.UNICODE)

# Regions the layout marked that are not pictures (rules, slivers, specks: geometry.flags_for). Their
# context text is the same page text as the real pictures' beside them, so indexing them floods results.
NOISE_FLAGS = frozenset({"separator", "aspect", "tiny"})

# What indexing reads of a region; ``label`` is its class (a person's label wins over a model's).
_REGION_COLUMNS = ("id, manifest_id, context_before, context_after, caption, flags, "
                   "(SELECT l.label FROM label l WHERE l.region_id = region.id "
                   "ORDER BY l.source = 'manual' DESC LIMIT 1) AS label")


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

# FTS5's bm25() costs ~3 µs per matching row, and ORDER BY it ranks every match: 100-150 ms for a word in
# half of 100k texts. Queries whose every term is in at least HOT_DF texts are ranked instead from in-memory
# postings: each row's bm25() for the term alone, read once per term and index version (``_Hot``).
HOT_DF = 2000
HOT_CACHE_TERMS = 256   # postings kept per index version (LRU)
HOT_CACHE_ROWS = 30_000_000  # and at most this many rows over all of them: 20 bytes each (~600 MB)
WARM_TERMS = 64         # the most frequent terms, loaded in the background when the index changes


def fold(text: str) -> str:
    for a, b in _FOLD_CHANGES:
        if a in text:
            text = text.replace(a, b)
    return text


@functools.lru_cache(maxsize=1 << 16)  # called per token of every snippet text: words repeat
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
    seen: set[tuple[str, bool]] = set()
    for raw in q.split():
        prefix = raw.endswith("*")
        term = fold(raw.rstrip("*"))
        if not _WORD.search(term):
            continue
        quoted = '"' + term.replace('"', '""') + '"'
        # A repeated term adds nothing to an AND but FTS5 walks its doclist again: "a* " * 3000 took 4 s.
        # (FTS5 matches case-insensitively, so "Moskau" and "moskau" are one term.)
        key = (term.casefold(), prefix)
        if key not in seen:
            seen.add(key)
            parts.append(quoted + (" *" if prefix else ""))
    if not parts:
        return None
    return "{text caption} : (" + " AND ".join(parts) + ")"


@dataclass(frozen=True)
class Span:
    start: int
    end: int


# Snippets shown per hit, at most: a search finds the spans of the first SNIPPETS matches of each text only.
SNIPPETS = 3


@dataclass
class TextMatch:
    region_id: str
    manifest_id: str
    score: float  # BM25, higher is better
    text: str
    spans: list[Span] = field(default_factory=list)  # from a search: the first SNIPPETS matches

    def snippets(self, width: int = 80, limit: int = SNIPPETS) -> list[tuple[str, str, str]]:
        """(prefix, exact, suffix) around each match, cut at word boundaries.

        The snippets of one text never overlap: a suffix stops where the next match starts, and a prefix
        starts after the previous snippet's suffix. Shown one after another (Clover lists every hit's
        before/match/after) no word appears twice.
        """
        out = []
        spans = self.spans[:limit]
        floor = 0  # where the previous snippet ended
        for i, span in enumerate(spans):
            ceiling = spans[i + 1].start if i + 1 < len(spans) else len(self.text)
            start = max(floor, span.start - width)
            end = min(ceiling, span.end + width)
            before = self.text[start:span.start]
            after = self.text[span.end:end]
            if start > floor and start > 0 and " " in before:
                before = before[before.index(" ") + 1:]
            if end < ceiling and " " in after:
                after = after[:after.rindex(" ")]
            out.append((before, self.text[span.start:span.end], after))
            floor = span.end + len(after)
        return out


@dataclass
class TextResults:
    total: int
    matches: list[TextMatch]


# The combining marks FTS5's unicode61 (remove_diacritics 2) keeps inside a token and strips ("desce\u0303dre"
# is one word, "descedre"); other marks, e.g. U+0364 in "scha\u0364dlich", split words there as in FTS5.
# Python's \w holds no combining mark at all. (Measured against SQLite's tokenizer, Latin ranges.)
_TOKEN = re.compile(
    r"(?:[^\W_]|[\u0300-\u0304\u0306-\u030c\u030f\u0311\u031b\u0323-\u0328\u032d\u032e\u0330\u0331])+",
    re.UNICODE)


def query_terms(q: str) -> list[tuple[str, bool]]:
    """(folded token, is prefix) for every token of the query, as the tokenizer splits them."""
    out = []
    for raw in q.split():
        prefix = raw.endswith("*")
        tokens = _TOKEN.findall(fold(raw.rstrip("*")))
        for i, token in enumerate(tokens):
            out.append((fold_term(token), prefix and i == len(tokens) - 1))
    return out


def find_spans(text: str, terms: list[tuple[str, bool]], limit: int | None = None) -> list[Span]:
    """Where the query's tokens occur in ``text`` (folded like the index folds), in text order; the first
    ``limit`` only, if given (a common word's first few are near the start: the rest is not read)."""
    if not terms:
        return []
    exact = {t for t, p in terms if not p}
    prefixes = tuple(t for t, p in terms if p)
    folded = _fold_in_place(text)
    if folded is not None:
        return _spans_by_find(folded, exact, prefixes, limit)
    return _token_spans(text, exact, prefixes, limit)


def _token_spans(text: str, exact: set[str], prefixes: tuple[str, ...], limit: int | None) -> list[Span]:
    """``find_spans`` for any text: every token folded as the index folds it."""
    spans: list[Span] = []
    for m in _TOKEN.finditer(fold(text)):
        token = fold_term(m.group())
        if token in exact or (prefixes and token.startswith(prefixes)):
            spans.append(Span(m.start(), m.end()))
            if len(spans) == limit:
                break
    return spans


_NON_ASCII = re.compile(r"[^\x00-\x7f]")


@functools.lru_cache(maxsize=1 << 14)
def _fold_char(c: str) -> str | None:
    """``c`` (lower case) as one character of a folded token, " " for a character between tokens, None where
    folding does not keep one character for one (a ligature, a combining mark inside a token)."""
    f = fold_term(c)
    if _TOKEN.fullmatch(c):
        return f if len(f) == 1 and f.isalnum() else None
    return " " if not f or not f.isalnum() else None


def _fold_in_place(text: str) -> str | None:
    """``text`` folded as the index folds its tokens, one character for one (so offsets into it are offsets
    into ``text``), with every character between tokens a non-alphanumeric one; None where that cannot be."""
    if text.isascii():
        return text.lower()
    if "\u03a3" in text:  # capital sigma lowers by its context (final ς), which differs for a token alone
        return None
    low = text.lower()
    if len(low) != len(text):
        return None
    if low.isascii():
        return low
    parts, last = [], 0
    for m in _NON_ASCII.finditer(low):
        f = _fold_char(m.group())
        if f is None:
            return None
        parts.append(low[last:m.start()])
        parts.append(f)
        last = m.end()
    parts.append(low[last:])
    return "".join(parts)


def _spans_by_find(folded: str, exact: set[str], prefixes: tuple[str, ...], limit: int | None) -> list[Span]:
    """``find_spans`` on a text folded in place (``_fold_in_place``), where a token is a run of alphanumeric
    characters: each term is looked for with ``str.find`` instead of folding every token of the text (a rare
    word's first match is often near the end of its text, and a search page has 50 texts)."""
    starts: dict[int, int] = {}
    for term, is_prefix in [(t, False) for t in exact] + [(t, True) for t in prefixes]:
        if not term:
            continue
        found, at = 0, folded.find(term)
        while at >= 0 and (limit is None or found < limit):
            end = at + len(term)
            if at == 0 or not folded[at - 1].isalnum():
                if is_prefix:
                    while end < len(folded) and folded[end].isalnum():
                        end += 1
                if is_prefix or end == len(folded) or not folded[end].isalnum():
                    starts[at] = max(end, starts.get(at, end))
                    found += 1
            at = folded.find(term, at + 1)
    spans = [Span(a, starts[a]) for a in sorted(starts)]
    return spans[:limit] if limit is not None else spans


# Bits set in each byte value: popcount for numpy < 2 (np.bitwise_count is numpy 2's).
_BITS = np.array([i.bit_count() for i in range(256)], dtype=np.int64)


def _popcount(bits: np.ndarray) -> int:
    counter = getattr(np, "bitwise_count", None)
    return int(counter(bits).sum(dtype=np.int64)) if counter is not None else int(_BITS[bits].sum())


@dataclass
class _Postings:
    """One term's rows (sorted) and each row's BM25 part for the term, fixed for an index version; made on
    first use, the rows in score order and a bitmap of the rows (one bit a row, ANDed to count the matches
    of several words)."""

    rows: np.ndarray
    score: np.ndarray
    size: int  # bits in the bitmap: the index version's last rowid + 1
    _order: np.ndarray | None = None
    _bits: np.ndarray | None = None

    def order(self) -> np.ndarray:
        """Positions best first (score descending, then rowid), sorted once."""
        if self._order is None:
            self._order = np.lexsort((self.rows, -self.score)).astype(np.int32)
        return self._order

    def bits(self) -> np.ndarray:
        if self._bits is None:
            held = np.zeros(self.size, dtype=bool)
            held[self.rows[self.rows < self.size]] = True  # rows added since the version was sized: left out
            self._bits = np.packbits(held)
        return self._bits

    def parts(self, rows: np.ndarray) -> np.ndarray:
        """The term's BM25 part for each of ``rows``, every one of which holds the term."""
        return self.score[np.searchsorted(self.rows, rows)]


class _Hot:
    """Postings of frequent terms of one index version, for BM25 in numpy.

    A term's part of a row's BM25 depends only on the row and the term, so it is read once, with the
    postings. A one-word query is then a slice of the term's rows in score order. A query of several words walks
    the terms' rows in score order together and stops when no row further down can reach the page (Fagin's
    threshold algorithm); its total is the popcount of the terms' bitmaps ANDed. Neither looks at every
    matching row, so a query costs about the same whether the words are in 1% or 90% of the texts."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        # Bitmaps are indexed by rowid: rows are numbered from 1 and renumbered from 1 by a rebuild.
        self.size = int(conn.execute("SELECT COALESCE(MAX(rowid), 0) + 1 FROM doc").fetchone()[0])
        self._postings: OrderedDict[str, _Postings] = OrderedDict()
        self._rows = 0  # over every cached term
        self._lock = threading.Lock()

    def postings(self, conn: sqlite3.Connection, term: str) -> _Postings:
        """The rows holding ``term`` in text or caption, with the term's BM25 part."""
        with self._lock:
            hit = self._postings.get(term)
            if hit is not None:
                self._postings.move_to_end(term)
                return hit
        # A one-phrase query's bm25() is the phrase's part of any query's bm25(): FTS5 sums the parts of
        # its phrases. Reading it costs ~2.5 µs a row, a quarter of summing term instances from fts5vocab.
        found = conn.execute(f"SELECT rowid, -{BM25} FROM fts WHERE fts MATCH ? ORDER BY rowid",
                             ('{text caption} : "' + term.replace('"', '""') + '"',)).fetchall()
        arr = np.array(found, dtype=np.float64).reshape(-1, 2)
        hit = _Postings(arr[:, 0].astype(np.int64), arr[:, 1], self.size)
        with self._lock:
            if term not in self._postings:
                self._rows += len(hit.rows)
            self._postings[term] = hit
            while len(self._postings) > 1 and (len(self._postings) > HOT_CACHE_TERMS
                                               or self._rows > HOT_CACHE_ROWS):
                self._rows -= len(self._postings.popitem(last=False)[1].rows)
        return hit

    def rank(self, conn: sqlite3.Connection, terms: list[str], limit: int, offset: int) -> tuple[int, list[tuple[int, float]]]:
        """(total, [(rowid, score)]) for rows holding every term, best first (ties by rowid): FTS5's bm25
        with our weights, the sum of the terms' parts (shortest list first)."""
        lists = sorted((self.postings(conn, t) for t in terms), key=lambda p: len(p.rows))
        want = offset + limit
        if len(lists) == 1:
            one = lists[0]
            top = one.order()[offset:want]
            return len(one.rows), [(int(one.rows[i]), float(one.score[i])) for i in top]
        both = lists[0].bits().copy()
        for other in lists[1:]:
            np.bitwise_and(both, other.bits(), out=both)
        total = _popcount(both)
        if total == 0 or want <= offset:
            return total, []
        want = min(want, total)
        seen = np.zeros(0, dtype=np.int64)
        found_rows, found_scores = [np.zeros(0, dtype=np.int64)], [np.zeros(0)]
        depth, step = 0, max(64, 2 * want)
        while True:
            fresh = np.unique(np.concatenate([p.rows[p.order()[depth:depth + step]] for p in lists]))
            fresh = fresh[~np.isin(fresh, seen, assume_unique=True)]
            seen = np.concatenate([seen, fresh])
            fresh = fresh[fresh < self.size]  # rows added since this version's bitmaps were sized
            hits = fresh[((both[fresh >> 3] >> (7 - (fresh & 7))) & 1).astype(bool)]
            score = np.zeros(len(hits))
            for plist in lists:
                score += plist.parts(hits)
            found_rows.append(hits)
            found_scores.append(score)
            depth += step
            if any(depth >= len(p.rows) for p in lists):
                break  # a list read to its end: every row holding all the terms has been seen
            # A row not seen yet scores at most the sum of each list's score at this depth.
            bound = 0.0
            for plist in lists:
                bound += float(plist.score[plist.order()[depth - 1]])
            scores = np.concatenate(found_scores)
            if len(scores) >= want and -np.partition(-scores, want - 1)[want - 1] > bound:
                break
            step *= 2
        rows, scores = np.concatenate(found_rows), np.concatenate(found_scores)
        top = np.lexsort((rows, -scores))[offset:want]
        return total, [(int(rows[i]), float(scores[i])) for i in top]


class TextIndex:
    """The index file. Reads use one connection per thread; writes are serialised by a lock."""

    def __init__(self, path: Path | str, *, warm_terms: int = 0, hidden_classes: Sequence[str] = (),
                 read_only: bool = False) -> None:
        self.path = Path(path)
        # Regions whose class is one of these get no text in the index (blank pages, segmentation errors).
        self.hidden_classes = frozenset(hidden_classes)
        # A published index served in place by replicas: never written, and ``sync`` only reports.
        self.read_only = read_only
        self._local = threading.local()
        self._write_lock = threading.Lock()
        if not read_only:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = self._conn()
        if not read_only:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(SCHEMA)
        self.warm_terms = warm_terms
        # Per index version (meta 'version', bumped by every write): counts, hot postings, manifest terms.
        self._version: str | None = None
        self._hot: _Hot | None = None
        self._counts: OrderedDict[str, int] = OrderedDict()
        self._hot_terms: OrderedDict[tuple[str, int], int] = OrderedDict()
        self._len: int | None = None
        self._prefix_terms: OrderedDict[tuple[str, int, int], list[tuple[str, int]]] = OrderedDict()
        self._manifest_terms: OrderedDict[str, Counter[str]] = OrderedDict()
        self._cache_lock = threading.Lock()
        self._warming = False  # a warming thread is running (``_warm``)

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            if self.read_only:
                conn = connect_read_only(self.path)
            else:
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

    def count(self) -> int:
        """``len()``, counted once per index version (the service's /health asks on every probe)."""
        self._current()
        with self._cache_lock:
            if self._len is not None:
                return self._len
        n = len(self)
        with self._cache_lock:
            self._len = n
        return n

    def _upsert(self, conn: sqlite3.Connection, row: Any) -> None:
        text = region_text(row["context_before"], row["caption"], row["context_after"])
        if is_noise(row["flags"]) or row["label"] in self.hidden_classes:
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

    def _hidden_key(self) -> str:
        return json.dumps(sorted(self.hidden_classes))

    def rebuild(self, catalogue: Any) -> int:
        """Index every live region of the catalogue from scratch. Returns the number of regions."""
        with self._write_lock:
            seq = _catalogue_seq(catalogue)
            rows = catalogue.query(f"SELECT {_REGION_COLUMNS} FROM region WHERE deleted=0")
            conn = self._conn()
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute("DELETE FROM fts")
                conn.execute("DELETE FROM doc")
                for row in rows:
                    self._upsert(conn, row)
                conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('last_seq', ?)", (str(seq),))
                conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('hidden', ?)", (self._hidden_key(),))
                _bump_version(conn)
                conn.execute("INSERT INTO fts(fts) VALUES ('optimize')")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return len(rows)

    def is_current(self, catalogue: Any) -> bool:
        """Whether the index holds every change of ``catalogue``, with this index's hidden classes."""
        return self.last_seq == _catalogue_seq(catalogue) and self._meta("hidden") == self._hidden_key()

    def sync(self, catalogue: Any) -> int:
        """Apply the catalogue changes logged since the last sync. Returns how many regions it touched
        (none for a read-only index, which is opened only where it is current: ``State``)."""
        if self.read_only:
            return 0
        seq = _catalogue_seq(catalogue)
        last = self.last_seq
        if self._meta("hidden") != self._hidden_key() and last:
            return self.rebuild(catalogue)  # another set of hidden classes: every region may change
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
                        f"SELECT {_REGION_COLUMNS}, deleted FROM region WHERE id=?", (region_id,))
                    if row is None or row["deleted"]:
                        self._delete(conn, region_id)
                    else:
                        self._upsert(conn, row)
                conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('last_seq', ?)", (str(seq),))
                _bump_version(conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return len(changed)

    # --- reading -------------------------------------------------------------------------------

    def _current(self) -> str:
        """The index version; on a change (a sync here or in another process) every cache starts afresh."""
        version = self._meta("version", "0") + ":" + self._meta("last_seq", "0")
        if version != self._version:
            with self._cache_lock:
                if version != self._version:
                    self._version = version
                    self._hot = None
                    self._counts.clear()
                    self._hot_terms.clear()
                    self._len = None
                    self._prefix_terms.clear()
                    self._manifest_terms.clear()
                    if self.warm_terms and not self._warming:
                        self._warming = True
                        threading.Thread(target=self._warm, daemon=True, name="text-index-warm").start()
        return version

    def _hot_index(self) -> _Hot:
        hot = self._hot
        if hot is None:
            hot = _Hot(self._conn())
            with self._cache_lock:
                self._hot = self._hot or hot
                hot = self._hot
        return hot

    def _warm(self) -> None:
        """Load the postings of the most frequent terms, so the first query for a common word is fast too.

        One warming thread at a time: while an ingest changes the index every few seconds, each change used
        to start another (at a million regions each walks the vocabulary for 2.6 s, then reads postings for
        about 40 s), and they ran side by side. This one follows the newest version until it is done with
        it, dropping the work of a version that was replaced."""
        try:
            while True:
                version = self._version
                try:
                    self._warm_version(version)
                except sqlite3.Error:
                    pass  # warming is an optimisation; queries load what they need themselves
                with self._cache_lock:  # the version checked and the flag cleared as one step
                    if self._version == version:
                        self._warming = False
                        return
        except BaseException:
            with self._cache_lock:
                self._warming = False
            raise
        finally:
            self.close()

    def _warm_version(self, version: str | None) -> None:
        conn = self._conn()
        terms = [r[0] for r in conn.execute(
            "SELECT term FROM vocab_col WHERE col = 'text' AND doc >= ? ORDER BY doc DESC LIMIT ?",
            (HOT_DF, self.warm_terms))]
        hot = self._hot_index()
        for term in terms:
            if self._version != version:
                return
            # Everything a query of the word needs, not only its postings: sorting a word in every text of a
            # million by score took 70-190 ms, paid by the first query of each word.
            postings = hot.postings(conn, term)
            postings.order()
            postings.bits()
            with self._cache_lock:
                if self._version == version:  # in HOT_DF texts at least: no need to count them
                    self._hot_terms[(term, HOT_DF)] = HOT_DF

    def _is_hot(self, term: str) -> bool:
        """Whether ``term`` is in at least HOT_DF texts. fts5vocab's doc count walks the term's whole doclist
        (40 ms for a word in every one of 100k texts), so this counts matches up to HOT_DF only, once per
        term and index version."""
        key = (term, HOT_DF)
        with self._cache_lock:
            known = self._hot_terms.get(key)
        if known is None:
            expr = '{text caption} : "' + term.replace('"', '""') + '"'
            known = int(self._conn().execute(
                "SELECT COUNT(*) FROM (SELECT 1 FROM fts WHERE fts MATCH ? LIMIT ?)", (expr, HOT_DF)).fetchone()[0])
            with self._cache_lock:
                self._hot_terms[key] = known
                while len(self._hot_terms) > 4096:
                    self._hot_terms.popitem(last=False)
        return known >= HOT_DF

    def _count(self, expr: str) -> int:
        with self._cache_lock:
            if expr in self._counts:
                return self._counts[expr]
        n = int(self._conn().execute("SELECT COUNT(*) FROM fts WHERE fts MATCH ?", (expr,)).fetchone()[0])
        with self._cache_lock:
            self._counts[expr] = n
            while len(self._counts) > 4096:
                self._counts.popitem(last=False)
        return n

    def search(self, q: str, *, manifest_id: str | None = None, limit: int = 20, offset: int = 0) -> TextResults:
        """Regions whose text matches every term of ``q``, best BM25 first, with match spans."""
        expr = build_query(q)
        if expr is None:
            return TextResults(0, [])
        self._current()
        terms = query_terms(q)
        conn = self._conn()
        try:
            ranked = self._search_hot(q, terms, manifest_id, limit, offset)
            if ranked is None:
                if manifest_id:
                    expr = 'scope : "' + manifest_id.replace('"', '""') + '" AND ' + expr
                total = self._count(expr)
                ranked = total, conn.execute(
                    f"SELECT rowid, -{BM25} FROM fts WHERE fts MATCH ? ORDER BY {BM25} LIMIT ? OFFSET ?",
                    (expr, limit, offset)).fetchall()
            total, page = ranked
            # Spans are found in Python on the page's texts: FTS5 highlight() costs a second pass over
            # every match (a prefix query rebuilds its whole doclist), 2-5x the ranked query at 100k regions.
            docs = {r[0]: r[1:] for r in conn.execute(
                f"SELECT rowid, region_id, manifest_id, text FROM doc WHERE rowid IN ({','.join('?' * len(page))})",
                [rowid for rowid, _ in page])} if page else {}
        except sqlite3.OperationalError as exc:  # e.g. a query FTS5 cannot parse despite quoting
            raise ValueError(f"cannot search for {q!r}: {exc}") from None
        matches = [TextMatch(docs[rowid][0], docs[rowid][1], float(score), docs[rowid][2],
                             find_spans(docs[rowid][2], terms, SNIPPETS)) for rowid, score in page if rowid in docs]
        return TextResults(int(total), matches)

    def _search_hot(self, q: str, terms: list[tuple[str, bool]], manifest_id: str | None, limit: int,
                    offset: int) -> tuple[int, list[tuple[int, float]]] | None:
        """Collection-wide queries of whole words, each in at least HOT_DF texts; None for the FTS5 path."""
        if manifest_id or not terms or any(prefix for _, prefix in terms):
            return None
        if len(terms) != len([raw for raw in q.split() if _WORD.search(fold(raw))]):
            return None  # a quoted term of several tokens is a phrase: FTS5 matches it
        words = list(dict.fromkeys(t for t, _ in terms))
        if not all(self._is_hot(t) for t in words):
            return None
        return self._hot_index().rank(self._conn(), words, limit, offset)

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
            counts = self._terms_of(manifest_id)
            found = sorted(((t, n) for t, n in counts.items() if start <= t < end and n >= min_count),
                           key=lambda t: (-t[1], t[0]))[:limit]
            return sorted(found)
        # fts5vocab counts a term's rows by walking its doclist, so a prefix of one or two letters walks a
        # good part of the index (28 ms at 100k regions, growing with N). Those short prefixes are few and
        # asked on every first keystroke: answers are kept per index version.
        key = (start, limit, min_count)
        self._current()
        with self._cache_lock:
            hit = self._prefix_terms.get(key)
            if hit is not None:
                self._prefix_terms.move_to_end(key)
                return list(hit)
        rows = conn.execute(
            """SELECT term, doc AS n FROM vocab_col WHERE term >= ? AND term < ? AND col = 'text'
               AND doc >= ? ORDER BY n DESC, term LIMIT ?""",
            (start, end, min_count, limit)).fetchall()
        found = sorted(((r[0], int(r[1])) for r in rows), key=lambda t: t[0])
        with self._cache_lock:
            self._prefix_terms[key] = found
            while len(self._prefix_terms) > 4096:
                self._prefix_terms.popitem(last=False)
        return list(found)

    def _terms_of(self, manifest_id: str) -> Counter[str]:
        """Term → number of the manifest's regions holding it; cached per index version (autocomplete is
        asked once per keystroke). Scanning fts5vocab's instance table for a prefix costs ~100 ms at 100k."""
        self._current()
        with self._cache_lock:
            hit = self._manifest_terms.get(manifest_id)
            if hit is not None:
                self._manifest_terms.move_to_end(manifest_id)
                return hit
        counts: Counter[str] = Counter()
        for (text,) in self._conn().execute("SELECT text FROM doc WHERE manifest_id = ? AND text != ''",
                                            (manifest_id,)):
            counts.update({fold_term(t) for t in _TOKEN.findall(fold(text))})
        with self._cache_lock:
            self._manifest_terms[manifest_id] = counts
            while len(self._manifest_terms) > 64:
                self._manifest_terms.popitem(last=False)
        return counts


def _bump_version(conn: sqlite3.Connection) -> None:
    conn.execute("INSERT INTO meta(key, value) VALUES ('version', '1') "
                 "ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + 1")


def _catalogue_seq(catalogue: Any) -> int:
    row = catalogue.query_one("SELECT COALESCE(MAX(seq), 0) AS s FROM change")
    return int(row["s"]) if row is not None else 0


TEXT_INDEX_NAME = "text-index.sqlite"


def open_text_index(data_dir: Path | str, *, warm_terms: int = WARM_TERMS,
                    hidden_classes: Sequence[str] = (), read_only: bool = False) -> TextIndex:
    """The service's index: the most frequent terms' postings are loaded in the background after a change."""
    return TextIndex(Path(data_dir) / TEXT_INDEX_NAME, warm_terms=warm_terms, hidden_classes=hidden_classes,
                     read_only=read_only)
