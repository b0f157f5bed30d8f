"""The FTS5 text index over real ALTO context text: ranking, folding, prefixes, incremental sync."""

from __future__ import annotations

from pathlib import Path

import pytest

from iiif_visual_search.catalogue import Catalogue
from iiif_visual_search.index.text import TextIndex, build_query, fold_term
from test_iiif_data import build_catalogue


@pytest.fixture()
def built(tmp_path: Path) -> tuple[Catalogue, TextIndex]:
    settings = build_catalogue(tmp_path)
    catalogue = Catalogue(settings.catalogue_path)
    index = TextIndex(tmp_path / "text.sqlite")
    index.sync(catalogue)
    return catalogue, index


def test_query_quoting_neutralises_fts_syntax() -> None:
    assert build_query('a" OR b*') == '{text caption} : ("a""" AND "OR" AND "b" *)'
    assert build_query("- * ()") is None
    assert fold_term("Moſkau") == "moskau" and fold_term("Anknüpfend") == "anknupfend"


def test_repeated_query_terms_are_searched_once(built: tuple[Catalogue, TextIndex]) -> None:
    # "a* a* a* ..." was one FTS5 AND operand per copy: 3000 copies took seconds on a tiny catalogue.
    assert build_query("Moskau moskau MOSKAU b* B* b") == '{text caption} : ("Moskau" AND "b" * AND "b")'
    _, index = built
    once = index.search("moskau")
    assert once.total > 0
    many = index.search("moskau* " * 2000)
    assert many.total == index.search("moskau*").total >= once.total


def test_ranked_folded_and_scoped(built: tuple[Catalogue, TextIndex]) -> None:
    catalogue, index = built
    results = index.search("MOSKAU")
    assert results.total > 0
    scores = [m.score for m in results.matches]
    assert scores == sorted(scores, reverse=True)
    for match in results.matches:
        for before, exact, after in match.snippets():
            assert exact.lower() == "moskau" and before + exact + after in match.text
    manifests = {m["version"]: m["id"] for m in catalogue.manifests()}
    scoped = index.search("moskau", manifest_id=manifests[2])
    assert scoped.total == 0  # the word is only in the Berlin newspaper
    assert index.search("moskau", manifest_id=manifests[3]).total == results.total
    # the manifest id is a filter, never a search term
    assert index.search(manifests[3]).total == 0


def test_prefix_and_terms(built: tuple[Catalogue, TextIndex]) -> None:
    _, index = built
    assert index.search("berl*").total >= index.search("berlin").total > 0
    terms = index.terms("BERL")
    assert terms and all(t.startswith("berl") for t, _ in terms)
    assert [t for t, _ in terms] == sorted(t for t, _ in terms)
    counts = dict(terms)
    assert counts["berlin"] == index.search("berlin").total


def test_sync_follows_the_change_log(built: tuple[Catalogue, TextIndex]) -> None:
    catalogue, index = built
    before = index.search("moskau").total
    victim = index.search("moskau").matches[0]
    canvas_id = catalogue.region(victim.region_id)["canvas_id"]
    remaining = [r for r in catalogue.regions() if r["canvas_id"] == canvas_id and r["id"] != victim.region_id]
    from iiif_visual_search.catalogue import RegionRow

    rows = [RegionRow(id=r["id"], canvas_id=r["canvas_id"], manifest_id=r["manifest_id"], x=r["x"], y=r["y"],
                      w=r["w"], h=r["h"], source_block_id=r["source_block_id"], block_type=r["block_type"],
                      context_before=r["context_before"], context_after=r["context_after"], caption=r["caption"],
                      flags=tuple(f for f in r["flags"].split(",") if f)) for r in remaining]
    catalogue.replace_canvas_regions(canvas_id, rows, "changed")
    assert index.sync(catalogue) == 1
    assert index.search("moskau").total == before - 1
    assert index.sync(catalogue) == 0


def test_spans_found_by_find_are_the_spans_the_tokenizer_finds() -> None:
    """Texts that fold one character for one take a shortcut (``str.find`` per term instead of folding every
    token); on random texts and queries, with prefixes, digits, punctuation, repeated words, accents, long s,
    ligatures and combining marks, it finds exactly what the general path finds."""
    import random

    from iiif_visual_search.index import text as text_module

    rng = random.Random(5)
    words = ["map", "maps", "Map", "mapping", "bergen", "Bergen's", "x1", "1x", "a", "an", "and", "sand", "ma",
             "Bjørgvin", "MÅL", "mål", "École", "ecole", "ſand", "Straße", "ﬁsh", "fish", "desce\u0303dre", "ΟΔΟΣ",
             "naïve", "½", "İstanbul", "…", "«and»"]
    in_place = [w for w in words if text_module._fold_in_place(w) is not None]
    shortcut = 0
    for _ in range(400):
        pool = words if rng.random() < 0.3 else in_place  # ligatures and the like send a text the long way
        text = "".join(rng.choice(pool) + rng.choice([" ", ", ", "-", ".", "_", "  "]) for _ in range(rng.randint(0, 30)))
        shortcut += text_module._fold_in_place(text) is not None
        query = " ".join(rng.choice(["map", "ma*", "bergen", "s", "an*", "x1", "1x", "and", "mal", "ecole", "sand",
                                     "fish", "descedre", "οδος", "naive", "strasse", "straße", "istanbul", "bj*"])
                         for _ in range(rng.randint(1, 3)))
        terms = text_module.query_terms(query)
        for limit in (None, 1, 3):
            fast = text_module.find_spans(text, terms, limit)
            general = text_module._token_spans(text, {t for t, p in terms if not p},
                                               tuple(t for t, p in terms if p), limit)
            assert fast == general, (text, query, limit)
    assert 200 < shortcut < 400  # both ways were taken
