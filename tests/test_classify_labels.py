"""Label import: the real CHR24 file, Label Studio exports, CSV, and matching IIIF region URLs to regions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from datapaths import shared
from iiif_visual_search.catalogue import Catalogue, RegionRow, region_id_for
from iiif_visual_search.classify.classes import PAPER_CLASSES, canonical_class, load_class_list
from iiif_visual_search.classify.labels_io import (
    match_items, manual_labels, parse_region_url, read_chr24, read_csv_labels, read_label_studio, read_labels,
    store_labels,
)
from iiif_visual_search.records import CanvasRecord, ImageService, ManifestRecord


def test_chr24_real_file_counts() -> None:
    read = read_chr24(shared("nln-chr24-image-labels", "labelled_data.json"))
    assert len(read.items) == 2000 and not read.multi_label and not read.no_label and not read.unknown_class
    counts: dict[str, int] = {}
    for it in read.items:
        counts[it.label] = counts.get(it.label, 0) + 1
    # chr24.md §5: the published class counts.
    assert counts == {"Illustration or photograph": 592, "Segmentation anomaly": 524, "Blank page": 349,
                      "Graphical element": 330, "Musical notation": 113, "Mathematical chart": 48, "Map": 44}
    assert read_labels(shared("nln-chr24-image-labels", "labelled_data.json")).items == read.items


def test_parse_region_url() -> None:
    url = ("https://www.nb.no/services/image/resolver/URN:NBN:no-nb_digibok_2009042803019_0104/"
           "442,259,1667,805/833,402/0/default.jpg")
    base, box = parse_region_url(url)  # type: ignore[misc]
    assert base == "https://www.nb.no/services/image/resolver/URN:NBN:no-nb_digibok_2009042803019_0104"
    assert box == (442, 259, 1667, 805)
    assert parse_region_url(base + "/full/max/0/default.jpg") is None
    assert parse_region_url(base + "/pct:1,2,3,4/max/0/default.jpg") is None


def _catalogue_from_urls(tmp_path: Path, urls: list[str], jitter: int = 1, image_scale: float = 1.0) -> tuple[
        Catalogue, dict[str, str]]:
    """One manifest per book; a canvas per page URN; a region per URL with the box shifted by ``jitter``
    pixels (rounding) and the canvas ``image_scale`` times the image service size."""
    cat = Catalogue(tmp_path / "catalogue.sqlite")
    by_book: dict[str, list[str]] = {}
    for url in urls:
        base, _ = parse_region_url(url)  # type: ignore[misc]
        book = base.rsplit("_", 1)[0]
        by_book.setdefault(book, []).append(url)
    expected: dict[str, str] = {}
    for book, book_urls in by_book.items():
        canvases, seen = [], {}
        for url in book_urls:
            base, _ = parse_region_url(url)  # type: ignore[misc]
            if base not in seen:
                seen[base] = len(canvases)
                canvases.append(CanvasRecord(id=base + "/canvas", position=len(canvases),
                                             width=round(20000 * image_scale), height=round(20000 * image_scale),
                                             image_width=20000, image_height=20000,
                                             image_service=ImageService(id=base, version=2)))
        mid, _ = cat.upsert_manifest(ManifestRecord(id=book + "/manifest", url=book, version=3, label=book,
                                                    canvases=canvases), content_hash=book)
        for canvas in canvases:
            cid = cat.query_one("SELECT id FROM canvas WHERE uri=?", (canvas.id,))["id"]
            regions = []
            for i, url in enumerate(u for u in book_urls if parse_region_url(u)[0] + "/canvas" == canvas.id):
                _, (x, y, w, h) = parse_region_url(url)  # type: ignore[misc]
                box = [round(v * image_scale) + jitter for v in (x, y, w, h)]
                rid = region_id_for(mid, canvas.id, f"b{i}", *box)
                regions.append(RegionRow(rid, cid, mid, *box, source_block_id=f"b{i}"))
                expected[url] = rid
            cat.replace_canvas_regions(cid, regions, layout_hash="x")
    return cat, expected


def test_chr24_urls_match_regions_by_service_and_xywh(tmp_path: Path) -> None:
    read = read_chr24(shared("nln-chr24-image-labels", "labelled_data.json"))
    items = read.items[:300]
    cat, expected = _catalogue_from_urls(tmp_path, [it.key for it in items], jitter=1)
    report = match_items(cat, items)
    assert not report.no_canvas and not report.no_region and not report.unparsable
    assert {key: rid for key, rid, _ in report.matched} == expected
    store_labels(cat, ((rid, label, None) for _, rid, label in report.matched), "manual")
    stored = manual_labels(cat)
    assert len(stored) == 300 and {stored[expected[it.key]] for it in items} == {it.label for it in items}


def test_match_scales_image_pixels_to_canvas_and_rejects_far_boxes(tmp_path: Path) -> None:
    read = read_chr24(shared("nln-chr24-image-labels", "labelled_data.json"))
    items = read.items[:40]
    cat, expected = _catalogue_from_urls(tmp_path, [it.key for it in items], jitter=0, image_scale=0.5)
    report = match_items(cat, items)
    assert {key: rid for key, rid, _ in report.matched} == expected
    # A box 40 px off on a canvas that exists is no match, and says why.
    base, (x, y, w, h) = parse_region_url(items[0].key)  # type: ignore[misc]
    moved = type(items[0])(f"{base}/{int(x) + 80},{int(y)},{int(w)},{int(h)}/max/0/default.jpg", "url", "Map")
    elsewhere = type(items[0])("https://example.org/iiif/nope/1,2,3,4/max/0/default.jpg", "url", "Map")
    report = match_items(cat, [moved, elsewhere])
    assert report.no_region == [moved.key] and report.no_canvas == [elsewhere.key] and not report.matched


def test_label_studio_export(tmp_path: Path) -> None:
    export = [
        {"id": 1, "data": {"image": "https://x.org/iiif/p1/1,2,3,4/max/0/default.jpg"},
         "annotations": [{"id": 10, "was_cancelled": False, "updated_at": "2024-05-01T10:00:00",
                          "result": [{"type": "choices", "value": {"choices": ["Map"]}}]},
                         {"id": 11, "was_cancelled": False, "updated_at": "2024-05-02T10:00:00",
                          "result": [{"type": "choices", "value": {"choices": ["Graphical element (other)"]}}]}]},
        {"id": 2, "data": {"image": "https://x.org/iiif/p2/1,2,3,4/max/0/default.jpg"},
         "annotations": [{"id": 12, "was_cancelled": True,
                          "result": [{"type": "choices", "value": {"choices": ["Map"]}}]}]},
        {"id": 3, "data": {"image": "https://x.org/iiif/p3/1,2,3,4/max/0/default.jpg"},
         "annotations": [{"id": 13, "result": [{"type": "choices",
                                                "value": {"choices": ["Map", "Blank page"]}}]}]},
        {"id": 4, "data": {"region_id": "r123", "image": "https://x"},
         "annotations": [{"id": 14, "result": [{"type": "choices", "value": {"choices": ["Stamp"]}}]}]},
    ]
    path = tmp_path / "export.json"
    path.write_text(json.dumps(export))
    read = read_label_studio(path)
    assert [(i.key, i.kind, i.label) for i in read.items] == [
        ("https://x.org/iiif/p1/1,2,3,4/max/0/default.jpg", "url", "Graphical element")]
    assert read.multi_label == ["https://x.org/iiif/p3/1,2,3,4/max/0/default.jpg"]
    assert read.unknown_class == {"Stamp": 1}
    assert read_labels(path).items == read.items  # format sniffed
    assert len(read_label_studio(path, multi="first").items) == 2
    # JSON-MIN export
    path.write_text(json.dumps([{"image": "https://x.org/a/1,2,3,4/max/0/default.jpg", "choice": "Map"}]))
    assert [i.label for i in read_labels(path).items] == ["Map"]


def test_csv_labels_and_custom_class_list(tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    path.write_text("region_id,label\nr1,Map\nr2,blank page\nr3,Dragon\nr4,\n")
    read = read_csv_labels(path)
    assert [(i.key, i.label) for i in read.items] == [("r1", "Map"), ("r2", "Blank page")]
    assert read.unknown_class == {"Dragon": 1} and read.no_label == ["r4"]
    assert [i.label for i in read_csv_labels(path, ("Dragon", "Map")).items] == ["Map", "Dragon"]
    assert load_class_list(None) == PAPER_CLASSES and load_class_list("a, b") == ("a", "b")
    with pytest.raises(ValueError):
        load_class_list("a,a")
    assert canonical_class("graphical  element (other)") == "Graphical element"


def test_store_labels_rejects_unknown_source(tmp_path: Path) -> None:
    cat = Catalogue(tmp_path / "c.sqlite")
    with pytest.raises(ValueError):
        store_labels(cat, [("r", "Map", None)], "guess")
