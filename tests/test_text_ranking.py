"""The fast paths of the text index give FTS5's own answers: BM25 from in-memory postings for common words,
cached counts, per-manifest autocomplete from the manifest's texts; every cache follows index changes."""

from __future__ import annotations

import random
import time
from pathlib import Path

import numpy as np
import pytest
from lxml import etree

from iiif_visual_search.catalogue import Catalogue
from iiif_visual_search.index import text as textmod
from iiif_visual_search.index.text import TextIndex

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def _alto_pages() -> list[list[str]]:
    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    pages = []
    for path in sorted(SHARED.rglob("*.xml")):
        try:
            root = etree.parse(str(path), parser).getroot()
        except etree.XMLSyntaxError:
            continue
        if etree.QName(root).localname == "alto":
            words = [s.get("CONTENT", "") for s in root.iter("{*}String") if s.get("CONTENT", "").strip()]
            if len(words) >= 40:
                pages.append(words)
    return pages


@pytest.fixture(scope="module")
def indexed(tmp_path_factory):
    if not SHARED.is_dir():
        pytest.skip(f"shared test data not found at {SHARED}")
    pages = _alto_pages()
    if len(pages) < 5:
        pytest.skip("fewer than five ALTO pages with text in the shared data")
    root = tmp_path_factory.mktemp("ranking")
    cat = Catalogue(root / "catalogue.sqlite")
    rng = random.Random(3)
    now = time.time()
    with cat.transaction() as conn:
        for m in range(6):
            conn.execute("INSERT INTO manifest(id, uri, url, version, fetched_at) VALUES (?, ?, ?, 3, ?)",
                         (f"m{m}", f"https://example.org/{m}", f"https://example.org/{m}", now))
            conn.execute("INSERT INTO canvas(id, manifest_id, uri, position, width, height) VALUES (?, ?, ?, 1, 9, 9)",
                         (f"c{m}", f"m{m}", f"https://example.org/{m}/c"))
        for i in range(600):
            words = pages[rng.randrange(len(pages))]
            start = rng.randrange(len(words) - 30)
            n = rng.randrange(5, 60)
            caption = " ".join(words[start + n:start + n + 4]) if i % 7 == 0 else ""
            conn.execute(
                "INSERT INTO region(id, canvas_id, manifest_id, x, y, w, h, context_before, context_after, caption, "
                "created_at, updated_at) VALUES (?, ?, ?, 0, 0, 5, 5, ?, ?, ?, ?, ?)",
                (f"r{i}", f"c{i % 6}", f"m{i % 6}", " ".join(words[start:start + n]),
                 " ".join(words[start + n + 4:start + 2 * n]), caption, now, now))
        conn.execute("INSERT INTO change(kind, object_type, object_id, at) "
                     "SELECT 'create', 'region', id, created_at FROM region")
    index = TextIndex(root / "text.sqlite")
    index.rebuild(cat)
    yield index, cat
    cat.close()


def _common(index: TextIndex, n: int) -> list[str]:
    return [r[0] for r in index._conn().execute(
        "SELECT term FROM vocab_col WHERE col='text' AND length(term) >= 2 ORDER BY doc DESC LIMIT ?", (n,))]


def _both(index: TextIndex, q: str, monkeypatch, **kw):
    monkeypatch.setattr(textmod, "HOT_DF", 1)
    hot = index.search(q, **kw)
    monkeypatch.setattr(textmod, "HOT_DF", 10**9)
    fts = index.search(q, **kw)
    return hot, fts


def test_hot_postings_rank_exactly_as_fts5_bm25(indexed, monkeypatch) -> None:
    index, _ = indexed
    words = _common(index, 8)
    queries = words[:5] + [f"{words[0]} {words[3]}", f"{words[1]} {words[2]} {words[4]}"]
    for q in queries:
        for offset in (0, 20):
            hot, fts = _both(index, q, monkeypatch, limit=20, offset=offset)
            assert hot.total == fts.total > 0, q
            assert [m.score for m in hot.matches] == pytest.approx([m.score for m in fts.matches], rel=1e-9), q
            # Ties may come in another order; the rows at each score are the same.
            by_score = lambda ms: sorted((round(m.score, 9), m.region_id) for m in ms)  # noqa: E731
            tied_edge = min(m.score for m in fts.matches)
            assert {m.region_id for m in hot.matches if m.score > tied_edge + 1e-9} == \
                   {m.region_id for m in fts.matches if m.score > tied_edge + 1e-9}, q
            assert by_score(hot.matches)[-1][0] == by_score(fts.matches)[-1][0]
            assert all(m.spans for m in hot.matches)


def _full_ranking(index: TextIndex, words: list[str]) -> list[tuple[int, float]]:
    """Every row holding all the words, scored from the postings and sorted whole: what the threshold walk of
    ``_Hot.rank`` must give page by page without sorting every match."""
    hot = index._hot_index()
    lists = sorted((hot.postings(index._conn(), w) for w in words), key=lambda p: len(p.rows))
    rows = lists[0].rows
    for other in lists[1:]:
        rows = np.intersect1d(rows, other.rows, assume_unique=True)
    score = np.zeros(len(rows))
    for plist in lists:
        score += plist.score[np.searchsorted(plist.rows, rows)]
    return sorted(zip(rows.tolist(), score.tolist()), key=lambda t: (-t[1], t[0]))


def test_pages_of_several_words_are_slices_of_the_full_ranking(indexed, monkeypatch) -> None:
    index, _ = indexed
    monkeypatch.setattr(textmod, "HOT_DF", 1)
    words = _common(index, 40)
    queries = [[words[0]], [words[0], words[1]], [words[2], words[9]], [words[1], words[5], words[7]],
               [words[3], words[30]], [words[0], words[39]], [words[4], words[4] + "zz"]]
    index._current()
    hot = index._hot_index()
    for query in queries:
        full = _full_ranking(index, query)
        for limit in (1, 7, 25):
            pages = []
            for offset in range(0, len(full) + limit, limit):
                total, page = hot.rank(index._conn(), query, limit, offset)
                assert total == len(full), query
                pages.extend(page)
            assert pages == full, (query, limit)


def test_hot_path_is_not_used_for_prefixes_phrases_or_a_manifest(indexed, monkeypatch) -> None:
    index, _ = indexed
    monkeypatch.setattr(textmod, "HOT_DF", 1)
    word = _common(index, 1)[0]
    assert index._search_hot(word, textmod.query_terms(word), None, 10, 0) is not None
    assert index._search_hot(word + "*", textmod.query_terms(word + "*"), None, 10, 0) is None
    assert index._search_hot(word, textmod.query_terms(word), "m1", 10, 0) is None
    phrase = f"{word}-{word}"
    assert index._search_hot(phrase, textmod.query_terms(phrase), None, 10, 0) is None


def test_manifest_autocomplete_counts_like_fts5vocab(indexed) -> None:
    index, _ = indexed
    conn = index._conn()
    for prefix in ("d", "l", "co", "s"):
        expected = conn.execute(
            """SELECT term, COUNT(DISTINCT doc) AS n FROM vocab_inst
               WHERE term >= ? AND term < ? AND col = 'text'
                 AND doc IN (SELECT rowid FROM doc WHERE manifest_id = ?)
               GROUP BY term""", (prefix, prefix + "\U0010ffff", "m2")).fetchall()
        assert index.terms(prefix, manifest_id="m2", limit=10_000) == sorted((t, n) for t, n in expected)
        top = index.terms(prefix, manifest_id="m2", limit=5, min_count=2)
        assert len(top) == min(5, sum(n >= 2 for _, n in expected))
        assert all(n >= 2 for _, n in top)


def test_caches_follow_a_sync(indexed) -> None:
    index, cat = indexed
    word = "zqxwordzq"
    assert index.search(word).total == 0
    assert index.terms("zqx", manifest_id="m1") == []
    assert index.terms("zqx") == []
    now = time.time()
    with cat.transaction() as conn:
        conn.execute("INSERT INTO region(id, canvas_id, manifest_id, x, y, w, h, context_before, created_at, "
                     "updated_at) VALUES ('rnew', 'c1', 'm1', 1, 1, 5, 5, ?, ?, ?)", (f"a {word} b", now, now))
        conn.execute("INSERT INTO change(kind, object_type, object_id, at) VALUES ('create', 'region', 'rnew', ?)",
                     (now,))
    assert index.sync(cat) == 1
    assert index.search(word).total == 1
    assert index.terms("zqx", manifest_id="m1") == [(word, 1)]
    assert index.terms("zqx") == [(word, 1)]


def test_python_tokens_are_fts5_tokens_with_combining_marks(tmp_path: Path) -> None:
    # Real words from the shared ALTO (DTA, incunabula): a combining tilde stays inside the word in FTS5,
    # a combining small e (U+0364) splits it. Snippet spans and manifest autocomplete depend on agreeing.
    text = "descẽdre unſchaͤdlichſte duveté."
    index = TextIndex(tmp_path / "t.sqlite")
    conn = index._conn()
    conn.execute("INSERT INTO fts(rowid, text, caption, scope) VALUES (1, ?, '', 'm')", (textmod.fold(text),))
    fts_terms = sorted(r[0] for r in conn.execute("SELECT term FROM vocab_col WHERE col='text'"))
    ours = sorted({textmod.fold_term(t) for t in textmod._TOKEN.findall(textmod.fold(text))})
    assert ours == fts_terms == ["descedre", "dlichste", "duvete", "unscha"]
    spans = textmod.find_spans(text, textmod.query_terms("descedre"))
    assert [text[s.start:s.end] for s in spans] == ["descẽdre"]


def test_spans_of_the_first_matches_give_the_same_snippets() -> None:
    """A search finds only the first SNIPPETS spans of a text; the snippets shown are those of all spans."""
    text = ("Le ſiège de Liége, les Liégeois et LIEGE: liege liége " * 3) + "fin du texte liégeois."
    for q in ("liege", "liege les", "lieg*", "siege fin", "absent"):
        terms = textmod.query_terms(q)
        every = textmod.find_spans(text, terms)
        first = textmod.find_spans(text, terms, textmod.SNIPPETS)
        assert first == every[:textmod.SNIPPETS]
        for width in (10, 40):
            assert textmod.TextMatch("r", "m", 1.0, text, first).snippets(width=width) == \
                textmod.TextMatch("r", "m", 1.0, text, every).snippets(width=width), q
    assert len(textmod.find_spans(text, textmod.query_terms("liege"))) > textmod.SNIPPETS
    assert textmod.fold("ſiège Straße æ") == "siège Straße æ"


def test_hot_postings_stay_within_the_row_budget(indexed, monkeypatch) -> None:
    index, _ = indexed
    words = _common(index, 6)
    hot = textmod._Hot(index._conn())
    sizes = [len(hot.postings(index._conn(), w).rows) for w in words]
    assert hot._rows == sum(sizes)
    monkeypatch.setattr(textmod, "HOT_CACHE_ROWS", sizes[-1] + sizes[-2])
    hot = textmod._Hot(index._conn())
    for word in words:
        hot.postings(index._conn(), word)
    assert list(hot._postings) == words[-2:]  # the least recently used went first
    assert hot._rows == sizes[-1] + sizes[-2]


def test_one_warming_thread_follows_the_newest_version(indexed, monkeypatch, tmp_path: Path) -> None:
    """While an ingest changes the index every few seconds, each change started another warming thread, and
    they ran side by side; one thread now follows the newest version."""
    import threading

    _, cat = indexed
    index = TextIndex(tmp_path / "warm.sqlite", warm_terms=3)
    index.rebuild(cat)
    started, release = threading.Event(), threading.Event()
    loaded: list[str] = []
    real = textmod._Hot.postings

    def slow(self, conn, term):  # noqa: ANN001, ANN202 - the wrapped method
        started.set()
        release.wait(30)
        loaded.append(index._version)
        return real(self, conn, term)

    monkeypatch.setattr(textmod._Hot, "postings", slow)
    monkeypatch.setattr(textmod, "HOT_DF", 1)
    index._current()
    assert started.wait(30)
    for _ in range(3):  # the index changes while the first version is being warmed
        textmod._bump_version(index._conn())
        index._current()
        assert sum(t.name == "text-index-warm" for t in threading.enumerate()) == 1
    newest = index._version
    release.set()
    for thread in [t for t in threading.enumerate() if t.name == "text-index-warm"]:
        thread.join(30)
    assert not index._warming
    assert loaded[-1] == newest and len(index._hot._postings) == 3


def test_warming_leaves_a_frequent_word_nothing_to_do_on_its_first_query(indexed, monkeypatch, tmp_path: Path) -> None:
    """Warming loaded a frequent word's postings but left their sort by score and the count of its texts to
    the word's first query: 70-190 ms each at a million regions (bench/scale.py's common-word p99). A warmed
    word's first query now neither sorts nor counts, and answers as FTS5 does."""
    import threading

    _, cat = indexed
    monkeypatch.setattr(textmod, "HOT_DF", 5)
    index = TextIndex(tmp_path / "warmed.sqlite", warm_terms=4)
    index.rebuild(cat)
    index._current()
    for thread in [t for t in threading.enumerate() if t.name == "text-index-warm"]:
        thread.join(60)
    warmed = list(index._hot._postings)
    assert len(warmed) == 4
    assert all(index._hot._postings[w]._order is not None and index._hot._postings[w]._bits is not None
               for w in warmed)
    assert all((w, textmod.HOT_DF) in index._hot_terms for w in warmed)  # known frequent: not counted again
    sorted_before = index._hot._postings[warmed[0]]._order
    hits = index.search(warmed[0], limit=10)
    assert index._hot._postings[warmed[0]]._order is sorted_before  # not sorted again
    plain = TextIndex(tmp_path / "warmed.sqlite")
    monkeypatch.setattr(textmod, "HOT_DF", 10**9)  # FTS5's own ranking, for comparison
    expected = plain.search(warmed[0], limit=10)
    assert [m.region_id for m in hits.matches] == [m.region_id for m in expected.matches]
    assert hits.total == expected.total
