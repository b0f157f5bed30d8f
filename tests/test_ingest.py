"""The ingest job end to end: real manifests and layout files from ../shared/data into a catalogue."""

from __future__ import annotations

import asyncio
import csv
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from iiif_visual_search.catalogue import Catalogue
from iiif_visual_search.cli import main
from iiif_visual_search.config import load_settings
from iiif_visual_search.ingest import ingest, read_layout_map
from iiif_visual_search.local_sample import Book, Page, shared_books, write_sample

from datapaths import shared


def run_ingest(data_dir: Path, *sources: str, layout_map: Path | None = None) -> object:
    settings = load_settings(data_dir=data_dir)
    catalogue = Catalogue(settings.catalogue_path)
    try:
        overrides = read_layout_map(layout_map) if layout_map else None
        return asyncio.run(ingest(list(sources), catalogue, settings, layout_map=overrides))
    finally:
        catalogue.close()


def regions_json(data_dir: Path, *extra: str) -> list[dict]:
    result = CliRunner().invoke(main, ["--data-dir", str(data_dir), "regions", "--json", *extra])
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.output.splitlines() if line.strip()]


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    return write_sample(shared(), tmp_path / "sample")


def test_local_sample_regions_sit_on_printed_graphics(sample: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    report = run_ingest(data, str(sample))
    assert report.manifests_seen >= 10 and not report.failures
    rows = regions_json(data)
    assert rows, "the sample has woodcuts, initials and engravings"
    keys = {"id", "manifest", "canvas", "x", "y", "w", "h", "type", "block", "flags", "context"}
    for row in rows:
        assert keys <= row.keys()
    # Unflagged regions of the incunabula and DTA pages hold ink: crop them from the scans and look.
    with Catalogue(data / "catalogue.sqlite") as catalogue:
        images = {r["uri"]: r["image_url"] for r in catalogue.query("SELECT uri, image_url FROM canvas")}
    checked = 0
    for row in rows:
        if row["flags"] or "bnf-abbyy" in row["manifest"]:
            continue
        path = Path(images[row["canvas"]].removeprefix("file://"))
        with Image.open(path) as scan:
            crop = scan.convert("L").crop((row["x"], row["y"], row["x"] + row["w"], row["y"] + row["h"]))
            lo, hi = crop.getextrema()
            assert hi - lo > 80, f"{row['block']} on {path.name} looks blank"
        checked += 1
    assert checked >= 20


def test_reingest_changes_nothing_and_cli_reports(sample: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "data"
    run_ingest(data, str(sample))
    with Catalogue(data / "catalogue.sqlite") as catalogue:
        changes = catalogue.query_one("SELECT COUNT(*) FROM change")[0]
    first = regions_json(data)
    runner = CliRunner()
    result = runner.invoke(main, ["--data-dir", str(data), "ingest", "-q", str(sample)])
    assert result.exit_code == 0, result.output
    assert "+0 ~0 -0" in result.output
    assert regions_json(data) == first
    with Catalogue(data / "catalogue.sqlite") as catalogue:
        assert catalogue.query_one("SELECT COUNT(*) FROM change")[0] == changes
    status = runner.invoke(main, ["--data-dir", str(data), "status"])
    assert status.exit_code == 0 and "regions:" in status.output and "quarantine: empty" in status.output
    with Catalogue(data / "catalogue.sqlite") as catalogue:
        ids = [m["id"] for m in catalogue.manifests()]
    assert ids and all(i in status.output for i in ids)  # a few manifests: each listed
    # Tens of thousands would bury the totals: listed only when asked (a small limit stands in for 50 here).
    from iiif_visual_search.commands import status_cmd

    monkeypatch.setattr(status_cmd, "LISTED_MANIFESTS", len(ids) - 1)
    short = runner.invoke(main, ["--data-dir", str(data), "status"]).output
    assert not any(i in short for i in ids) and "ivs status --manifests" in short and "regions:" in short
    asked = runner.invoke(main, ["--data-dir", str(data), "status", "--manifests"]).output
    assert all(i in asked for i in ids)


def test_nln_manifest_with_mm10_alto_maps_onto_the_canvas(tmp_path: Path) -> None:
    manifest = shared("iiif", "nb-norway", "presentation_3_recognized-text-manifest.json")
    alto = shared("alto-variants", "nb-norway", "transkribus-alto-mm10.xml")
    layout_map = tmp_path / "map.csv"
    layout_map.write_text(f"canvas,layout\n1,{alto}\n", encoding="utf-8")
    data = tmp_path / "data"
    run_ingest(data, str(manifest), layout_map=layout_map)
    with Catalogue(data / "catalogue.sqlite") as catalogue:
        canvas = catalogue.query_one("SELECT * FROM canvas WHERE position=0")
        assert (canvas["width"], canvas["height"]) == (2194, 2843)
        assert canvas["layout_status"] == "ok"
        assert abs(1 / canvas["physical_scale"] - 400) < 1e-6
    # The mm10 page (1393×1805) covers the whole canvas: a region's box is its mm10 box × 2194/1393.
    from iiif_visual_search.sources.layout import read_layout

    page = read_layout(alto.read_bytes())
    assert (page.width, page.height, page.unit) == (1393, 1805, "mm10")
    # 400 dpi: one mm10 unit is 400/254 pixels, which is the same factor as page → canvas here.
    assert abs(2194 / 1393 - 400 / 254) < 0.01
    rows = regions_json(data)
    for row in rows:
        assert 0 <= row["x"] and row["x"] + row["w"] <= 2194 and row["y"] + row["h"] <= 2843
    expected = {(round(r.x * 2194 / 1393), round(r.y * 2843 / 1805)) for r in page.regions}
    assert {(r["x"], r["y"]) for r in rows} <= {(x + dx, y + dy) for x, y in expected for dx in (-1, 0, 1)
                                                 for dy in (-1, 0, 1)}
    assert len(rows) == len(page.regions)


def test_cookbook_newspaper_alto_is_scaled_onto_its_canvases(tmp_path: Path) -> None:
    # The recipe's files are Jekyll templates ({{ id.url }}); the manifest reader fills them in from
    # where each file was read, so the real files ingest as they are.
    collection = shared("iiif", "cookbook-0068-newspaper", "newspaper_title-collection.json")
    data = tmp_path / "data"
    report = run_ingest(data, str(collection))
    assert report.manifests_seen == 2 and report.layouts_read == 4, report.failures
    from iiif_visual_search.sources.layout import read_layout

    rows = regions_json(data)
    assert rows
    for row in rows:
        assert row["x"] + row["w"] <= 3602 and row["y"] + row["h"] <= 5000
    # Issue 2 page 1: ALTO Page 3536×4999 (or similar) is stretched to 3602×5000, not placed 1:1.
    alto = collection.parent / "newspaper_issue_2-alto_p1.xml"
    page = read_layout(alto.read_bytes())
    assert page.width != 3602
    biggest = max(page.regions, key=lambda r: r.w * r.h)
    ours = [r for r in rows if r["canvas"].endswith("/canvas/p1") and "issue_2" in r["manifest"]
            and r["block"] == biggest.block_id]
    assert len(ours) == 1
    assert abs(ours[0]["x"] + ours[0]["w"] - (biggest.x + biggest.w) * 3602 / page.width) <= 1.0


def test_bnf_lacroix_regions_have_the_reference_crop_size(tmp_path: Path) -> None:
    folder = shared("bnf-lacroix-alto-crops")
    from iiif_visual_search.sources.layout import read_layout

    manifests = []
    for n in (1, 2, 3):
        alto = folder / f"X000000{n}.xml"
        page = read_layout(alto.read_bytes())
        manifest = {
            "@context": "http://iiif.io/api/presentation/3/context.json",
            "id": f"https://example.org/lacroix/{n}/manifest", "type": "Manifest",
            "label": {"fr": [f"La Croix, page {n}"]},
            "items": [{"id": f"https://example.org/lacroix/{n}/canvas/1", "type": "Canvas",
                       "width": int(page.width), "height": int(page.height), "items": [],
                       "seeAlso": [{"id": alto.as_uri(), "type": "Dataset", "format": "text/xml",
                                    "profile": "http://www.loc.gov/standards/alto/"}]}],
        }
        path = tmp_path / f"lacroix-{n}.json"
        path.write_text(json.dumps(manifest))
        manifests.append(str(path))
    data = tmp_path / "data"
    run_ingest(data, *manifests)
    rows = regions_json(data)
    for n in (1, 2, 3):
        with Image.open(folder / "expected_crops" / f"220169-{n}-1.jpg") as crop:
            size = crop.size
        block = f"PAG_0000000{n}_IL000001"
        hits = [r for r in rows if r["block"] == block and r["manifest"].endswith(f"/{n}/manifest")]
        assert len(hits) == 1, block
        assert (hits[0]["w"], hits[0]["h"]) == size


def test_layout_map_and_vogue_v2_manifest(tmp_path: Path) -> None:
    manifest = shared("iiif", "bnf-gallica", "vogue-1920-bpt6k9604118j_v2.json")
    alto_dir = shared("iiif", "bnf-gallica", "alto")
    layout_map = tmp_path / "map.csv"
    with layout_map.open("w", newline="") as handle:
        writer = csv.writer(handle)
        for n in (19, 20, 21):
            writer.writerow([f"https://gallica.bnf.fr/iiif/ark:/12148/bpt6k9604118j/canvas/f{n}",
                             str(alto_dir / f"X000000{n}.xml")])
    data = tmp_path / "data"
    report = run_ingest(data, str(manifest), layout_map=layout_map)
    assert report.layouts_read == 3, report.failures
    rows = regions_json(data)
    assert {r["canvas"].rsplit("/", 1)[1] for r in rows} <= {"f19", "f20", "f21"}
    assert rows


def test_bad_documents_are_quarantined_and_the_rest_goes_on(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text('{"@context": "http://iiif.io/api/presentation/3/context.json", "id": "x", "ty')
    empty = tmp_path / "empty.json"
    empty.write_bytes(b"")
    bad_xml = tmp_path / "bad.xml"
    bad_xml.write_text("<alto><Layout><Page WIDTH='10' HEIGHT='10'><PrintSpace>")
    entity = tmp_path / "entity.xml"
    entity.write_text('<?xml version="1.0"?><!DOCTYPE alto [<!ENTITY e "boom">]><alto>&e;</alto>')
    canvases = []
    for n, layout in enumerate([bad_xml, entity, tmp_path / "missing.xml"], start=1):
        canvases.append({"id": f"https://example.org/c{n}", "type": "Canvas", "width": 100, "height": 100,
                         "items": [], "seeAlso": [{"id": layout.as_uri(), "type": "Dataset",
                                                   "format": "application/alto+xml"}]})
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"@context": "http://iiif.io/api/presentation/3/context.json",
                                "id": "https://example.org/m", "type": "Manifest", "label": {"en": ["m"]},
                                "items": canvases}))
    runner = CliRunner()
    data = tmp_path / "data"
    result = runner.invoke(main, ["--data-dir", str(data), "ingest", "-q", str(broken), str(empty), str(good),
                                  str(tmp_path / "nope.json")])
    assert result.exit_code == 0, result.output  # the good manifest went in
    with Catalogue(data / "catalogue.sqlite") as catalogue:
        reasons = {(r["kind"], Path(r["ref"].removeprefix("file://")).name): r["reason"]
                   for r in catalogue.quarantined()}
    assert set(reasons) == {("manifest", "broken.json"), ("manifest", "empty.json"), ("manifest", "nope.json"),
                            ("layout", "bad.xml"), ("layout", "entity.xml"), ("layout", "missing.xml")}
    assert "not found" in reasons[("manifest", "nope.json")]
    assert "entit" in reasons[("layout", "entity.xml")].lower()
    assert "not found" in reasons[("layout", "missing.xml")]
    # Nothing ingestable at all: the command fails.
    result = runner.invoke(main, ["--data-dir", str(tmp_path / "d2"), "ingest", "-q", str(broken)])
    assert result.exit_code != 0 and "nothing could be ingested" in result.output


def test_changed_and_removed_sources_are_logged(tmp_path: Path) -> None:
    incunabula = shared("gallicorpora-incunabula")
    pages = sorted(incunabula.glob("*.xml"))[:2]
    books = [Book(f"b{n}", f"Book {n}", [Page(p.with_suffix(".jpg"), tmp_path / f"l{n}.xml", "alto")])
             for n, p in enumerate(pages)]
    for n, p in enumerate(pages):
        (tmp_path / f"l{n}.xml").write_bytes(p.read_bytes())
    collection = write_sample(shared(), tmp_path / "s", books)
    data = tmp_path / "data"
    run_ingest(data, str(collection))
    before = regions_json(data)
    assert before
    # Edit one layout: drop its first graphic zone by renaming its tag reference.
    text = (tmp_path / "l0.xml").read_text(encoding="utf-8")
    assert "GraphicZone" in text or "DropCapitalZone" in text
    text = text.replace('LABEL="GraphicZone"', 'LABEL="MainZone"').replace('LABEL="DropCapitalZone"', 'LABEL="MainZone"')
    (tmp_path / "l0.xml").write_text(text, encoding="utf-8")
    # And take the second book out of the collection.
    doc = json.loads(collection.read_text())
    removed = doc["items"].pop(1)["id"]
    collection.write_text(json.dumps(doc))
    report = run_ingest(data, str(collection))
    assert report.regions_deleted > 0 and report.manifests_deleted == 1
    after = regions_json(data)
    assert not any(r["manifest"] == removed for r in after)
    # --include-deleted lists them too, told apart (they were indistinguishable from the live ones).
    every = regions_json(data, "--include-deleted")
    assert {r["id"] for r in every if r.get("deleted")} == {r["id"] for r in before} - {r["id"] for r in after}
    assert not any("deleted" in r for r in after)
    text = CliRunner().invoke(main, ["--data-dir", str(data), "regions", "--include-deleted"]).output
    assert text.count("(deleted)") == report.regions_deleted
    with Catalogue(data / "catalogue.sqlite") as catalogue:
        kinds = [r["kind"] for r in catalogue.query("SELECT kind FROM change ORDER BY seq")]
        assert kinds.count("delete") >= report.regions_deleted
        assert catalogue.find_manifest(removed)["status"] == "deleted"
    # Putting it back restores the regions.
    doc["items"].append({"id": removed, "type": "Manifest"})
    collection.write_text(json.dumps(doc))
    run_ingest(data, str(collection))
    assert any(r["manifest"] == removed for r in regions_json(data))


def test_kill_9_leaves_a_consistent_catalogue(tmp_path: Path) -> None:
    sample = write_sample(shared(), tmp_path / "sample")
    data = tmp_path / "data"
    env = {**os.environ, "IVS_DATA_DIR": str(data), "IVS_CONCURRENCY": "1"}
    cmd = [sys.executable, "-c", "from iiif_visual_search.cli import main; main()", "ingest", "-q", str(sample)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 30
    # Wait until some regions are written, then kill without warning.
    while time.time() < deadline:
        time.sleep(0.05)
        if (data / "catalogue.sqlite").exists():
            try:
                with sqlite3.connect(data / "catalogue.sqlite", timeout=1) as conn:
                    if conn.execute("SELECT COUNT(*) FROM region").fetchone()[0] > 0:
                        break
            except sqlite3.OperationalError:
                pass
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with sqlite3.connect(data / "catalogue.sqlite") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    run_ingest(data, str(sample))
    clean = tmp_path / "clean"
    run_ingest(clean, str(sample))
    strip = lambda rows: sorted((r["id"], r["x"], r["y"], r["w"], r["h"]) for r in rows)  # noqa: E731
    assert strip(regions_json(data)) == strip(regions_json(clean))


def test_ingest_over_http_from_a_loopback_server(tmp_path: Path) -> None:
    """Manifests and layout files served over HTTP, as a library's server would, including a 500 and a 404."""
    import functools
    import http.server
    import threading

    root = tmp_path / "www"
    root.mkdir()
    incunabula = shared("gallicorpora-incunabula")
    pages = sorted(incunabula.glob("*.xml"))[:3]
    for page in pages:
        (root / page.name).write_bytes(page.read_bytes())
    calls: dict[str, int] = {}

    class Handler(http.server.SimpleHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            calls[self.path] = calls.get(self.path, 0) + 1
            if self.path == "/flaky.xml" and calls[self.path] == 1:
                self.send_response(503)
                self.send_header("Retry-After", "0")
                self.end_headers()
                return
            super().do_GET()

        def log_message(self, *args: object) -> None:
            pass

    (root / "flaky.xml").write_bytes(pages[0].read_bytes())
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        canvases = []
        for n, name in enumerate([p.name for p in pages] + ["flaky.xml", "gone.xml"]):
            canvases.append({"id": f"{base}/canvas/{n}", "type": "Canvas", "width": 1000, "height": 1500,
                             "items": [],
                             # Relative links resolve against the manifest's URL.
                             "seeAlso": [{"id": name, "type": "Dataset", "format": "application/xml",
                                          "profile": "http://www.loc.gov/standards/alto/"}]})
        (root / "manifest.json").write_text(json.dumps({
            "@context": "http://iiif.io/api/presentation/3/context.json", "id": f"{base}/manifest.json",
            "type": "Manifest", "label": {"en": ["served"]}, "items": canvases}))
        data = tmp_path / "data"
        report = run_ingest(data, f"{base}/manifest.json")
        assert report.layouts_read == 4
        assert [(k, ref.rsplit("/", 1)[1]) for k, ref, _ in report.failures] == [("layout", "gone.xml")]
        assert "404" in report.failures[0][2]
        assert calls["/flaky.xml"] == 2  # retried after the 503
        rows = regions_json(data)
        assert {r["canvas"] for r in rows} <= {f"{base}/canvas/{n}" for n in range(4)}
        assert rows
    finally:
        server.shutdown()


def test_documents_over_the_size_limit_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    manifest = shared("iiif", "bnf-gallica", "VictorHugo_manifest_v3.json")  # about 1 MB
    monkeypatch.setenv("IVS_MAX_DOCUMENT_BYTES", "100000")
    result = CliRunner().invoke(main, ["--data-dir", str(tmp_path / "d"), "ingest", "-q", str(manifest)])
    assert result.exit_code != 0
    with Catalogue(tmp_path / "d" / "catalogue.sqlite") as catalogue:
        (row,) = catalogue.quarantined("manifest")
    assert "over the limit of 100000" in row["reason"]


def test_label_changes_are_logged_for_harvesters(sample: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    run_ingest(data, str(sample))
    with Catalogue(data / "catalogue.sqlite") as catalogue:
        rid = catalogue.query_one("SELECT id FROM region LIMIT 1")["id"]
        seq = catalogue.query_one("SELECT MAX(seq) FROM change")[0]
        catalogue.set_labels([(rid, "Map", 0.9)], "model", "v1")
        catalogue.set_labels([(rid, "Map", 0.95)], "model", "v2")  # same label: nothing new to harvest
        catalogue.set_labels([(rid, "Blank page", 0.6)], "model", "v3")
        logged = catalogue.query("SELECT kind, object_id FROM change WHERE seq > ?", (seq,))
    assert [(r["kind"], r["object_id"]) for r in logged] == [("update", rid), ("update", rid)]


def test_layout_map_rejects_an_empty_layout_cell_and_position_zero(tmp_path: Path) -> None:
    """``1,`` used to map canvas 1 onto the CSV's own folder (quarantined as "a folder, not a document"), and
    ``0,…`` matched no canvas without a word."""
    alto = shared("alto-variants", "nb-norway", "transkribus-alto-mm10.xml")
    layout_map = tmp_path / "map.csv"
    for row, says in (("1,", "empty canvas or layout"), (f",{alto}", "empty canvas or layout"),
                      (f"0,{alto}", "canvas positions start at 1")):
        layout_map.write_text(f"canvas,layout\n2,{alto}\n{row}\n", encoding="utf-8")
        with pytest.raises(ValueError, match=says):
            read_layout_map(layout_map)
    layout_map.write_text(f"canvas,layout\n1,{alto}\n,,\n", encoding="utf-8")  # a blank row is still fine
    assert list(read_layout_map(layout_map)) == ["#1"]


def test_ingest_rejects_concurrency_below_one(tmp_path: Path) -> None:
    """``--concurrency -1`` ended in a traceback from asyncio.Semaphore; ``--dpi -300`` was taken."""
    manifest = shared("iiif", "cookbook-0068-newspaper", "newspaper_issue_1-manifest.json")
    res = CliRunner().invoke(main, ["--data-dir", str(tmp_path / "d"), "ingest", str(manifest), "--concurrency", "-1"])
    assert res.exit_code == 2 and "--concurrency" in res.output, res.output
    # A DPI of 0 or below turned every mm10/inch1200 box into nothing (negative scale, clipped away).
    for dpi in ("0", "-300"):
        res = CliRunner().invoke(main, ["--data-dir", str(tmp_path / "d"), "ingest", str(manifest), "--dpi", dpi])
        assert res.exit_code == 2 and "--dpi" in res.output, res.output


def test_a_bad_environment_setting_is_named_not_a_traceback(tmp_path: Path, monkeypatch) -> None:
    """IVS_CONCURRENCY=abc made every verb print pydantic's traceback; IVS_CONCURRENCY=0 and a negative
    IVS_TIMEOUT were accepted."""
    manifest = shared("iiif", "cookbook-0068-newspaper", "newspaper_issue_1-manifest.json")
    for name, value in (("IVS_CONCURRENCY", "abc"), ("IVS_CONCURRENCY", "0"), ("IVS_TIMEOUT", "-5")):
        monkeypatch.setenv(name, value)
        res = CliRunner().invoke(main, ["--data-dir", str(tmp_path / "d"), "ingest", str(manifest)])
        assert res.exit_code == 1 and f"Error: bad setting: {name}='{value}'" in res.output, res.output
        monkeypatch.delenv(name)


def test_the_summary_counts_regions_of_removed_canvases_and_manifests(tmp_path: Path) -> None:
    """"regions: -0" was printed while a manifest gone from its collection took its regions out of the
    catalogue; and a canvas gone from its manifest had its layout read again, which brought its regions back."""
    pages = sorted(shared("gallicorpora-incunabula").glob("*.xml"))[:3]
    books = [Book("b0", "Book 0", [Page(p.with_suffix(".jpg"), p, "alto") for p in pages[:2]]),
             Book("b1", "Book 1", [Page(pages[2].with_suffix(".jpg"), pages[2], "alto")])]
    collection = write_sample(shared(), tmp_path / "s", books)
    data = tmp_path / "data"
    run_ingest(data, str(collection))
    before = regions_json(data)
    doc = json.loads(collection.read_text())
    gone_book = doc["items"].pop(1)["id"]
    collection.write_text(json.dumps(doc))
    manifest_path = Path(doc["items"][0]["id"].removeprefix("file://"))
    manifest = json.loads(manifest_path.read_text())
    canvas = manifest["items"].pop()
    gone_canvas = canvas["id"]
    manifest_path.write_text(json.dumps(manifest))
    report = run_ingest(data, str(collection))
    lost = [r for r in before if r["manifest"] == gone_book or r["canvas"] == gone_canvas]
    assert {r["manifest"] for r in lost} == {gone_book, doc["items"][0]["id"]}, "both removals took regions"
    assert report.regions_deleted == len(lost) == len(before) - len(regions_json(data))
    assert report.regions_created == 0 and report.layouts_read == 0
    status = CliRunner().invoke(main, ["--data-dir", str(data), "status", "--json"])
    assert [m["canvases"] for m in json.loads(status.output)["manifests"] if m["status"] == "ok"] == [1]
    # The canvas coming back brings its regions back.
    manifest["items"].append(canvas)
    manifest_path.write_text(json.dumps(manifest))
    doc["items"].append({"id": gone_book, "type": "Manifest"})
    collection.write_text(json.dumps(doc))
    run_ingest(data, str(collection))
    assert sorted(r["id"] for r in regions_json(data)) == sorted(r["id"] for r in before)


def test_a_catalogue_that_is_not_sqlite_is_an_error_message(tmp_path: Path) -> None:
    """A damaged or foreign catalogue.sqlite ended every verb in sqlite3's traceback."""
    (tmp_path / "catalogue.sqlite").write_text("garbage")
    manifest = shared("iiif", "cookbook-0068-newspaper", "newspaper_issue_1-manifest.json")
    for verb in (["status"], ["regions"], ["ingest", str(manifest)]):
        res = CliRunner().invoke(main, ["--data-dir", str(tmp_path), *verb])
        assert res.exit_code == 1 and "cannot open the catalogue" in res.output, (verb, res.output)
        assert "file is not a database" in res.output


def test_a_document_named_as_a_path_and_as_a_file_url_is_read_once(sample: Path, tmp_path: Path) -> None:
    """A collection listing itself by file:// URL, ingested by path, was read twice ("2 collection(s)"), and a
    manifest given both ways counted twice."""
    collection = json.loads(sample.read_text())
    collection["items"].insert(0, {"id": sample.resolve().as_uri(), "type": "Collection"})
    sample.write_text(json.dumps(collection))
    report = run_ingest(tmp_path / "data", str(sample))
    assert report.collections == 1 and report.manifests_seen == len(collection["items"]) - 1
    manifest = Path(collection["items"][1]["id"].removeprefix("file://"))
    report = run_ingest(tmp_path / "data2", str(manifest), manifest.as_uri())
    assert report.manifests_seen == 1


def test_status_counts_labels_and_vectors_of_live_regions_once(sample: Path, tmp_path: Path) -> None:
    """A region labelled by hand and by the model counted twice in "labels:", and deleted regions' labels and
    vectors were counted while every other line of the status leaves them out."""
    data = tmp_path / "data"
    run_ingest(data, str(sample))
    with Catalogue(data / "catalogue.sqlite") as catalogue:
        a, b, gone = (r["id"] for r in catalogue.query("SELECT id FROM region ORDER BY id LIMIT 3"))
        catalogue.set_labels([(a, "Map", None), (gone, "Map", None)], "manual")
        catalogue.set_labels([(a, "Illustration or photograph", 0.6), (b, "Map", 0.9)], "model", "v1")
        with catalogue.transaction() as conn:
            conn.executemany("INSERT INTO embedding(region_id, model, row) VALUES (?, 'fingerprint', ?)",
                             [(a, 0), (b, 1), (gone, 2)])
            conn.execute("UPDATE region SET deleted=1 WHERE id=?", (gone,))
    res = CliRunner().invoke(main, ["--data-dir", str(data), "status", "--json"])
    info = json.loads(res.output)
    assert info["labels"] == {"Map": 2}  # a: manual Map wins over the model's guess; b: the model's Map
    assert info["embeddings"] == {"fingerprint": 2}
    # Flags are counted per flag over live regions, a region with two flags under each (grouped in SQL now).
    with Catalogue(data / "catalogue.sqlite") as catalogue:
        live = [r["id"] for r in catalogue.query("SELECT id FROM region WHERE deleted=0 ORDER BY id")]
        with catalogue.transaction() as conn:
            conn.execute("UPDATE region SET flags=''")
            conn.execute("UPDATE region SET flags='tiny,edge' WHERE id IN (?, ?)", live[:2])
            conn.execute("UPDATE region SET flags='tiny' WHERE id=?", (live[2],))
            conn.execute("UPDATE region SET flags='blank' WHERE id=?", (gone,))
    info = json.loads(CliRunner().invoke(main, ["--data-dir", str(data), "status", "--json"]).output)
    assert info["regions_by_flag"] == {"tiny": 3, "edge": 2}
    assert info["regions_unflagged"] == len(live) - 3
    counts = list(info["regions_by_type"].values())
    assert sum(counts) == len(live) and counts == sorted(counts, reverse=True)


def test_a_canvas_gone_from_its_manifest_is_no_page_of_it(tmp_path: Path) -> None:
    """Its row stays (its regions are marked deleted) but no position-based lookup may find it."""
    pages = sorted(shared("gallicorpora-incunabula").glob("*.xml"))[:2]
    book = Book("b", "Book", [Page(p.with_suffix(".jpg"), p, "alto") for p in pages])
    collection = write_sample(shared(), tmp_path / "s", [book])
    manifest_path = tmp_path / "s" / "b" / "manifest.json"
    data = tmp_path / "data"
    run_ingest(data, str(collection))
    manifest = json.loads(manifest_path.read_text())
    first = manifest["items"].pop(0)["id"]
    manifest_path.write_text(json.dumps(manifest))
    run_ingest(data, str(collection))
    with Catalogue(data / "catalogue.sqlite") as catalogue:
        mid = catalogue.query_one("SELECT id FROM manifest")["id"]
        assert [c["uri"] for c in catalogue.canvases(mid)] == [manifest["items"][0]["id"]]
        gone = catalogue.query_one("SELECT position FROM canvas WHERE uri=?", (first,))
        assert gone["position"] == -1
        # The page that is now first has position 0 (from the reader), and only it answers there.
        assert len(catalogue.query("SELECT 1 FROM canvas WHERE manifest_id=? AND position=0", (mid,))) == 1


def test_a_manifest_without_layout_links_says_so_and_points_at_the_layout_map(tmp_path: Path) -> None:
    books = [b for b in shared_books(shared()) if b.slug.startswith("incunabula-")][:1]
    collection = write_sample(shared(), tmp_path / "s", books)
    manifest = collection.parent / books[0].slug / "manifest.json"
    doc = json.loads(manifest.read_text())
    for canvas in doc["items"]:
        del canvas["seeAlso"]
    manifest.write_text(json.dumps(doc))
    res = CliRunner().invoke(main, ["--data-dir", str(tmp_path / "data"), "ingest", "-q", str(manifest)])
    assert res.exit_code == 0, res.output
    assert f"note: {manifest} links no layout files (ALTO or PAGE-XML) on its" in res.output
    assert "--layout-map" in res.output


def test_layout_map_paths_are_files_whatever_the_manifest_url(tmp_path: Path) -> None:
    # An absolute path was joined to an http manifest's URL (https://host/data/alto/1.xml).
    from iiif_visual_search.loader import resolve

    alto = shared("alto-variants", "nb-norway", "transkribus-alto-mm10.xml")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "x.xml").write_text("<alto/>")
    layout_map = tmp_path / "map.csv"
    layout_map.write_text(f"canvas,layout\n1,{alto}\n2,sub/x.xml\n3,https://example.org/alto/3.xml\n")
    refs = {k: v.ref for k, v in read_layout_map(layout_map).items()}
    assert refs == {"#1": alto.resolve().as_uri(), "#2": (tmp_path / "sub" / "x.xml").as_uri(),
                    "#3": "https://example.org/alto/3.xml"}
    assert resolve(refs["#1"], "https://example.org/iiif/manifest.json") == alto.resolve().as_uri()


def test_quarantine_entries_go_once_the_document_ingests(tmp_path: Path) -> None:
    book = [b for b in shared_books(shared()) if b.slug.startswith("incunabula-")][0]
    sample = write_sample(shared(), tmp_path / "s", [book]).parent / book.slug / "manifest.json"
    doc = json.loads(sample.read_text())
    del doc["items"][0]["seeAlso"]  # its layout comes from the map below
    manifest = tmp_path / "book.json"
    manifest.write_text('{"broken')
    data = tmp_path / "data"
    run_ingest(data, manifest.as_uri())  # first as a file:// URL, broken
    broken = tmp_path / "broken.xml"
    broken.write_text("<alto><Layout>")
    layout_map = tmp_path / "map.csv"
    layout_map.write_text(f"1,{broken}\n")
    manifest.write_text(json.dumps(doc))
    run_ingest(data, str(manifest), layout_map=layout_map)  # then as a path, fine; its layout broken
    with Catalogue(data / "catalogue.sqlite") as catalogue:
        assert [(q["kind"], q["ref"]) for q in catalogue.quarantined()] == [("layout", broken.as_uri())]
    layout_map.write_text(f"1,{book.pages[0].layout}\n")
    report = run_ingest(data, str(manifest), layout_map=layout_map)
    assert report.layouts_read == 1 and not report.failures
    with Catalogue(data / "catalogue.sqlite") as catalogue:
        assert catalogue.quarantined() == []


def test_a_canvas_whose_regions_cannot_be_written_is_quarantined_and_the_rest_of_its_batch_is_written(
        sample: Path, tmp_path: Path) -> None:
    """Regions are written a few dozen canvases at a time; one that the catalogue refuses (here a region of a
    canvas it does not know: the foreign key fails) must not take the others of its transaction with it."""
    from iiif_visual_search.catalogue import CanvasRegions, RegionRow
    from iiif_visual_search.ingest import Ingester

    data_dir = tmp_path / "data"
    run_ingest(data_dir, str(sample))
    settings = load_settings(data_dir=data_dir)
    catalogue = Catalogue(settings.catalogue_path)
    try:
        canvas = catalogue.query_one("SELECT id, manifest_id FROM canvas ORDER BY position LIMIT 1")
        good = CanvasRegions(canvas["id"], [RegionRow("rgood", canvas["id"], canvas["manifest_id"], 1, 2, 30, 40)],
                             "newhash", read_from="https://example.org/good.xml")
        bad = CanvasRegions("no-such-canvas", [RegionRow("rbad", "no-such-canvas", canvas["manifest_id"], 1, 2, 3, 4)],
                            "h", read_from="https://example.org/bad.xml")
        with pytest.raises(sqlite3.IntegrityError):
            catalogue.replace_regions([good, bad])
        assert catalogue.query_one("SELECT COUNT(*) AS n FROM region WHERE id='rgood'")["n"] == 0  # atomic

        ingester = Ingester(catalogue, settings, loader=None)  # type: ignore[arg-type] - nothing is loaded
        ingester._unwritten = [(good, canvas["manifest_id"]), (bad, canvas["manifest_id"])]
        ingester._write_regions()
        live = {r["id"] for r in catalogue.query("SELECT id FROM region WHERE canvas_id=? AND deleted=0",
                                                 (canvas["id"],))}
        assert live == {"rgood"}  # the canvas now holds exactly the regions written for it
        assert ingester.report.layouts_read == 1
        assert [(k, ref) for k, ref, _ in ingester.report.failures] == [("layout", "https://example.org/bad.xml")]
        assert "FOREIGN KEY" in catalogue.query_one("SELECT reason FROM quarantine WHERE ref LIKE '%bad.xml'")["reason"]
    finally:
        catalogue.close()


def test_a_collection_is_read_a_few_books_at_a_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A collection's members were all fetched and parsed first, each parsed manifest then waiting in memory
    for its pages: 1.2 GB within a minute for 1,667 books (bench/README, "Ingest"). Now a few workers take
    them in turn, so the first pages are read before most books are asked for."""
    import http.server
    import threading

    alto = shared("gallicorpora-incunabula")
    page = sorted(alto.glob("*.xml"))[0].read_bytes()
    requests: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the http.server interface
            requests.append(self.path)
            base = f"http://127.0.0.1:{self.server.server_address[1]}"
            if self.path == "/collection.json":
                body = json.dumps({"@context": "http://iiif.io/api/presentation/3/context.json",
                                   "id": f"{base}/collection.json", "type": "Collection", "label": {"en": ["c"]},
                                   "items": [{"id": f"{base}/b{b}.json", "type": "Manifest"} for b in range(40)]})
            elif self.path.endswith(".json"):
                book = self.path[1:-5]
                body = json.dumps({
                    "@context": "http://iiif.io/api/presentation/3/context.json", "id": f"{base}/{book}.json",
                    "type": "Manifest", "label": {"en": [book]},
                    "items": [{"id": f"{base}/{book}/canvas", "type": "Canvas", "width": 1000, "height": 1500,
                               "items": [], "seeAlso": [{"id": f"{base}/{book}.xml", "type": "Dataset",
                                                         "format": "application/xml",
                                                         "profile": "http://www.loc.gov/standards/alto/"}]}]})
            else:
                body = page.decode("utf-8")
            data = body.encode("utf-8")
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("IVS_CONCURRENCY", "2")  # four books at a time
    try:
        report = run_ingest(tmp_path / "data", f"http://127.0.0.1:{server.server_address[1]}/collection.json")
    finally:
        server.shutdown()
    assert report.manifests_seen == 40 and report.layouts_read == 40 and not report.failures
    books_before_first_page = next(i for i, path in enumerate(requests) if path.endswith(".xml")) - 1
    assert books_before_first_page <= 4  # all 40 before, when every member was gathered at once
