"""Blank pages and segmentation errors stay out of search and find-similar unless asked for."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from iiif_visual_search.catalogue import Catalogue
from iiif_visual_search.config import load_settings
from iiif_visual_search.web.app import create_app
from iiif_visual_search.web.options import ServeOptions
from test_web_app import FakeSimilar
from test_iiif_data import build_catalogue


def test_find_similar_leaves_out_hidden_classes_unless_asked(tmp_path: Path) -> None:
    settings = build_catalogue(tmp_path)
    fake = FakeSimilar()
    client = TestClient(create_app(settings, ServeOptions(), similar_backend=fake))
    rid = client.app.state.ivs.catalogue.query_one("SELECT id FROM region WHERE deleted=0 LIMIT 1")["id"]
    assert client.get(f"/similar/{rid}").status_code == 200
    assert fake.calls[-1]["exclude_classes"] == ["Blank page", "Segmentation anomaly"]
    client.get(f"/similar/{rid}?exclude=")
    assert fake.calls[-1]["exclude_classes"] is None
    client.get(f"/similar/{rid}?exclude=Map")
    assert fake.calls[-1]["exclude_classes"] == ["Map"]


def test_content_search_leaves_out_regions_of_hidden_classes(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    settings = build_catalogue(tmp_path)
    # Sync the text index with the catalogue on every request (the service waits a little between syncs).
    options = ServeOptions(index_sync_interval_s=0)
    client = TestClient(create_app(settings, options, similar_backend=FakeSimilar()))
    with Catalogue(settings.catalogue_path) as catalogue:
        row = catalogue.query_one(
            "SELECT id, context_after FROM region WHERE deleted=0 AND flags='' AND LENGTH(context_after) > 40 "
            "ORDER BY id LIMIT 1")
    word = max(row["context_after"].split(), key=len).strip(".,;:!?()\"'")

    before = client.get("/search/2", params={"q": word}).json()
    assert any(row["id"] in item["id"] for item in before["items"]), "the region is found while unlabelled"
    with Catalogue(settings.catalogue_path) as catalogue:
        catalogue.set_labels([(row["id"], "Blank page", 0.9)], "model", "test")
    after = client.get("/search/2", params={"q": word}).json()
    assert not any(row["id"] in item["id"] for item in after["items"])
    # Configured to hide nothing: the blank page is searchable again.
    monkeypatch.setenv("IVS_HIDDEN_CLASSES", "")
    again = TestClient(create_app(load_settings(data_dir=settings.data_dir, base_url=settings.base_url),
                                  options, similar_backend=FakeSimilar()))
    found = again.get("/search/2", params={"q": word}).json()
    assert any(row["id"] in item["id"] for item in found["items"])
