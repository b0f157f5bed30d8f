"""The /viewer page: Mirador + the find-similar plugin, configured for this service."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from iiif_visual_search.web import viewer


def _settings(html: str) -> dict:
    match = re.search(r'<script id="ivs-viewer-settings" type="application/json">(.*?)</script>', html)
    assert match, "settings block missing from the page"
    return json.loads(match.group(1))


def test_page_configures_plugin_and_lists_region_motivations(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle.js"
    bundle.write_text("window.MiradorFindSimilar = {};")
    app = Starlette(routes=viewer.viewer_routes(base_url="http://svc.example/ivs/", models=["siglip", "fingerprint"],
                                                default_model="fingerprint", classes=["map"], bundle=bundle))
    client = TestClient(app)
    page = client.get("/viewer")
    assert page.status_code == 200
    assert f'src="viewer/{viewer.BUNDLE_NAME}"' in page.text
    settings = _settings(page.text)
    assert settings["endpoint"] == "http://svc.example/ivs"
    assert settings["model"] == "fingerprint" and settings["models"] == ["siglip", "fingerprint"]
    assert settings["classes"] == ["map"]
    # the service's region annotations are `commenting`, find-similar hits `highlighting`
    assert {"commenting", "highlighting"} <= set(settings["filteredMotivations"])
    script = client.get(f"/viewer/{viewer.BUNDLE_NAME}")
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")
    assert script.text == "window.MiradorFindSimilar = {};"
    # No inline script or style: the page runs under a CSP without 'unsafe-inline' for scripts.
    policy = page.headers["content-security-policy"]
    assert "script-src 'self';" in policy and "unsafe-eval" not in policy
    assert re.findall(r"<script(?![^>]*\bsrc=)(?![^>]*application/json)", page.text) == []
    assert "<style" not in page.text and " style=" not in page.text
    boot = client.get("/viewer/boot.js")
    assert boot.status_code == 200 and "ivs-viewer-settings" in boot.text
    assert client.get("/viewer/viewer.css").headers["content-type"].startswith("text/css")


def test_settings_cannot_close_the_script_element(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle.js"
    bundle.write_text("")
    app = Starlette(routes=viewer.viewer_routes(classes=["</script><b>x"], bundle=bundle))
    text = TestClient(app).get("/viewer").text
    assert "</script><b>" not in text
    assert _settings(text)["classes"] == ["</script><b>x"]


def test_missing_bundle_says_how_to_build_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(viewer, "find_bundle", lambda: None)
    app = Starlette(routes=viewer.viewer_routes(bundle=tmp_path / "absent.js"))
    client = TestClient(app)
    page = client.get("/viewer")
    assert page.status_code == 503
    assert "npm run build" in page.text
    assert client.get(f"/viewer/{viewer.BUNDLE_NAME}").status_code == 404
