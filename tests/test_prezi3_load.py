"""iiif-prezi3 (the IIIF community's Presentation 3 library, pydantic models) loads every v3 document the
service writes: augmented manifest, region AnnotationPage, find-similar AnnotationPage, the harvest
AnnotationCollection and its pages, and the Collection. Built over real manifests and ALTO."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.testclient import TestClient

from iiif_visual_search.catalogue import Catalogue
from iiif_visual_search.web.app import create_app
from iiif_visual_search.web.options import ServeOptions
from test_iiif_data import BASE, build_catalogue
from test_web_app import FakeSimilar

prezi3 = pytest.importorskip("iiif_prezi3")


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Any:
    settings = build_catalogue(tmp_path_factory.mktemp("prezi3"))
    app = create_app(settings, ServeOptions(harvest_page_size=10), similar_backend=FakeSimilar())
    catalogue = Catalogue(settings.catalogue_path)
    with TestClient(app) as c:
        yield c, catalogue
    catalogue.close()


def _get(client: TestClient, url: str) -> dict[str, Any]:
    response = client.get(url[len(BASE):] if url.startswith(BASE) else url)
    assert response.status_code == 200, (url, response.text[:300])
    return response.json()


def _load(cls: type, doc: dict[str, Any]) -> Any:
    """Load as iiif-prezi3 does for a document read from the web, and check nothing was lost on the way."""
    obj = cls(**doc)
    assert obj.id == doc["id"]
    out = obj.jsonld_dict() if hasattr(obj, "jsonld_dict") else obj.dict()
    assert out["type"] == doc["type"]
    return obj, out


def test_augmented_v3_manifest_and_its_region_pages_load(client) -> None:
    c, catalogue = client
    v3 = [m for m in catalogue.manifests() if m["version"] >= 3]
    assert v3, "the real test data holds a v3 manifest"
    checked = 0
    for m in v3:
        doc = _get(c, f"/iiif/{m['id']}/manifest")
        manifest, out = _load(prezi3.Manifest, doc)
        assert len(manifest.items) == len(doc["items"])
        # The search services and every canvas's link to its regions survive the round trip.
        assert {s["type"] for s in out["service"]} >= {"SearchService1", "SearchService2"}
        for canvas in doc["items"]:
            for ref in canvas.get("annotations", []):
                if not ref["id"].startswith(BASE):
                    continue  # the source manifest's own annotation pages, kept as they were
                page_doc = _get(c, ref["id"])
                page, page_out = _load(prezi3.AnnotationPage, page_doc)
                assert len(page_out.get("items", [])) == len(page_doc.get("items", []))
                for item in page_doc.get("items", []):
                    prezi3.Annotation(**item)
                checked += 1
    assert checked > 0


def test_find_similar_page_loads(client) -> None:
    c, catalogue = client
    region = catalogue.query_one("SELECT id FROM region WHERE deleted=0 AND flags='' LIMIT 1")["id"]
    doc = _get(c, f"/similar/{region}?k=5")
    page, out = _load(prezi3.AnnotationPage, doc)
    assert 0 < len(out["items"]) == len(doc["items"])
    for item in doc["items"]:
        prezi3.Annotation(**item)


def test_annotation_collection_and_pages_load(client) -> None:
    c, _ = client
    doc = _get(c, "/annotations")
    _load(prezi3.AnnotationCollection, doc)
    first = _get(c, doc["first"]["id"] if isinstance(doc["first"], dict) else doc["first"])
    _, out = _load(prezi3.AnnotationPage, first)
    assert len(out["items"]) == len(first["items"]) > 0


def test_collection_loads(client) -> None:
    c, catalogue = client
    doc = _get(c, "/collection")
    collection, out = _load(prezi3.Collection, doc)
    assert len(out["items"]) == len(doc["items"]) == len(catalogue.manifests())
