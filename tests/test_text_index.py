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
