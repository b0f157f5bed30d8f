"""What validators and harvesters read, with no configuration on their side.

Every Presentation 2 document the service writes goes through the official validator's 2.1 reader
(``prezi2_reader``), the Presentation 3 ones left out of test_prezi3_load through the P3 schema and iiif-prezi3;
harvest and activity pages stay put when regions are deleted between two page requests; answers are gzipped;
language maps survive; hit snippets never repeat text. Built over real manifests and ALTO (test_iiif_data).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

import prezi2_reader
from iiif_visual_search.catalogue import Catalogue
from iiif_visual_search.index.text import Span, TextMatch
from iiif_visual_search.ingest import LayoutOverride, ingest
from iiif_visual_search.web.app import create_app
from iiif_visual_search.web.options import ServeOptions
from test_iiif_data import BASE, NEWSPAPER, build_catalogue
from test_web_app import FakeSimilar

PAGE = 5  # harvest page size: the 29 regions of the test data make six pages


def _client(settings: Any) -> TestClient:
    options = ServeOptions(search_page_size=2, harvest_page_size=PAGE, activity_page_size=PAGE)
    return TestClient(create_app(settings, options, similar_backend=FakeSimilar()))


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Any:
    settings = build_catalogue(tmp_path_factory.mktemp("stock"))
    catalogue = Catalogue(settings.catalogue_path)
    with _client(settings) as client:
        yield client, catalogue, {m["version"]: m["id"] for m in catalogue.manifests()}
    catalogue.close()


def get(client: TestClient, url: str) -> dict[str, Any]:
    response = client.get(url[len(BASE):] if url.startswith(BASE) else url)
    assert response.status_code == 200, (url, response.text[:300])
    return response.json()


def _pages(client: TestClient, url: str) -> list[dict[str, Any]]:
    """A Search 1.0 answer and every page after it."""
    pages = [get(client, url)]
    while pages[-1].get("next"):
        pages.append(get(client, pages[-1]["next"]))
    return pages


# --- Presentation 2.1: the official validator's reader ----------------------------------------------------


def test_every_v2_document_passes_the_validators_21_reader(env: Any) -> None:
    client, _, manifests = env
    mid = manifests[2]
    manifest = get(client, f"/iiif/{mid}/manifest")
    prezi2_reader.read(manifest)  # was: "Services must have an http[s] URI" (a v3-style SearchService2)
    lists = [ref["@id"] for c in manifest["sequences"][0]["canvases"] for ref in c.get("otherContent", [])
             if ref["@id"].startswith(BASE)]
    assert lists
    for url in lists:
        for suffix in ("", "&all=true"):
            listing = get(client, url + suffix)
            assert listing["resources"]
            prezi2_reader.read(listing)  # was: "Unknown resource class oa:Tag"
    # Content Search 1.0 answers are Presentation 2 AnnotationLists too, for either manifest and collection-wide.
    # (Collection-wide answers are left out: their ``on`` is Search 1.0 §3.3.3's object with ``within``, which
    # the reader cannot take in any form short of calling the region a whole sc:Canvas.)
    for url in (f"/search/1/{mid}?q=vogue", f"/search/1/{manifests[3]}?q=Berlin",
                f"/search/1/{manifests[3]}?q=nothingatall"):
        for page in _pages(client, url):
            prezi2_reader.read(page)  # was: "sc:AnnotationList['within'] must have a URI"


def test_v2_regions_are_what_stock_viewers_show(env: Any) -> None:
    client, catalogue, manifests = env
    mid = manifests[2]
    listing = get(client, f"/iiif/{mid}/canvas/18/regions?version=2")
    for resource in listing["resources"]:
        # Mirador 4.0's default filteredMotivations hold oa:commenting; TIFY shows the first resource's chars.
        assert resource["motivation"] == "oa:commenting"
        first = resource["resource"][0]
        region = catalogue.region(resource["@id"].rsplit("/", 1)[-1])
        assert first == {"@type": "dctypes:Text", "format": "text/plain", "chars": region["block_type"]}


# --- Presentation 3: schema and iiif-prezi3 ---------------------------------------------------------------


def test_text_annotation_is_a_valid_standalone_p3_document(env: Any, p3: Any) -> None:
    # Served with a Search 2.0 target {id, partOf}: it failed the P3 schema and iiif-prezi3.
    prezi3 = pytest.importorskip("iiif_prezi3")
    client, _, manifests = env
    hit = get(client, "/search/2?q=Berlin")["items"][0]
    assert set(hit["target"]) == {"id", "partOf"}  # the search answer keeps the Search 2.0 §4.2.3 form
    doc = get(client, hit["id"])
    p3(doc)
    anno = prezi3.Annotation(**doc)
    assert anno.id == hit["id"]
    assert doc["target"]["id"] == hit["target"]["id"]  # the same region of the same canvas
    assert doc["target"]["source"]["partOf"][0]["id"] == hit["target"]["partOf"]["id"]


def test_search2_matches_are_highlighting(env: Any) -> None:
    client, _, manifests = env
    doc = get(client, f"/search/2/{manifests[3]}?q=Berlin")
    matches = doc["annotations"][0]["items"]
    assert matches and {m["motivation"] for m in matches} == {"highlighting"}
    bodies = {item["id"]: item["body"]["value"] for item in doc["items"]}
    for match in matches:
        quote = match["target"]["selector"][0]
        assert quote["prefix"] + quote["exact"] + quote["suffix"] in bodies[match["target"]["source"]]


def test_search1_layer_always_has_first_and_last(env: Any) -> None:
    client, _, manifests = env
    mid = manifests[3]
    rare = next(t for t in get(client, f"/autocomplete/1/{mid}?q=b")["terms"] if t["count"] == 1)
    for url in (rare["url"], f"/search/1/{mid}?q=nothingatall"):
        one_page = get(client, url)
        assert "next" not in one_page and one_page["within"]["total"] <= 1
        within = one_page["within"]
        assert within["first"] == within["last"] == one_page["@id"], url
        assert within["@id"] != one_page["@id"]  # the layer (every hit) is not its first page
    pages = _pages(client, f"/search/1/{manifests[3]}?q=Berlin")
    assert len(pages) > 1
    assert pages[0]["within"]["first"] == pages[0]["@id"] and pages[0]["within"]["last"] == pages[-1]["@id"]


def test_collection_and_part_of_keep_the_manifests_languages(env: Any) -> None:
    client, catalogue, manifests = env
    source = json.loads(catalogue.find_manifest(manifests[3])["raw"])["label"]
    assert "de" in source, "the cookbook newspaper's label is German"
    labels = {item["id"]: item["label"] for item in get(client, "/collection")["items"]}
    assert labels[f"{BASE}/iiif/{manifests[3]}/manifest"] == source
    # v2's plain string label has no language
    assert list(labels[f"{BASE}/iiif/{manifests[2]}/manifest"]) == ["none"]
    page = get(client, f"/iiif/{manifests[3]}/canvas/0/regions")
    assert page["items"][0]["target"]["source"]["partOf"][0]["label"] == source


def test_json_and_html_are_gzipped_with_cors(env: Any) -> None:
    client, _, manifests = env
    for url in (f"/iiif/{manifests[3]}/manifest", "/annotations/page/1", "/activity/page/1", "/?lang=en"):
        response = client.get(url, headers={"Accept-Encoding": "gzip", "Origin": "https://viewer.example"})
        assert response.status_code == 200, url
        assert response.headers.get("content-encoding") == "gzip", url
        assert response.headers["access-control-allow-origin"] == "*", url
        assert "accept-encoding" in response.headers.get("vary", "").lower(), url
    plain = client.get(f"/iiif/{manifests[3]}/manifest", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers and plain.json()["type"] == "Manifest"


# --- harvest and activity pages ---------------------------------------------------------------------------


def test_harvest_sees_every_live_annotation_once_when_a_canvas_is_deleted_between_pages(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    # With offsets over live rows, deleting page 1's canvas after page 2 slid 10 later regions back onto
    # pages already read: the harvester never saw them.
    tmp = tmp_path_factory.mktemp("harvest")
    settings = build_catalogue(tmp)
    catalogue = Catalogue(settings.catalogue_path)
    with _client(settings) as client:
        collection = get(client, "/annotations")
        assert collection["total"] == 29
        seen: list[str] = []
        page = get(client, collection["first"]["id"])
        seen += [a["id"] for a in page["items"]]
        page = get(client, page["next"]["id"])
        seen += [a["id"] for a in page["items"]]

        # The newspaper loses its first page (whose 16 regions were harvested first) and is ingested again.
        local = tmp / "newspaper_issue_1-manifest.json"
        manifest = json.loads(local.read_text(encoding="utf-8"))
        gone = manifest["items"].pop(0)["id"]
        local.write_text(json.dumps(manifest), encoding="utf-8")
        p2 = manifest["items"][0]["id"]
        asyncio.run(ingest([str(local)], catalogue, settings, layout_map={
            p2: LayoutOverride(str(NEWSPAPER / "newspaper_issue_1-alto_p2.xml"), "alto")}))
        live = {f"{BASE}/iiif/{r['manifest_id']}/annotation/{r['id']}" for r in catalogue.regions()}
        assert len(live) == 13 and all(gone not in r["canvas_uri"] for r in catalogue.regions())

        while page.get("next"):
            page = get(client, page["next"]["id"])
            seen += [a["id"] for a in page["items"]]
        assert page["id"] == get(client, "/annotations")["last"]["id"]
        assert len(seen) == len(set(seen)), "no annotation twice"
        assert live <= set(seen), f"never seen: {sorted(live - set(seen))}"
        assert get(client, "/annotations")["total"] == 13

        # The activity stream only grows: its first page is the same after the deletes.
        activity = get(client, "/activity")
        first = get(client, activity["first"]["id"])
        last = get(client, activity["last"]["id"])
        assert last["startIndex"] == (int(last["id"].rsplit("/", 1)[-1]) - 1) * PAGE
        assert [a["type"] for a in last["orderedItems"]].count("Delete") >= 1
        ids = [a["id"] for a in first["orderedItems"]]
        assert ids == [f"{BASE}/activity/{n}" for n in range(1, PAGE + 1)]
    catalogue.close()


def test_existing_catalogues_get_region_numbers_in_insertion_order(tmp_path: Path) -> None:
    path = tmp_path / "catalogue.sqlite"
    Catalogue(path).close()
    conn = sqlite3.connect(path)
    # As a catalogue written before region.seq existed.
    conn.executescript("DROP TRIGGER region_number; DROP INDEX region_seq; ALTER TABLE region DROP COLUMN seq;")
    conn.execute("INSERT INTO manifest(id, uri, url, version, fetched_at) VALUES ('m', 'u', 'u', 3, 0)")
    conn.execute("INSERT INTO canvas(id, manifest_id, uri, position, width, height) VALUES ('c', 'm', 'c', 0, 9, 9)")
    for rid in ("rb", "ra", "rc"):
        conn.execute("INSERT INTO region(id, canvas_id, manifest_id, x, y, w, h, created_at, updated_at) "
                     "VALUES (?, 'c', 'm', 0, 0, 1, 1, 0, 0)", (rid,))
    conn.commit()
    conn.close()
    with Catalogue(path) as catalogue:
        catalogue.conn.execute("INSERT INTO region(id, canvas_id, manifest_id, x, y, w, h, created_at, updated_at) "
                               "VALUES ('r0', 'c', 'm', 0, 0, 1, 1, 0, 0)")
        order = [r["id"] for r in catalogue.query("SELECT id FROM region ORDER BY seq")]
        assert order == ["rb", "ra", "rc", "r0"]


# --- hit text ---------------------------------------------------------------------------------------------


def test_snippets_of_one_text_never_repeat_words() -> None:
    # Two matches 3 words apart: each snippet's 80 characters of context held the other match and its
    # neighbours, and Clover, listing both hits, showed those words twice.
    text = ("Die Karte von Berlin und Potsdam mit Berlin im Norden, gezeichnet 1925 von einem Berliner "
            "Kartographen, zeigt die Umgebung von Berlin bis an die Havel und weiter nach Westen hin.")
    spans = []
    start = 0
    while (at := text.find("Berlin ", start)) >= 0:
        spans.append(Span(at, at + len("Berlin")))
        start = at + 1
    snippets = TextMatch("r", "m", 1.0, text, spans).snippets(width=40)
    assert len(snippets) == 3
    cursor = 0
    for prefix, exact, suffix in snippets:
        piece = prefix + exact + suffix
        at = text.find(piece, cursor)
        assert at >= cursor, (piece, cursor)
        cursor = at + len(piece)
