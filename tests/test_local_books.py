"""Books ingested from local files are published entirely over http: page images through our IIIF Image API
level-1 service, canvas ids and every other link as http URLs; no ``file:`` URL in anything we serve."""

from __future__ import annotations

import asyncio
import io
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from starlette.testclient import TestClient

from datapaths import shared
from iiif_visual_search.catalogue import Catalogue
from iiif_visual_search.config import Settings
from iiif_visual_search.ingest import ingest
from iiif_visual_search.local_sample import shared_books, write_sample
from iiif_visual_search.web.app import create_app
from iiif_visual_search.web.options import ServeOptions
from test_web_app import FakeSimilar

BASE = "http://ivs.test"


def _v2_book(folder: Path, shared_data: Path) -> Path:
    """A user's own v2 manifest beside its scan and PAGE file, naming both (and its canvas) by relative paths."""
    page = next(p for b in shared_books(shared_data) if b.slug.startswith("dta-") for p in b.pages)
    folder.mkdir(parents=True)
    shutil.copy(page.image, folder / "scan.png")
    shutil.copy(page.layout, folder / "scan.xml")
    with Image.open(page.image) as image:
        width, height = image.size
    doc = {
        "@context": "http://iiif.io/api/presentation/2/context.json", "@id": "my-book.json",
        "@type": "sc:Manifest", "label": "My own scans",
        "sequences": [{"@type": "sc:Sequence", "canvases": [{
            "@id": "canvas/1", "@type": "sc:Canvas", "label": "1", "width": width, "height": height,
            "seeAlso": {"@id": "scan.xml", "format": "application/xml",
                        "profile": "http://schema.primaresearch.org/PAGE/gts/pagecontent/2019-07-15"},
            "images": [{"@type": "oa:Annotation", "motivation": "sc:painting", "on": "canvas/1",
                        "resource": {"@id": "scan.png", "@type": "dctypes:Image", "format": "image/png",
                                     "width": width, "height": height}}],
        }]}],
    }
    path = folder / "my-book.json"
    path.write_text(json.dumps(doc))
    return path


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Any:
    shared_data = shared()
    tmp = tmp_path_factory.mktemp("local-books")
    books = [b for b in shared_books(shared_data) if b.slug.startswith(("dta-", "incunabula-"))]
    books = [next(b for b in books if b.slug.startswith("dta-")), next(b for b in books if b.slug.startswith("inc"))]
    collection = write_sample(shared_data, tmp / "sample", books)
    v2 = _v2_book(tmp / "mine", shared_data)
    settings = Settings(data_dir=tmp / "data", base_url=BASE)
    with Catalogue(settings.catalogue_path) as catalogue:
        report = asyncio.run(ingest([str(collection), str(v2)], catalogue, settings))
        assert not report.failures, report.failures
    fake = FakeSimilar()
    with TestClient(create_app(settings, ServeOptions(), similar_backend=fake), base_url=BASE) as client:
        yield client, settings, tmp


def _get(client: TestClient, url: str) -> Any:
    response = client.get(url[len(BASE):] if url.startswith(BASE) else url)
    assert response.status_code == 200, (url, response.status_code, response.text[:300])
    return response


def _no_local(text: str, tmp: Path) -> None:
    assert "file:" not in text
    assert str(tmp) not in text


def _manifests(client: TestClient) -> list[dict[str, Any]]:
    return [_get(client, m["id"]).json() for m in _get(client, "/collection").json()["items"]]


def test_nothing_served_names_a_local_file(served: Any) -> None:
    client, _, tmp = served
    answers = [_get(client, "/collection").text]
    regions: list[str] = []
    for doc in _manifests(client):
        answers.append(json.dumps(doc))
        canvases = doc.get("items") or doc["sequences"][0]["canvases"]
        for canvas in canvases:
            for link in canvas.get("annotations", []) + canvas.get("otherContent", []):
                page = _get(client, link.get("id") or link["@id"]).json()
                answers.append(json.dumps(page))
                regions += [i["id"].rsplit("/", 1)[-1] for i in page.get("items", [])]
                answers.append(_get(client, (link.get("id") or link["@id"]) + "&version=2"
                                    if "?" in (link.get("id") or link["@id"]) else
                                    (link.get("id") or link["@id"]) + "?version=2").text)
    assert regions, "the sample pages have pictures"
    answers.append(_get(client, "/annotations/page/1").text)
    answers.append(_get(client, f"/similar/{regions[0]}").text)
    for path in ("/search/1?q=der", "/search/2?q=der", "/?q=der", f"/region/{regions[0]}"):
        answers.append(_get(client, path).text)
    for text in answers:
        _no_local(text, tmp)


def test_page_images_come_from_a_level1_image_service(served: Any, p3: Any) -> None:
    client, _, _ = served
    docs = _manifests(client)
    v3 = next(d for d in docs if "items" in d)
    p3(v3)
    body = v3["items"][0]["items"][0]["items"][0]["body"]
    service = body["service"][0]
    assert service["type"] == "ImageService3" and service["profile"] == "level1"
    info = _get(client, service["id"] + "/info.json").json()
    assert info["id"] == service["id"] and info["profile"] == "level1"
    assert (info["width"], info["height"]) == (body["width"], body["height"])
    assert info["sizes"][-1] == {"width": info["width"], "height": info["height"]} and len(info["sizes"]) > 1
    image = Image.open(io.BytesIO(_get(client, body["id"]).content))
    assert image.size == (body["width"], body["height"])
    crop = Image.open(io.BytesIO(_get(client, service["id"] + "/10,20,300,200/150,/0/default.jpg").content))
    assert crop.size == (150, 100)
    tile = _get(client, service["id"] + "/0,0,512,512/!100,100/0/default.png")
    assert tile.headers["content-type"] == "image/png" and Image.open(io.BytesIO(tile.content)).size == (100, 100)
    assert client.get(service["id"][len(BASE):] + "/full/max/90/default.jpg").status_code == 400
    # The user's v2 manifest with relative paths: a v2 service, and the canvas id is ours now
    v2 = next(d for d in docs if "sequences" in d)
    canvas = v2["sequences"][0]["canvases"][0]
    resource = canvas["images"][0]["resource"]
    assert resource["service"]["profile"] == "http://iiif.io/api/image/2/level1.json"
    assert canvas["images"][0]["on"] == canvas["@id"] and canvas["@id"].startswith(BASE)
    assert _get(client, resource["service"]["@id"] + "/info.json").json()["@id"] == resource["service"]["@id"]
    assert Image.open(io.BytesIO(_get(client, resource["@id"]).content)).size == (canvas["width"], canvas["height"])


def test_published_canvas_ids_work_for_find_similar_and_annotations(served: Any) -> None:
    client, _, _ = served
    for doc in _manifests(client):
        canvases = doc.get("items") or doc["sequences"][0]["canvases"]
        canvas = canvases[0]
        cid = canvas.get("id") or canvas["@id"]
        for link in canvas.get("annotations", []) + canvas.get("otherContent", []):
            page = _get(client, (link.get("id") or link["@id"]).split("?")[0] + "?version=3").json()
            assert {i["target"]["source"]["id"] for i in page["items"]} <= {cid}
        response = client.post("/similar", json={"canvas": cid, "xywh": "10,10,100,100"})
        assert response.status_code == 200, response.text


def test_only_local_books_have_their_files_served(served: Any) -> None:
    # A manifest read over http never makes the image service read a local file, whatever it names.
    client, settings, _ = served
    with Catalogue(settings.catalogue_path) as catalogue:
        row = catalogue.query_one("SELECT c.id, m.id AS mid, m.url FROM canvas c JOIN manifest m "
                                  "ON m.id = c.manifest_id WHERE c.image_url LIKE 'file:%' LIMIT 1")
        assert client.get(f"/image/3/{row['id']}/info.json").status_code == 200
        catalogue.conn.execute("UPDATE manifest SET url=? WHERE id=?", ("https://example.org/m.json", row["mid"]))
        try:
            assert client.get(f"/image/3/{row['id']}/info.json").status_code == 404
            assert client.get(f"/image/3/{row['id']}/full/max/0/default.jpg").status_code == 404
            assert client.get(f"/page-image/{row['id']}.jpg").status_code >= 400
        finally:
            catalogue.conn.execute("UPDATE manifest SET url=? WHERE id=?", (row["url"], row["mid"]))
        assert client.get(f"/page-image/{row['id']}.jpg").status_code == 200


def test_relative_image_paths_of_a_local_manifest_are_its_folder(served: Any) -> None:
    client, settings, tmp = served
    with Catalogue(settings.catalogue_path) as catalogue:
        row = catalogue.query_one("SELECT c.id, c.image_url FROM canvas c JOIN manifest m ON m.id = c.manifest_id "
                                  "WHERE m.label='My own scans'")
    assert row["image_url"] == str(tmp / "mine" / "scan.png")
    assert Image.open(io.BytesIO(_get(client, f"/page-image/{row['id']}.jpg").content)).width <= 800
