"""The offline demo, opened in a browser: ``/viewer`` shows the pages (they were grey: ``file:`` page images).

``ivs demo`` without a network builds the local sample from ``../shared/data``, runs the pipeline and serves
it; Mirador at ``/viewer`` must then draw a page image that came over http from the service, with every
non-loopback request blocked and no ``file:`` URL asked for.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from urllib.parse import urlparse

import pytest

from datapaths import SHARED_DATA
from live import free_port, launch_chromium, require_browser, running_ivs
from sample_catalogue import IVS, REPO

pytestmark = pytest.mark.browser

SHOTS = REPO / "test-output" / "demo-viewer"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    require_browser()
    if not (SHARED_DATA / "gallicorpora-incunabula").is_dir():
        pytest.skip(f"needs the shared test data at {SHARED_DATA}")
    from iiif_visual_search.web.viewer import find_bundle

    if find_bundle() is None:
        pytest.skip("the viewer bundle is not built (pip install builds it with npm; or npm run build in "
                    "viewer-plugin/)")
    tmp = tmp_path_factory.mktemp("demo")
    # What "no network" looks like to the demo: its collection's manifests cannot be reached.
    collection = tmp / "collection.json"
    collection.write_text(json.dumps({
        "@context": "http://iiif.io/api/presentation/3/context.json", "id": "https://example.org/demo.json",
        "type": "Collection", "label": {"en": ["demo"]},
        "items": [{"id": "http://127.0.0.1:9/unreachable/manifest.json", "type": "Manifest"}]}))
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "IVS_DATA_DIR": str(tmp / "data")}
    base = f"http://127.0.0.1:{port}"
    with running_ivs([*IVS, "demo", "-q", "--model", "fingerprint", "--source", str(collection),
                      "--shared-data", str(SHARED_DATA), "--port", str(port)],
                     base=base, log_path=tmp / "demo.log", env=env, timeout_s=600, poll_s=0.5):
        yield base


def test_demo_viewer_shows_page_images_offline(demo: str) -> None:
    from playwright.sync_api import sync_playwright

    requested: list[str] = []
    blocked: list[str] = []

    def only_loopback(route) -> None:  # noqa: ANN001
        url = route.request.url
        if urlparse(url).hostname in ("127.0.0.1", "localhost") or url.startswith("data:"):
            route.continue_()
        else:
            blocked.append(url)
            route.abort()

    with sync_playwright() as pw:
        browser = launch_chromium(pw)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.route("**/*", only_loopback)
            page.on("request", lambda r: requested.append(r.url))
            with page.expect_response(lambda r: "/image/3/" in r.url and r.url.endswith("/default.jpg")
                                      and r.status == 200, timeout=60_000) as tile:
                page.goto(demo + "/viewer")
            assert tile.value.headers["content-type"] == "image/jpeg"
            # Mirador's OpenSeadragon canvas is drawn with that image: some pixels are not the grey background.
            page.wait_for_function("""() => {
                const c = document.querySelector('.openseadragon-canvas canvas');
                if (!c || !c.width) return false;
                const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                const seen = new Set();
                for (let i = 0; i < d.length; i += 4 * 97) seen.add(d[i] >> 4 << 8 | d[i + 1] >> 4 << 4 | d[i + 2] >> 4);
                return seen.size > 8;
            }""", timeout=30_000)
            SHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SHOTS / "viewer.png"))
        finally:
            browser.close()
    assert not [u for u in requested if u.startswith("file:")]
    assert not blocked, blocked[:5]
