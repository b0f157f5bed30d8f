"""The HTTP service in-process (Starlette TestClient) over a catalogue built from real manifests and ALTO."""

from __future__ import annotations

import io
import json
import re
import struct
import zlib
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from PIL import Image
from starlette.testclient import TestClient

from datapaths import SHARED_DATA
from iiif_visual_search.catalogue import Catalogue
from iiif_visual_search.index.text import is_noise
from iiif_visual_search.web.app import create_app
from iiif_visual_search.web.options import ServeOptions
from test_iiif_data import BASE, build_catalogue

XYWH = re.compile(r"^xywh=\d+,\d+,\d+,\d+$")


class FakeSimilar:
    """Stands in for similar.find_similar (issue 4): every other region, scored by distance in id order."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.fail: Exception | None = None

    def __call__(self, catalogue: Catalogue, settings: Any, **kwargs: Any) -> list[tuple[str, float]]:
        self.calls.append(kwargs)
        if self.fail is not None:
            raise self.fail
        rows = catalogue.regions(kwargs.get("manifest"))
        ids = [r["id"] for r in rows if not is_noise(r["flags"])]
        return [(rid, 1.0 - i / 100) for i, rid in enumerate(ids)][: kwargs["k"]]


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Any:
    settings = build_catalogue(tmp_path_factory.mktemp("web"))
    fake = FakeSimilar()
    options = ServeOptions(search_page_size=3, harvest_page_size=10, activity_page_size=20,
                           max_body_bytes=2_000_000, max_image_pixels=50_000_000)
    app = create_app(settings, options, similar_backend=fake)
    catalogue = Catalogue(settings.catalogue_path)
    manifests = {m["version"]: m["id"] for m in catalogue.manifests()}
    with TestClient(app) as client:
        yield client, catalogue, manifests, fake


def get(client: TestClient, url: str, status: int = 200) -> dict[str, Any]:
    path = url[len(BASE):] if url.startswith(BASE) else url
    response = client.get(path)
    assert response.status_code == status, (url, response.status_code, response.text[:300])
    assert response.headers["access-control-allow-origin"] == "*"
    return response.json()


# --- manifests and region pages ---------------------------------------------------------------------------


def test_v3_manifest_is_augmented_and_valid(env: Any, p3: Any) -> None:
    client, catalogue, manifests, _ = env
    mid = manifests[3]
    response = client.get(f"/iiif/{mid}/manifest", headers={"Origin": "https://viewer.example"})
    assert response.headers["content-type"] == \
        'application/ld+json;profile="http://iiif.io/api/presentation/3/context.json"'
    doc = response.json()
    p3(doc)
    assert doc["id"] == f"{BASE}/iiif/{mid}/manifest"
    services = {s["type"]: s for s in doc["service"]}
    assert services["SearchService1"]["profile"] == "http://iiif.io/api/search/1/search"
    assert services["SearchService1"]["id"] != services["SearchService2"]["id"]
    assert all("?" not in s["id"] for s in doc["service"])
    source = json.loads(catalogue.find_manifest(mid)["raw"])
    assert [c["id"] for c in doc["items"]] == [c["id"] for c in source["items"]]
    linked = 0
    for position, canvas in enumerate(doc["items"]):
        ours = [p for p in canvas.get("annotations", []) if p["id"].startswith(BASE)]
        page = get(client, f"{BASE}/iiif/{mid}/canvas/{position}/regions")
        if not page["items"]:
            # 83 of 114 pages linked were empty: a canvas without regions gets no link (P3: a page SHOULD
            # have items).
            assert ours == [], position
            continue
        # Ours first: TIFY reads only a canvas's first annotation page.
        assert canvas["annotations"][0] == {"id": page["id"], "type": "AnnotationPage"}
        assert len(ours) == 1
        linked += 1
        p3(page)
        for item in page["items"]:
            assert item["target"]["source"]["id"] == canvas["id"]
            assert XYWH.match(item["target"]["selector"]["value"])
            # What TIFY reads for the box: the target's id, the region as a media fragment IRI.
            assert item["target"]["id"] == f"{canvas['id']}#{item['target']['selector']['value']}"
            # Stock Mirador 4.0 lists commenting (not classifying); the class is the first body, a tag.
            assert item["motivation"] == "commenting"
            assert item["body"][0]["purpose"] == "tagging"
    assert linked > 0


def test_region_page_ids_dereference_to_the_same_version(env: Any, p3: Any) -> None:
    # A v2 manifest's canvas asked for ?version=3 answered a page whose id (no version) gave the v2 list.
    client, _, manifests, _ = env
    for mid in manifests.values():
        for version in (2, 3):
            for extra in ("", "&all=true"):  # ?all=true (noise too) was left out of the id as well
                page = get(client, f"/iiif/{mid}/canvas/0/regions?version={version}{extra}")
                again = get(client, page.get("id") or page["@id"])
                assert again == page, (mid, version, extra)
    v3_of_v2 = get(client, f"/iiif/{manifests[2]}/canvas/0/regions?version=3")
    p3(v3_of_v2)
    assert v3_of_v2["id"].endswith("/canvas/0/regions?version=3")


def test_region_page_matches_catalogue(env: Any) -> None:
    client, catalogue, manifests, _ = env
    mid = manifests[3]
    canvas = catalogue.canvases(mid)[0]
    rows = [r for r in catalogue.regions(mid) if r["canvas_id"] == canvas["id"]]
    real = [r for r in rows if not is_noise(r["flags"])]
    assert real and len(real) < len(rows), "the newspaper page has both pictures and separator rules"
    page = get(client, f"/iiif/{mid}/canvas/0/regions")
    boxes = {item["target"]["selector"]["value"] for item in page["items"]}
    assert boxes == {f"xywh={r['x']},{r['y']},{r['w']},{r['h']}" for r in real}
    everything = get(client, f"/iiif/{mid}/canvas/0/regions?all=true")
    assert len(everything["items"]) == len(rows)
    labels = {b["value"] for item in page["items"] for b in item["body"] if b["purpose"] == "tagging"}
    assert labels <= {r["block_type"] for r in real}


def test_labels_from_the_classifier_win_over_block_types(env: Any) -> None:
    client, catalogue, manifests, _ = env
    mid = manifests[3]
    page = get(client, f"/iiif/{mid}/canvas/0/regions")
    region_id = page["items"][0]["id"].rsplit("/", 1)[-1]
    with catalogue.transaction() as conn:
        conn.execute("INSERT OR REPLACE INTO label VALUES (?, 'Map', 'model', 'v1', 0.91)", (region_id,))
    try:
        anno = get(client, f"/iiif/{mid}/annotation/{region_id}")
        assert anno["body"][0] == {"type": "TextualBody", "value": "Map", "format": "text/plain",
                                   "language": "en", "purpose": "tagging"}
    finally:
        with catalogue.transaction() as conn:
            conn.execute("DELETE FROM label WHERE region_id=?", (region_id,))


def test_v2_manifest_keeps_v2_and_links_annotation_lists(env: Any) -> None:
    client, catalogue, manifests, _ = env
    mid = manifests[2]
    response = client.get(f"/iiif/{mid}/manifest")
    assert "presentation/2/context.json" in response.headers["content-type"]
    doc = response.json()
    assert doc["@context"] == "http://iiif.io/api/presentation/2/context.json"
    search = [s for s in doc["service"] if s.get("profile") == "http://iiif.io/api/search/1/search"]
    assert len(search) == 1 and search[0]["@context"] == "http://iiif.io/api/search/1/context.json"
    assert search[0]["service"]["profile"] == "http://iiif.io/api/search/1/autocomplete"
    # Only Search 1.0: a Search 2.0 service is a Presentation 3 resource that a v2 client cannot read.
    assert len(doc["service"]) == 1 and "@id" in doc["service"][0]
    canvases = doc["sequences"][0]["canvases"]
    linked = [i for i, c in enumerate(canvases) if c.get("otherContent")]
    assert linked == [18, 19, 20], "only the pages with regions (f19-f21 have ALTO) link a list"
    f19 = canvases[18]
    listing = get(client, f19["otherContent"][0]["@id"])
    assert listing["@type"] == "sc:AnnotationList" and listing["resources"]
    for resource in listing["resources"]:
        canvas_id, fragment = resource["on"].split("#")
        assert canvas_id == f19["@id"] and XYWH.match(fragment)
        assert resource["motivation"] == "oa:commenting"
        assert resource["resource"][0]["@type"] == "dctypes:Text"  # the 2.1 validator refuses oa:Tag


# --- Content Search ---------------------------------------------------------------------------------------


def test_search1_hits_paging_and_ignored(env: Any) -> None:
    client, _, manifests, _ = env
    mid = manifests[3]
    response = client.get(f"/search/1/{mid}?q=Berlin&user=someone")
    assert "search/1/context.json" in response.headers["content-type"]
    doc = response.json()
    assert doc["@context"] == ["http://iiif.io/api/presentation/2/context.json",
                               "http://iiif.io/api/search/1/context.json"]
    assert doc["@type"] == "sc:AnnotationList"
    assert doc["within"]["@type"] == "sc:Layer" and doc["within"]["ignored"] == ["user"]
    total = doc["within"]["total"]
    assert total > 3 and len(doc["resources"]) == 3 and len(doc["hits"]) == 3
    assert isinstance(doc["next"], str) and "page=2" in doc["next"]
    for resource, hit in zip(doc["resources"], doc["hits"], strict=True):
        assert hit["annotations"] == [resource["@id"]]
        assert hit["match"].lower() == "berlin"
        assert (hit["before"] + hit["match"] + hit["after"]) in resource["resource"]["chars"]
        assert XYWH.match(resource["on"].split("#")[1])
    seen = {r["@id"] for r in doc["resources"]}
    url: str | None = doc["next"]
    while url:
        page = get(client, url)
        assert page["prev"]
        seen |= {r["@id"] for r in page["resources"]}
        url = page.get("next")
    assert len(seen) == total


def test_search_folds_case_and_accents(env: Any) -> None:
    client, _, manifests, _ = env
    totals = {q: get(client, f"/search/1/{manifests[3]}?q={q}")["within"]["total"]
              for q in ("Moskau", "MOSKAU", "moſkau", "anknupfend", "Anknüpfend")}
    assert totals["Moskau"] > 0 and totals["Moskau"] == totals["MOSKAU"] == totals["moſkau"]
    assert totals["anknupfend"] > 0 and totals["anknupfend"] == totals["Anknüpfend"]


def test_search2_highlighting_annotations(env: Any) -> None:
    client, _, manifests, _ = env
    mid = manifests[3]
    doc = get(client, f"/search/2/{mid}?q=moskau&date=2020-01-01T00:00:00Z/2021-01-01T00:00:00Z")
    assert doc["@context"] == "http://iiif.io/api/search/2/context.json"
    assert doc["type"] == "AnnotationPage" and doc["ignored"] == ["date"]
    assert doc["partOf"]["type"] == "AnnotationCollection" and doc["partOf"]["total"] >= len(doc["items"])
    assert doc["partOf"]["first"]["type"] == "AnnotationPage"
    ids = {item["id"] for item in doc["items"]}
    texts = {item["id"]: item["body"]["value"] for item in doc["items"]}
    contexts = doc["annotations"][0]["items"]
    assert contexts
    for ctx in contexts:
        # Search 2.0 §4.3.2: the match lies inside the item's body (the whole text around a picture).
        assert ctx["motivation"] == "highlighting"
        assert ctx["target"]["source"] in ids
        selector = ctx["target"]["selector"][0]
        assert selector["type"] == "TextQuoteSelector" and selector["exact"].lower() == "moskau"
        assert selector["prefix"] + selector["exact"] + selector["suffix"] in texts[ctx["target"]["source"]]
    for item in doc["items"]:
        assert isinstance(item["target"], str) and item["target"].count("#xywh=") == 1
    # the text annotation dereferences
    anno = get(client, doc["items"][0]["id"])
    assert anno["id"] == doc["items"][0]["id"]


def test_collection_wide_search_names_the_manifest(env: Any) -> None:
    client, _, manifests, _ = env
    doc1 = get(client, "/search/1?q=Berlin")
    assert doc1["resources"] and all(r["on"]["within"]["@type"] == "sc:Manifest" for r in doc1["resources"])
    doc2 = get(client, "/search/2?q=Berlin")
    target = doc2["items"][0]["target"]
    assert target["partOf"]["type"] == "Manifest" and target["partOf"]["label"]


def test_search2_page_and_collection_ids_differ(env: Any) -> None:
    # Page 1 had its AnnotationCollection's id (JSON-LD: one node of two types); the spec's example has page=1.
    client, _, manifests, _ = env
    for url in (f"/search/2/{manifests[3]}?q=Berlin", "/search/2?q=Berlin", "/search/2?q=nothingatall"):
        doc = get(client, url)
        assert doc["id"] != doc["partOf"]["id"], url
        assert doc["id"] == doc["partOf"]["first"]["id"] and doc["id"].endswith("&page=1")
        assert get(client, doc["partOf"]["first"]["id"])["id"] == doc["id"]
    second = get(client, get(client, "/search/2?q=Berlin")["next"]["id"])
    assert second["prev"]["id"] == get(client, "/search/2?q=Berlin")["id"]


def test_motivation_filter_and_empty_queries(env: Any) -> None:
    client, _, manifests, _ = env
    mid = manifests[3]
    assert get(client, f"/search/1/{mid}?q=Berlin&motivation=painting")["within"]["total"] == 0
    assert get(client, f"/search/1/{mid}?q=Berlin&motivation=painting describing")["within"]["total"] > 0
    assert get(client, f"/search/2/{mid}?q=")["items"] == []
    assert get(client, f'/search/2/{mid}?q=" OR NEAR(')["items"] == []  # FTS5 syntax is plain text here


def test_autocomplete_1_and_2(env: Any) -> None:
    client, _, manifests, _ = env
    mid = manifests[3]
    doc1 = get(client, f"/autocomplete/1/{mid}?q=Mosk")
    assert doc1["@type"] == "search:TermList"
    assert [t["match"] for t in doc1["terms"]] == ["moskau"]
    found = get(client, doc1["terms"][0]["url"])
    assert found["within"]["total"] == doc1["terms"][0]["count"]
    doc2 = get(client, "/autocomplete/2?q=ber&user=x")
    assert doc2["type"] == "TermPage" and doc2["ignored"] == ["user"]
    values = [t["value"] for t in doc2["items"]]
    assert values == sorted(values) and "berlin" in values
    assert get(client, "/autocomplete/2?q=ber&min=1000")["items"] == []
    assert get(client, "/autocomplete/2", 400)["status"] == 400


# --- find similar -----------------------------------------------------------------------------------------


def test_similar_by_region(env: Any, p3: Any) -> None:
    client, catalogue, manifests, fake = env
    mid = manifests[3]
    region = next(r for r in catalogue.regions(mid) if not is_noise(r["flags"]))
    doc = get(client, f"/similar/{region['id']}?k=5&size=2&class=Map,Photo&exclude=Blank&model=clip")
    p3(doc)
    call = fake.calls[-1]
    assert call["region_id"] == region["id"] and call["model"] == "clip" and call["k"] == 5
    assert call["classes"] == ["Map", "Photo"] and call["exclude_classes"] == ["Blank"]
    assert len(doc["items"]) == 2 and doc["next"]["type"] == "AnnotationPage"
    assert all(item["region"] != region["id"] for item in doc["items"])
    first = doc["items"][0]
    hit = catalogue.region(first["region"])
    assert first["target"]["source"]["id"] == hit["canvas_uri"]
    assert first["target"]["selector"]["value"] == f"xywh={hit['x']},{hit['y']},{hit['w']},{hit['h']}"
    # The newspaper's label is German in its manifest, and stays so (it became {"none": ...}).
    assert first["target"]["source"]["partOf"][0]["label"] == {"de": [hit["manifest_label"]]}
    assert first["thumbnail"][0]["id"].startswith("https://iiif.io/api/image/3.0/example/reference/")
    assert first["score"] >= doc["items"][1]["score"]
    second = get(client, doc["next"]["id"])
    p3(second)
    assert second["prev"]["id"] and second["items"][0]["region"] not in {i["region"] for i in doc["items"]}


def test_similar_collection_and_pages_have_distinct_ids(env: Any) -> None:
    # The first page had the collection's id: JSON-LD read them as one node, both collection and page.
    client, catalogue, manifests, _ = env
    region = next(r for r in catalogue.regions(manifests[3]) if not is_noise(r["flags"]))
    doc = get(client, f"/similar/{region['id']}?k=5&size=2")
    collection = doc["partOf"][0]
    assert doc["id"] != collection["id"] and "page=" not in collection["id"]
    assert doc["id"] == collection["first"]["id"]
    assert get(client, collection["first"]["id"])["id"] == doc["id"]
    second = get(client, doc["next"]["id"])
    assert second["prev"]["id"] == doc["id"] and second["partOf"][0]["id"] == collection["id"]
    assert get(client, collection["last"]["id"])["id"] == collection["last"]["id"]


def test_similar_errors(env: Any) -> None:
    client, _, _, fake = env
    assert get(client, "/similar/r-nope", 404)["error"]
    assert "needs text=" in get(client, "/similar", 400)["error"]
    assert get(client, "/similar?text=a%20map&k=100000", 400)["status"] == 400
    fake.fail = FileNotFoundError("vectors-siglip.faiss")
    try:
        assert "ivs embed" in get(client, "/similar?text=a%20map", 503)["error"]
    finally:
        fake.fail = None


def test_similar_manifest_filter_takes_the_augmented_manifest_id(env: Any) -> None:
    # A viewer knows the manifest by the id we serve it under; only our short id and the source id worked.
    client, catalogue, manifests, fake = env
    mid = manifests[2]
    region = next(r for r in catalogue.regions(manifests[3]) if not is_noise(r["flags"]))
    served = get(client, f"/iiif/{mid}/manifest")["@id"]
    get(client, f"/similar/{region['id']}?manifest={quote(served, safe='')}")
    assert fake.calls[-1]["manifest"] == mid
    assert get(client, f"/similar/{region['id']}?manifest={quote(BASE + '/iiif/nothing/manifest', safe='')}",
               404)["status"] == 404


def test_similar_by_text_and_vector(env: Any, p3: Any) -> None:
    client, _, _, fake = env
    p3(get(client, "/similar?text=a%20harbour%20map&k=3"))
    assert fake.calls[-1]["text"] == "a harbour map"
    response = client.post("/similar?k=4", json={"vector": [0.0, 3.0, 4.0]})
    assert response.status_code == 200, response.text
    p3(response.json())
    assert list(fake.calls[-1]["vector"]) == pytest.approx([0.0, 0.6, 0.8])
    assert client.post("/similar", json={"vector": [0, 0]}).status_code == 422
    assert client.post("/similar", json={"vector": ["x"]}).status_code == 422
    assert client.post("/similar", json={"nothing": 1}).status_code == 422
    assert client.post("/similar", content=b"{", headers={"content-type": "application/json"}).status_code == 400
    deep = b"[" * 100_000 + b"]" * 100_000  # was a 500 (RecursionError in the JSON parser)
    assert client.post("/similar", content=deep, headers={"content-type": "application/json"}).status_code == 400
    assert client.post("/similar", content=b"x", headers={"content-type": "text/plain"}).status_code == 415


def test_similar_model_without_text_tower_is_client_error(env: Any) -> None:
    # Was a 500 with no CORS header: EmbedderUnavailable (fingerprint or vit asked for text) fell through.
    from iiif_visual_search.embed.models import EmbedderUnavailable

    client, catalogue, manifests, fake = env
    region = next(r["id"] for r in catalogue.regions(manifests[3]) if not is_noise(r["flags"]))
    fake.fail = EmbedderUnavailable("fingerprint is an image-only descriptor: text search needs siglip or clip")
    try:
        assert "image-only" in get(client, "/similar?text=a%20map&model=fingerprint", 422)["error"]
        assert client.post("/similar?model=fingerprint", json={"text": "a map"}).status_code == 422
        assert get(client, f"/similar/{region}?model=siglip", 503)["status"] == 503
    finally:
        fake.fail = None


def test_similar_unknown_model_and_missing_vector_errors(env: Any) -> None:
    # An unknown model answered 503 "not indexed yet" with the server's data directory in the message, and
    # a missing vector answered not found: "..." with the KeyError's quotes.
    client, catalogue, manifests, fake = env
    region = next(r for r in catalogue.regions(manifests[3]) if not is_noise(r["flags"]))
    fake.fail = FileNotFoundError("no vectors at /srv/ivs-data/vectors/bogus-1234: run 'ivs embed' first")
    try:
        bogus = get(client, f"/similar/{region['id']}?model=../../etc", 400)
        assert "unknown model '../../etc'" in bogus["error"] and "/vectors" not in bogus["error"]
        siglip = get(client, f"/similar/{region['id']}?model=siglip", 503)
        assert "ivs embed" in siglip["error"] and "/vectors" not in siglip["error"]
        fake.fail = KeyError(f"no clip vector for 1 region(s), e.g. ['{region['id']}']: run 'ivs embed'")
        missing = get(client, f"/similar/{region['id']}?model=clip", 404)
        assert missing["error"].startswith("not found: no clip vector")
    finally:
        fake.fail = None


def test_unexpected_error_is_json_500_with_cors(env: Any) -> None:
    # Starlette's last-resort handler sits outside the CORS middleware: its 500 carried no CORS header.
    client, _, _, fake = env
    fake.fail = RuntimeError("boom")
    try:
        with TestClient(client.app, raise_server_exceptions=False) as raw:
            response = raw.get("/similar?text=a%20map")
    finally:
        fake.fail = None
    assert response.status_code == 500
    assert response.headers["access-control-allow-origin"] == "*"
    assert response.json() == {"error": "internal error (RuntimeError); see the server log", "status": 500}
    assert "boom" not in response.text


def test_similar_canvas_box_on_a_canvas_ingested_from_disk(tmp_path: Path) -> None:
    # A manifest read from disk (the local sample) has file: page images; a canvas box on it answered 422
    # "missing an 'http://' or 'https://' protocol" while the search page showed the same image.
    import asyncio

    from iiif_visual_search.config import Settings
    from iiif_visual_search.ingest import ingest
    from iiif_visual_search.local_sample import shared_books, write_sample

    books = [b for b in shared_books(SHARED_DATA) if b.slug.startswith("dta-")][:1]
    if not books:
        pytest.skip(f"no DTA page scans under {SHARED_DATA}")
    collection = write_sample(SHARED_DATA, tmp_path / "sample", books)
    settings = Settings(data_dir=tmp_path / "data", base_url=BASE)
    with Catalogue(settings.catalogue_path) as catalogue:
        asyncio.run(ingest([str(collection)], catalogue, settings))
        canvas = catalogue.canvases(catalogue.manifests()[0]["id"])[0]
    assert canvas["image_url"].startswith("file:")
    fake = FakeSimilar()
    with TestClient(create_app(settings, ServeOptions(), similar_backend=fake)) as client:
        response = client.post("/similar", json={"canvas": canvas["uri"], "xywh": [10, 20, 300, 200]})
        assert response.status_code == 200, response.text
        with Image.open(books[0].pages[0].image) as page:
            sx, sy = page.width / canvas["width"], page.height / canvas["height"]
        assert fake.calls[-1]["image"].size == pytest.approx((300 * sx, 200 * sy), abs=2)
        assert client.get("/similar", params={"canvas": canvas["uri"], "xywh": "10,20,300,200"}).status_code == 200
        # ... while a file: URL from the client is still refused
        assert client.post("/similar", json={"image_url": canvas["image_url"]}).status_code == 422
        # The canvas's image failing is the image server's fault, not the client's: 502 (was 422).
        with Catalogue(settings.catalogue_path) as catalogue:
            catalogue.conn.execute("UPDATE canvas SET image_url=? WHERE id=?",
                                   (f"file://{tmp_path}/gone.jpg", canvas["id"]))
        gone = client.post("/similar", json={"canvas": canvas["uri"], "xywh": "10,20,300,200"})
        assert gone.status_code == 502 and str(tmp_path) not in gone.text


def test_similar_upload_real_crop(env: Any, p3: Any) -> None:
    client, _, _, fake = env
    crop = SHARED_DATA / "bnf-lacroix-alto-crops" / "expected_crops" / "220169-2-1.jpg"
    if not crop.is_file():
        pytest.skip(f"{crop} absent")
    data = crop.read_bytes()
    if len(data) > 2_000_000:
        pytest.skip("crop larger than the test body limit")
    response = client.post("/similar", files={"image": ("crop.jpg", data, "image/jpeg")})
    assert response.status_code == 200, response.text
    p3(response.json())
    with Image.open(crop) as original:
        assert fake.calls[-1]["image"].size == original.size


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares a huge size: refused from the header, before any pixel is decoded."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + \
        chunk(b"IEND", b"")


def test_upload_limits(env: Any) -> None:
    client, _, _, _ = env
    bomb = client.post("/similar", files={"image": ("bomb.png", _png_header_only(60000, 60000), "image/png")})
    assert bomb.status_code == 413 and "pixels" in bomb.json()["error"]
    big = client.post("/similar", files={"image": ("big.jpg", b"\xff" * 2_100_000, "image/jpeg")})
    assert big.status_code == 413
    text = client.post("/similar", files={"image": ("a.txt", b"hello", "text/plain")})
    assert text.status_code == 415
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, "PDF")
    assert client.post("/similar", files={"image": ("x.pdf", buf.getvalue(), "application/pdf")}).status_code == 415


@pytest.mark.parametrize("url", [
    "http://127.0.0.1/x.jpg", "http://localhost:8000/x.jpg", "http://[::1]/x.jpg", "http://10.1.2.3/x.jpg",
    "http://169.254.169.254/latest/meta-data", "file:///etc/passwd", "ftp://example.org/x.jpg",
    "gopher://127.0.0.1:70/", "http://user:pw@example.org/x.jpg",
])
def test_image_url_refuses_ssrf(env: Any, url: str) -> None:
    client, _, _, fake = env
    before = len(fake.calls)
    response = client.post("/similar", json={"image_url": url})
    assert response.status_code == 422, response.text
    assert len(fake.calls) == before
    assert client.get("/similar", params={"image_url": url}).status_code == 422


def test_canvas_box_errors(env: Any) -> None:
    client, catalogue, manifests, _ = env
    canvas = catalogue.canvases(manifests[3])[0]
    assert client.post("/similar", json={"canvas": "https://nowhere/c1", "xywh": "0,0,1,1"}).status_code == 404
    outside = client.post("/similar", json={"canvas": canvas["uri"], "xywh": "99999,99999,5,5"})
    assert outside.status_code == 422 and "outside" in outside.json()["error"]
    assert client.post("/similar", json={"canvas": canvas["uri"], "xywh": "a,b"}).status_code == 400
    # int(round(inf)) raised OverflowError: a 500
    for xywh in ("inf,0,10,10", "0,0,nan,10", "1e400,0,10,10", "0,0,10,-inf"):
        answer = client.post("/similar", json={"canvas": canvas["uri"], "xywh": xywh})
        assert answer.status_code == 400 and "xywh" in answer.json()["error"], xywh
        assert client.get("/similar", params={"canvas": canvas["uri"], "xywh": xywh}).status_code == 400


# --- harvest, discovery, collection, service --------------------------------------------------------------


def test_annotation_collection_harvest(env: Any, p3: Any) -> None:
    client, catalogue, _, _ = env
    collection = get(client, "/annotations")
    p3(collection)
    total = len(catalogue.regions())
    assert collection["total"] == total
    url: str | None = collection["first"]["id"]
    seen: list[str] = []
    while url:
        page = get(client, url)
        p3(page)
        assert page["partOf"][0]["id"] == collection["id"]
        seen += [item["id"] for item in page["items"]]
        url = page.get("next", {}).get("id")
    assert len(seen) == len(set(seen)) == total
    assert page["id"] == collection["last"]["id"]
    get(client, "/annotations/page/9999", 404)


def test_activity_stream(env: Any) -> None:
    client, catalogue, manifests, _ = env
    response = client.get("/activity")
    assert "discovery/1/context.json" in response.headers["content-type"]
    doc = response.json()
    assert doc["type"] == "OrderedCollection" and doc["totalItems"] > 0
    last = get(client, doc["last"]["id"])
    assert last["type"] == "OrderedCollectionPage" and last["partOf"]["id"] == doc["id"]
    first = get(client, doc["first"]["id"])
    created = [a for a in first["orderedItems"] if a["object"]["type"] == "Manifest"]
    assert created[0]["type"] == "Create" and created[0]["object"]["id"].endswith("/manifest")
    times = [a["endTime"] for a in first["orderedItems"]]
    assert times == sorted(times) and all(re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", t) for t in times)
    regions = [a for a in first["orderedItems"] if a["object"]["type"] == "Annotation"]
    assert regions and get(client, regions[0]["object"]["id"])["type"] == "Annotation"


def test_collection_points_at_augmented_manifests(env: Any, p3: Any) -> None:
    client, _, manifests, _ = env
    doc = get(client, "/collection")
    p3(doc)
    assert {item["id"] for item in doc["items"]} == {f"{BASE}/iiif/{m}/manifest" for m in manifests.values()}
    for item in doc["items"]:
        get(client, item["id"])


def test_openapi_describes_what_the_server_does(env: Any) -> None:
    # It left out the POST {"text"} body, offered page/size on POST (one unpaged answer) and capped size at 200
    # while the server takes 500.
    client, catalogue, manifests, fake = env
    spec = get(client, "/openapi.json")
    post = spec["paths"]["/similar"]["post"]
    bodies = post["requestBody"]["content"]["application/json"]["schema"]["oneOf"]
    assert ["text"] in [b["required"] for b in bodies]
    assert client.post("/similar?k=3", json={"text": "a map"}).status_code == 200
    assert fake.calls[-1]["text"] == "a map"
    assert not {"page", "size"} & {p["name"] for p in post["parameters"]}
    region = next(r for r in catalogue.regions(manifests[3]) if not is_noise(r["flags"]))
    for param in spec["paths"]["/similar/{region}"]["get"]["parameters"]:
        top = param["schema"].get("maximum")
        if top is not None:
            get(client, f"/similar/{region['id']}?{param['name']}={top}")
    for path in spec["paths"]:
        if "{" not in path:
            assert client.get(path).status_code != 404, path


def test_search_page_links_carry_the_base_url_path(env: Any) -> None:
    # Served as https://host/ivs behind a proxy, the search page linked /static/..., /annotations, / at the root.
    from iiif_visual_search.config import Settings

    _, catalogue, _, _ = env
    settings = Settings(data_dir=Path(catalogue.path).parent, base_url="https://pictures.example.org/ivs/")
    region = next(r for r in catalogue.regions() if not is_noise(r["flags"]))
    with TestClient(create_app(settings, ServeOptions(), similar_backend=FakeSimilar())) as client:
        for url in ("/?lang=en", f"/region/{region['id']}?lang=en"):  # the region page's language switch too
            page = client.get(url)
            assert page.status_code == 200, url
            links = re.findall(r'(?:href|src|action|hx-get)="(/[^"]*)"', page.text)
            assert links and all(x.startswith("/ivs/") for x in links), [x for x in links if not x.startswith("/ivs/")]


def test_health_openapi_errors_and_cors(env: Any) -> None:
    client, catalogue, _, _ = env
    health = get(client, "/health")
    assert health["status"] == "ok" and health["regions"] == len(catalogue.regions())
    spec = get(client, "/openapi.json")
    assert spec["openapi"].startswith("3.") and "/similar/{region}" in spec["paths"]
    assert get(client, "/iiif/nothing/manifest", 404) == {"error": "no manifest 'nothing' in the catalogue",
                                                         "status": 404}
    assert get(client, "/no/such/path", 404)["status"] == 404
    assert get(client, "/search/1?q=x&page=zero", 400)["error"].startswith("parameter page")
    # A 405 lost Starlette's Allow header in the JSON error handler.
    refused = client.delete("/similar")
    assert refused.status_code == 405 and set(refused.headers["allow"].split(", ")) >= {"GET", "POST"}
    assert set(client.post("/collection").headers["allow"].split(", ")) == {"GET", "HEAD"}
    preflight = client.options("/similar", headers={"Origin": "https://a.example",
                                                    "Access-Control-Request-Method": "POST"})
    assert preflight.status_code == 200 and preflight.headers["access-control-allow-origin"] == "*"


def test_page_image_and_upload_errors_are_json(env: Any) -> None:
    # They answered text/plain, unlike every other error of the service.
    client, _, _, _ = env
    for path in ("/page-image/nothing.jpg", "/search/uploads/" + "0" * 32 + ".jpg", "/search/uploads/x.jpg"):
        answer = get(client, path, 404)
        assert answer["status"] == 404 and answer["error"], path


def test_a_javascript_homepage_never_becomes_a_link(env: Any, tmp_path: Path) -> None:
    # Stored XSS: a manifest homepage of javascript:alert(document.domain) was a clickable link on /region/{id}
    # and on the result cards. The catalogue of an older version may still hold one: the pages check too.
    client, catalogue, manifests, _ = env
    mid = manifests[3]
    region = catalogue.regions(mid)[0]["id"]
    old = catalogue.query_one("SELECT homepage FROM manifest WHERE id=?", (mid,))["homepage"]
    catalogue.conn.execute("UPDATE manifest SET homepage=? WHERE id=?", ("javascript:alert(document.domain)", mid))
    try:
        settings = client.app.state.ivs.settings
        with TestClient(create_app(settings, client.app.state.ivs.options, similar_backend=FakeSimilar())) as fresh:
            for path in (f"/region/{region}", f"/?similar={region}", "/?q=a"):
                page = fresh.get(path)
                assert "javascript:" not in page.text, path
                policy = page.headers["content-security-policy"]
                assert "script-src 'self';" in policy and "unsafe-inline" not in policy, path
                assert page.headers["x-content-type-options"] == "nosniff" and page.headers["referrer-policy"]
    finally:
        catalogue.conn.execute("UPDATE manifest SET homepage=? WHERE id=?", (old, mid))
    from iiif_visual_search.sources.manifest import parse_bytes

    doc = {"@context": "http://iiif.io/api/presentation/3/context.json", "id": "https://x.example/m",
           "type": "Manifest", "label": {"en": ["m"]}, "items": [],
           "homepage": [{"id": "javascript:alert(1)", "type": "Text"}, {"id": "https://x.example/", "type": "Text"}]}
    assert parse_bytes(json.dumps(doc).encode(), url="https://x.example/m").homepage == "https://x.example/"


def test_similar_answers_carry_the_raw_parts_of_a_rank_consistent_score(env: Any, p3: Any) -> None:
    # Fingerprint hits are ranked by verified inliers: the answer showed the cosine (0.53, 0.70, 0.68 …).
    from iiif_visual_search.similar import Hit, rank_verified

    client, catalogue, manifests, fake = env
    ids = [r["id"] for r in catalogue.regions(manifests[3]) if not is_noise(r["flags"])][:4]
    ranked = rank_verified(list(zip(ids, [0.53, 0.70, 0.68, 0.9], [20, 8, 0, 2])), min_inliers=6)
    hits = [Hit(region=rid, manifest="m", canvas="c", x=0, y=0, w=1, h=1, score=s, inliers=n, cosine=c)
            for rid, s, c, n in ranked]
    original = fake.__class__.__call__
    try:
        fake.__class__.__call__ = lambda self, cat, settings, **kw: hits  # type: ignore[method-assign]
        doc = get(client, "/similar?text=woodcut&model=fingerprint&k=4")
    finally:
        fake.__class__.__call__ = original  # type: ignore[method-assign]
    p3(doc)
    scores = [item["score"] for item in doc["items"]]
    assert scores == sorted(scores, reverse=True)
    assert [(item["cosine"], item.get("inliers")) for item in doc["items"]] == \
        [(0.53, 20), (0.7, 8), (0.9, None), (0.68, None)]


def test_json_answers_take_numpy_numbers_and_stay_compact_utf8() -> None:
    """The service's JSON is written by orjson, which refuses numpy scalars by itself (a score straight from
    FAISS is a numpy float32); they are written as plain numbers, text stays UTF-8, not \\u escapes."""
    import numpy as np

    from iiif_visual_search.web.state import JsonLd

    body = JsonLd({"score": np.float32(0.5), "n": np.int64(3), "label": {"nb": ["Kart over Bjørgvin"]}, 7: "x"},
                  "application/ld+json").body
    assert body == '{"score":0.5,"n":3,"label":{"nb":["Kart over Bjørgvin"]},"7":"x"}'.encode()
    with pytest.raises(TypeError):
        JsonLd({"x": object()}, "application/json")
