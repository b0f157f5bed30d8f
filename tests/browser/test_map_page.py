"""The map page (``/map``) in a real Chromium (software WebGL) against a live ``ivs serve`` on loopback.

Data: the Gallicorpora incunabula through the real pipeline (``sample_catalogue.build``, fingerprint only),
then ``ivs map``. Checks that the map draws its thumbnails, that hovering names book and page, that a click
leads to the region's page, that it works from the keyboard and in Bokmål, with no console error, no
Content-Security-Policy violation and no serious axe-core finding. Screenshots go to ``test-output/map-page/``.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

import test_search_page as sp
from datapaths import SHARED_DATA
from live import free_port, launch_chromium, require_browser, running_ivs
from sample_catalogue import IVS, REPO, SampleCatalogue, build, ivs

pytestmark = pytest.mark.browser

SHOTS = REPO / "test-output" / "map-page"
BACKGROUND = (0x2B, 0x28, 0x24)  # the map's clear colour (map-page/src/render.js)


@pytest.fixture(scope="module")
def mapped(tmp_path_factory: pytest.TempPathFactory) -> SampleCatalogue:
    from iiif_visual_search.web.atlas import find_bundle

    require_browser()
    pytest.importorskip("openTSNE", reason="needs the map extra (pip install '.[map]')")
    if find_bundle() is None:
        pytest.skip("the map page's script is not built (cd map-page && npm ci && npm run build)")
    if not (SHARED_DATA / "gallicorpora-incunabula").is_dir():
        pytest.skip(f"needs the shared test data at {SHARED_DATA}/gallicorpora-incunabula")
    sample = build(SHARED_DATA, tmp_path_factory.mktemp("map"))
    ivs(sample.data_dir, "map", "--model", "fingerprint", "--min-cluster-size", "2")
    return sample


@pytest.fixture(scope="module")
def server(mapped: SampleCatalogue) -> Iterator[str]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with running_ivs([*IVS, "--data-dir", str(mapped.data_dir), "serve", "--host", "127.0.0.1", "--port", str(port)],
                     base=base, log_path=mapped.data_dir.parent / "serve.log"):
        yield base


@pytest.fixture(scope="module")
def browser(mapped: SampleCatalogue) -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = launch_chromium(pw)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, server: str) -> Iterator[object]:  # noqa: ANN001
    context = browser.new_context(base_url=server, viewport={"width": 1280, "height": 900}, locale="en-GB")
    context.add_init_script(sp.CSP_WATCH)
    context.route(re.compile(r"^(?!https?://127\.0\.0\.1[:/]).*"), lambda route: route.abort())  # loopback only
    errors: list[str] = []
    pg = context.new_page()
    pg.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    pg.on("pageerror", lambda exc: errors.append(f"uncaught: {exc}"))
    pg.set_default_timeout(sp.TIMEOUT_MS)
    yield pg
    seen = errors + (sp.csp_violations(pg) if not pg.is_closed() else [])
    context.close()
    assert not seen, f"console errors or CSP violations: {seen}"


def open_map(pg, query: str = "model=fingerprint") -> None:  # noqa: ANN001
    pg.goto(f"/map?{query}")
    pg.wait_for_function("window.ivsMap && window.ivsMap.ready.then(m => m.sheetsLoaded() === m.sheets())")
    pg.evaluate("window.ivsMap.ready.then(m => m.drawNow())")


def shot(pg, name: str) -> Path:  # noqa: ANN001
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    pg.screenshot(path=str(path))
    return path


def test_the_map_draws_the_thumbnails_and_a_click_opens_the_region(page) -> None:  # noqa: ANN001
    open_map(page)
    ids = page.evaluate("window.ivsMap.ready.then(m => m.ids())")
    assert len(ids) == page.evaluate("window.ivsMap.ready.then(m => m.count())") > 1
    pixels = Image.open(io.BytesIO(page.locator("#map").screenshot())).convert("RGB")
    colours = pixels.getcolors(maxcolors=1 << 20) or []
    drawn = sum(n for n, c in colours if max(abs(a - b) for a, b in zip(c, BACKGROUND)) > 24)
    assert drawn > 0.02 * pixels.width * pixels.height, "thumbnails cover part of the map"
    assert len(colours) > 500, "pictures, not flat placeholder colours"
    # The first picture the filters show (the one labelled "Blank page" is hidden by default).
    first = page.evaluate("window.ivsMap.ready.then(m => m.shown()[0])")
    x, y = page.evaluate(f"window.ivsMap.ready.then(m => m.clientPoint({first}))")
    page.mouse.move(x, y)
    tip = page.locator(".map-tip")
    tip.wait_for(state="visible")
    assert "Incunable" in tip.inner_text() and "page 1" in tip.inner_text()
    shot(page, "map")
    sp.axe_check(page, "map")
    page.mouse.click(x, y)
    link = page.locator("#map-info a.map-region")
    link.wait_for()
    assert link.get_attribute("href").startswith(f"/region/{ids[first]}")
    assert page.locator("#map-info a.map-similar").get_attribute("href").find(f"similar={ids[first]}") > 0
    link.click()
    page.wait_for_url(re.compile(rf"/region/{ids[first]}"))
    assert page.locator("h1").inner_text()


def test_keyboard_filters_and_bokmal(page) -> None:  # noqa: ANN001
    open_map(page, "model=fingerprint&lang=nb")
    status = page.locator("#map-status")
    total = int(re.search(r"av (\d+) bilder vises", status.inner_text()).group(1))
    page.focus("#map")
    page.keyboard.press("n")
    page.locator("#map-info a.map-region").wait_for()
    chosen = page.get_attribute("#map-info", "data-region")
    page.keyboard.press("n")
    assert page.get_attribute("#map-info", "data-region") != chosen
    page.keyboard.press("p")
    assert page.get_attribute("#map-info", "data-region") == chosen
    assert page.locator("#map-info").inner_text().count("Bilder som ligner på dette") == 1
    page.keyboard.press("+")
    page.keyboard.press("ArrowLeft")
    shot(page, "map-nb-keyboard")
    sp.axe_check(page, "map-nb")
    # Filters: leaving out the unclassified pictures leaves only the few labelled ones.
    page.uncheck(".map-classes input[value='']")
    shown = int(re.search(r"(\d+) av", status.inner_text()).group(1))
    assert 0 < shown < total
    page.locator("#map-clusters button").first.click()
    assert page.locator("#map-clusters button").first.get_attribute("aria-pressed") == "true"
    page.check(".map-classes input[value='']")  # all of them again: the few labelled ones may be in no cluster
    assert f"{total - 1} av {total}" in status.inner_text() or f"{total} av {total}" in status.inner_text()
    page.focus("#map")
    page.keyboard.press("0")
    assert page.locator(".map-label").count() == 0, "close in, thumbnails speak for themselves"
    for _ in range(3):
        page.keyboard.press("-")
    page.wait_for_selector(".map-label")
    labels = set(page.locator(".map-label").all_inner_texts())
    assert labels and labels <= {c.split(" (")[0] for c in page.locator("#map-clusters button").all_inner_texts()}
    page.keyboard.press("0")
    page.keyboard.press("n")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/region/r[0-9a-f]+"))
    assert page.locator("html").get_attribute("lang") == "nb"
