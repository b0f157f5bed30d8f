"""The web layer's store follows the catalogue's change log: live region and change counts, and manifest labels
with their languages, stay right through creates, deletes, revivals and manifest updates written by another
connection; and no read path reads a table whole (its cost must not grow with the collection)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from iiif_visual_search.catalogue import Catalogue, RegionRow, canvas_id_for, region_id_for
from iiif_visual_search.iiif.common import Urls
from iiif_visual_search.records import CanvasRecord, ManifestRecord
from iiif_visual_search.web.store import Store

BOOK = "https://example.org/book/manifest"


def _manifest(label: dict[str, list[str]], pages: int = 3) -> ManifestRecord:
    canvases = [CanvasRecord(id=f"https://example.org/book/canvas/{p}", position=p, width=1000, height=1500)
                for p in range(pages)]
    raw = {"id": BOOK, "type": "Manifest", "label": label}
    return ManifestRecord(id=BOOK, url=BOOK + ".json", version=3, label=" ".join(w for ws in label.values() for w in ws),
                          canvases=canvases, raw=raw)


def _regions(mid: str, page: int, n: int) -> tuple[str, list[RegionRow]]:
    canvas_uri = f"https://example.org/book/canvas/{page}"
    cid = canvas_id_for(mid, canvas_uri)
    return cid, [RegionRow(region_id_for(mid, canvas_uri, f"b{i}", 10 * i, 10, 50, 50), cid, mid, 10 * i, 10, 50, 50,
                           source_block_id=f"b{i}", context_before=f"words {page} {i}") for i in range(n)]


@pytest.fixture
def book(tmp_path: Path) -> tuple[Catalogue, Catalogue, str]:
    """A writer's catalogue connection and the service's, over one file, and the book's manifest id."""
    writer = Catalogue(tmp_path / "catalogue.sqlite")
    mid, _ = writer.upsert_manifest(_manifest({"de": ["Ein Buch"]}), content_hash="1")
    for page in range(3):
        writer.replace_canvas_regions(*_regions(mid, page, 4), layout_hash="x")
    reader = Catalogue(tmp_path / "catalogue.sqlite")
    yield writer, reader, mid
    reader.close()
    writer.close()


def _truth(cat: Catalogue) -> tuple[int, int]:
    return (cat.query_one("SELECT COUNT(*) AS n FROM region WHERE deleted=0")["n"],
            cat.query_one("SELECT COUNT(*) AS n FROM change")["n"])


def test_counts_follow_creates_deletes_and_revivals(book) -> None:
    writer, reader, mid = book
    store = Store(reader)
    assert (store.count_regions(), store.count_changes()) == _truth(writer) == (12, 13)
    steps = [
        lambda: writer.replace_canvas_regions(*_regions(mid, 0, 2), layout_hash="y"),   # 2 deleted
        lambda: writer.replace_canvas_regions(*_regions(mid, 0, 6), layout_hash="z"),   # 2 revived, 2 new
        lambda: writer.set_labels([(_regions(mid, 1, 1)[1][0].id, "map", None)], "manual"),  # an update
        lambda: writer.mark_manifest_deleted(mid, "gone"),                               # every region
        lambda: writer.upsert_manifest(_manifest({"de": ["Ein Buch"]}), content_hash="2"),
        lambda: [writer.replace_canvas_regions(*_regions(mid, p, 3), layout_hash="w") for p in range(3)],
    ]
    for step in steps:
        step()
        assert (store.count_regions(), store.count_changes()) == _truth(writer)


def test_a_catalogue_rebuilt_from_scratch_is_counted_again(book, tmp_path: Path) -> None:
    writer, reader, mid = book
    store = Store(reader)
    assert store.count_regions() == 12
    with writer.transaction() as conn:  # what a restore of an older, smaller catalogue looks like
        conn.execute("DELETE FROM change")
        conn.execute("DELETE FROM sqlite_sequence WHERE name='change'")
        conn.execute("UPDATE region SET deleted=1 WHERE canvas_id=?", (_regions(mid, 2, 0)[0],))
        conn.execute("INSERT INTO change(kind, object_type, object_id, at) VALUES ('create', 'manifest', ?, 0)",
                     (mid,))
    assert (store.count_regions(), store.count_changes()) == _truth(writer) == (8, 1)


def test_manifest_labels_keep_their_languages_and_follow_updates(book) -> None:
    writer, reader, mid = book
    store = Store(reader)
    region_id = _regions(mid, 1, 1)[1][0].id
    assert store.region(region_id).manifest_label_map == {"de": ["Ein Buch"]}
    writer.upsert_manifest(_manifest({"fr": ["Un livre"], "en": ["A book"]}), content_hash="2")
    assert store.region(region_id).manifest_label_map == {"fr": ["Un livre"], "en": ["A book"]}
    assert store.label_maps([mid, "m-unknown"]) == {mid: {"fr": ["Un livre"], "en": ["A book"]}, "m-unknown": None}
    writer.mark_manifest_deleted(mid, "gone")
    assert store.label_maps([mid]) == {mid: None}


def test_no_read_path_reads_a_table_whole(book) -> None:
    """Every statement a request runs (after the first, which counts) is an index search: EXPLAIN QUERY PLAN
    shows no SCAN of a table or of a whole index, so the cost does not grow with the number of rows."""
    writer, reader, mid = book
    store = Store(reader, Urls("http://127.0.0.1:1"))
    store.count_regions()
    canvas_id, rows = _regions(mid, 1, 4)
    writer.replace_canvas_regions(canvas_id, rows[:3], layout_hash="y")  # one change to follow
    statements: list[str] = []
    reader.conn.set_trace_callback(statements.append)
    try:
        store.manifest(mid)
        store.manifest(BOOK)
        store.manifest(BOOK + ".json")
        store.canvas_at(mid, 1)
        store.canvas_regions(canvas_id)
        store.region(rows[0].id)
        store.regions_by_id([r.id for r in rows])
        store.canvases_by_uri("https://example.org/book/canvas/1")
        store.count_regions()
        store.count_changes()
        store.regions_in_seq(store.last_region_seq() - 5, store.last_region_seq())
        store.changes_in_seq(store.last_change_seq() - 5, store.last_change_seq())
        store.positions_with_regions(mid)
    finally:
        reader.conn.set_trace_callback(None)
    assert len(statements) > 10
    for sql in statements:
        plan = [r[3] for r in reader.conn.execute("EXPLAIN QUERY PLAN " + sql)]
        scans = [p for p in plan if p.startswith("SCAN") and "CONSTANT ROW" not in p]
        assert not scans, (sql, plan)
    assert json.dumps(store.label_maps([mid]))  # the label is still there after the traced requests


def test_health_counts_are_counted_again_after_any_write(book) -> None:
    writer, reader, mid = book
    store = Store(reader)
    assert (store.count_manifests(), store.models()) == (1, {})
    rows = _regions(mid, 0, 4)[1]
    with writer.transaction() as conn:  # vectors are written without a change-log entry
        conn.executemany("INSERT INTO embedding(region_id, model, row) VALUES (?, 'm', ?)",
                         [(r.id, i) for i, r in enumerate(rows)])
    assert store.models() == {"m": 4}
    writer.mark_manifest_deleted(mid, "gone")
    assert store.count_manifests() == 0
    writer.upsert_manifest(_manifest({"de": ["Ein Buch"]}), content_hash="3")  # back: an "update" entry
    assert store.count_manifests() == 1
