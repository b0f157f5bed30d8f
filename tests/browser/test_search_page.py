"""The search page in a real Chromium (Python Playwright) against a live ``ivs serve`` on loopback.

Data: Gallicorpora incunabula scans from ../shared/data through the real pipeline (sample_catalogue.build),
with two indexed models (the fingerprint and a tiny random-weight CLIP) and a few manual labels.
Accessibility: axe-core (npm, ``tests/browser/node_modules``, installed by scripts/test.sh) injected into
each page; no serious or critical violation is allowed. Screenshots go to ``test-output/search-page/``.
Never runs ``playwright install``: it drives the system's /usr/bin/chromium.
"""

from __future__ import annotations

import base64
import io
import json
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from PIL import Image

from datapaths import SHARED_DATA
from live import free_port, launch_chromium, require_browser, running_ivs
from sample_catalogue import IVS, REPO, SampleCatalogue, build

pytestmark = pytest.mark.browser

AXE = Path(__file__).resolve().parent / "node_modules" / "axe-core" / "axe.min.js"
SHOTS = REPO / "test-output" / "search-page"
TIMEOUT_MS = 20_000


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> SampleCatalogue:
    require_browser()
    if not (SHARED_DATA / "gallicorpora-incunabula").is_dir():
        pytest.skip(f"needs the shared test data at {SHARED_DATA}/gallicorpora-incunabula")
    return build(SHARED_DATA, tmp_path_factory.mktemp("browser"), tiny_clip=True)


@pytest.fixture(scope="module")
def server(sample: SampleCatalogue) -> Iterator[str]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with running_ivs([*IVS, "--data-dir", str(sample.data_dir), "serve", "--host", "127.0.0.1", "--port", str(port)],
                     base=base, log_path=sample.data_dir.parent / "serve.log"):
        yield base


@pytest.fixture(scope="module")
def browser(sample: SampleCatalogue) -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = launch_chromium(pw)
        yield chromium
        chromium.close()


CSP_WATCH = """document.addEventListener('securitypolicyviolation', (e) => {
  (window.__cspViolations = window.__cspViolations || []).push(e.violatedDirective + ' ' + e.blockedURI);
});"""


def csp_violations(pg) -> list[str]:  # noqa: ANN001
    return pg.evaluate("window.__cspViolations || []")


@pytest.fixture
def page(browser, server: str) -> Iterator[object]:  # noqa: ANN001
    context = browser.new_context(base_url=server, viewport={"width": 1280, "height": 900}, locale="en-GB")
    # Every page of every test runs under the service's Content-Security-Policy and must not break it.
    context.add_init_script(CSP_WATCH)
    refused: list[str] = []
    pg = context.new_page()
    pg.on("console", lambda msg: refused.append(msg.text) if "Content Security Policy" in msg.text else None)
    pg.set_default_timeout(TIMEOUT_MS)
    yield pg
    seen = refused + (csp_violations(pg) if not pg.is_closed() else [])
    context.close()
    assert not seen, f"Content-Security-Policy violations: {seen}"


def shot(pg, name: str) -> None:  # noqa: ANN001
    SHOTS.mkdir(parents=True, exist_ok=True)
    pg.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def result_ids(pg) -> list[str]:  # noqa: ANN001
    return pg.eval_on_selector_all("#results ol.grid article.card",
                                   "els => els.map(e => e.getAttribute('aria-labelledby').slice(5))")


def axe_check(pg, name: str) -> None:  # noqa: ANN001
    if not AXE.exists():
        pytest.skip(f"needs axe-core at {AXE} (cd tests/browser && npm ci; scripts/test.sh does it)")
    # Evaluated through the DevTools protocol: a <script> tag would be (rightly) refused by the page's CSP.
    pg.evaluate(AXE.read_text() + "\n;true")
    result = pg.evaluate("""async () => {
        const r = await axe.run(document, {resultTypes: ['violations']});
        return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                                       nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))}));
    }""")
    SHOTS.mkdir(parents=True, exist_ok=True)
    (SHOTS / f"axe-{name}.json").write_text(json.dumps(result, indent=1))
    bad = [v for v in result if v["impact"] in ("serious", "critical")]
    assert not bad, f"axe on {name}: {bad}"


def test_text_search_with_htmx_and_language_switch(page) -> None:  # noqa: ANN001
    page.goto("/")
    page.evaluate("window.__notReloaded = true")
    page.fill("#q", "martin")
    page.press("#q", "Enter")
    page.wait_for_selector("#results ol.grid article.card")
    assert page.evaluate("window.__notReloaded === true"), "HTMX swapped the results without a reload"
    assert parse_qs(urlparse(page.url).query)["q"] == ["martin"], "the URL is the permalink of the search"
    assert page.locator("#results mark").first.inner_text().lower() == "martin"
    shot(page, "text-search")
    axe_check(page, "text-search")
    page.click("a[hreflang=nb]")
    page.wait_for_selector("html[lang=nb]")
    assert "Treff 1–" in page.locator("#results .count").inner_text()
    assert page.locator("#q").input_value() == "martin"
    shot(page, "text-search-nb")
    axe_check(page, "text-search-nb")


def test_drag_and_drop_upload_of_a_woodcut_crop_finds_its_page(page, sample: SampleCatalogue) -> None:  # noqa: ANN001
    x, y, w, h = sample.woodcut_box
    with Image.open(sample.woodcut_scan) as scan:
        crop = scan.convert("RGB").crop((x + w // 10, y + h // 10, x + w - w // 10, y + h - h // 10))
    buf = io.BytesIO()
    crop.save(buf, "JPEG", quality=90)
    page.goto("/?match=duplicate")
    # a real drop event with a File, as a file manager would send it
    page.evaluate("""(b64) => {
        const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
        const dt = new DataTransfer();
        dt.items.add(new File([bytes], 'woodcut.jpg', {type: 'image/jpeg'}));
        const zone = document.getElementById('drop-zone');
        zone.dispatchEvent(new DragEvent('dragover', {dataTransfer: dt, bubbles: true, cancelable: true}));
        zone.dispatchEvent(new DragEvent('drop', {dataTransfer: dt, bubbles: true, cancelable: true}));
    }""", base64.b64encode(buf.getvalue()).decode())
    page.wait_for_url(re.compile(r"[?&]upload=[0-9a-f]{32}"))
    page.wait_for_selector("#results ol.grid article.card")
    assert result_ids(page)[0] == sample.woodcut_region
    assert page.locator(".query-picture img").evaluate("img => img.naturalWidth > 0")
    shot(page, "upload-woodcut")


def test_similar_click_swaps_in_the_neighbours(page, sample: SampleCatalogue) -> None:  # noqa: ANN001
    page.goto("/?q=filz")
    page.wait_for_selector("#results ol.grid article.card")
    page.evaluate("window.__notReloaded = true")
    first = result_ids(page)[0]
    page.locator(f"article[aria-labelledby='card-{first}'] a.similar").click()
    page.wait_for_url(re.compile(rf"similar={first}"))
    page.wait_for_selector(f".query-picture article[aria-labelledby='card-{first}']")
    assert page.evaluate("window.__notReloaded === true")
    assert first not in result_ids(page) and result_ids(page)
    assert page.locator("#q").input_value() == "", "the text box follows the query shown"
    # lazy thumbnails that the browser loads are real images
    loaded = page.eval_on_selector_all("#results img[loading=lazy]", "els => els.map(e => e.complete && "
                                       "e.naturalWidth > 0)")
    assert loaded and loaded[0]
    shot(page, "similar")
    axe_check(page, "similar")
    # back to the text results through history (permalinks all the way)
    page.go_back()
    page.wait_for_url(re.compile(r"q=filz"))
    page.wait_for_selector("#results ol.grid article.card")


def test_model_switch(page, sample: SampleCatalogue) -> None:  # noqa: ANN001
    page.goto(f"/?similar={sample.woodcut_region}")
    page.wait_for_selector("#results .model-used")
    options = page.eval_on_selector_all("#model option", "els => els.map(e => e.value)")
    assert sorted(options) == sorted(["fingerprint", sample.clip_key]), "only the indexed models are offered"
    assert sample.clip_key in page.locator("#results .model-used").inner_text()
    before = result_ids(page)
    page.select_option("#model", "fingerprint")
    page.wait_for_url(re.compile(r"model=fingerprint"))
    page.wait_for_function("() => document.querySelector('#results .model-used').textContent.includes('fingerprint')")
    after = result_ids(page)
    assert after and after != before
    shot(page, "model-fingerprint")
    # meaning search with the CLIP model (text tower), then with the fingerprint, which cannot read text
    page.goto(f"/?q=woodcut&by=meaning&model={sample.clip_key}")
    page.wait_for_selector("#results ol.grid article.card")
    page.select_option("#model", "fingerprint")
    page.wait_for_selector("#results .error")
    assert "cannot read text" in page.locator("#results .error").inner_text()


def test_class_filter(page, sample: SampleCatalogue) -> None:  # noqa: ANN001
    map_region = next(r for r, label in sample.labels.items() if label == "Map")
    blank = next(r for r, label in sample.labels.items() if label == "Blank page")
    page.goto(f"/?similar={sample.woodcut_region}&match=duplicate")
    page.wait_for_selector("#results ol.grid article.card")
    ids = result_ids(page)
    assert map_region in ids and blank not in ids
    assert not page.is_checked("input[name=class][value='Blank page']")
    page.uncheck("input[name=class][value='Map']")
    page.wait_for_url(re.compile(r"cf=1"))
    page.wait_for_function(f"() => !document.querySelector(\"article[aria-labelledby='card-{map_region}']\")")
    page.check("input[name=class][value='Blank page']")
    page.wait_for_selector(f"article[aria-labelledby='card-{blank}']")
    assert map_region not in result_ids(page)
    shot(page, "class-filter")
    axe_check(page, "class-filter")


def test_region_detail_page(page, sample: SampleCatalogue) -> None:  # noqa: ANN001
    page.goto(f"/region/{sample.woodcut_region}?lang=nb")
    box = page.locator(".region-box").bounding_box()
    img = page.locator(".page-box img").bounding_box()
    page.wait_for_function("() => document.querySelector('.page-box img').naturalWidth > 0")
    x, y, w, h = sample.woodcut_box
    with Image.open(sample.woodcut_scan) as scan:
        width = scan.width
    assert box["width"] == pytest.approx(img["width"] * w / width, abs=3)
    assert page.locator("a.viewer").get_attribute("href").startswith("/viewer?")
    shot(page, "region-detail-nb")
    axe_check(page, "region-detail-nb")


def test_search_page_without_javascript(browser, server: str) -> None:  # noqa: ANN001
    context = browser.new_context(base_url=server, java_script_enabled=False)
    pg = context.new_page()
    pg.set_default_timeout(TIMEOUT_MS)
    try:
        pg.goto("/")
        pg.fill("#q", "aymon")
        pg.click("#search button[type=submit]")
        pg.wait_for_url(re.compile(r"q=aymon"))
        assert result_ids(pg)
        # a sidebar filter applies through the visible Apply button
        pg.select_option("#model", "fingerprint")
        pg.click("aside button.apply")
        pg.wait_for_url(re.compile(r"model=fingerprint"))
        assert result_ids(pg)
        shot(pg, "no-javascript")
    finally:
        context.close()


def test_pages_send_a_strict_policy_and_still_work_under_it(page, sample: SampleCatalogue) -> None:  # noqa: ANN001
    # Stored XSS: a manifest homepage of javascript:... became a clickable link. Now such a link is never
    # rendered, and the policy would not run it anyway: no inline script, no eval, no inline style.
    answer = page.goto("/?q=martin")
    policy = answer.headers["content-security-policy"]
    assert "script-src 'self';" in policy and "style-src 'self';" in policy and "unsafe" not in policy
    assert answer.headers["x-content-type-options"] == "nosniff" and answer.headers["referrer-policy"]
    page.wait_for_selector("#results ol.grid article.card")
    page.evaluate("window.__notReloaded = true")
    page.locator("#results a.similar").first.click()  # an HTMX swap, under the policy
    page.wait_for_function("() => new URLSearchParams(location.search).has('similar')")
    page.wait_for_selector("#results ol.grid article.card")
    assert page.evaluate("window.__notReloaded === true")
    region = page.goto(f"/region/{sample.woodcut_region}")
    assert "content-security-policy" in region.headers
    page.wait_for_function("() => document.querySelector('.page-box img').naturalWidth > 0")
    assert page.locator(".region-box").bounding_box()["width"] > 10


def test_the_policy_is_enforced(browser, server: str) -> None:  # noqa: ANN001
    context = browser.new_context(base_url=server)
    try:
        context.add_init_script(CSP_WATCH)
        pg = context.new_page()
        pg.goto("/")
        pg.evaluate("""() => { const s = document.createElement('script'); s.textContent = 'window.__ran = 1';
                               document.body.appendChild(s); }""")
        pg.wait_for_function("() => (window.__cspViolations || []).length > 0")
        assert pg.evaluate("window.__ran") is None
    finally:
        context.close()


def test_viewer_runs_under_its_policy(page, server: str) -> None:  # noqa: ANN001
    from iiif_visual_search.web.viewer import find_bundle

    if find_bundle() is None:
        pytest.skip("the viewer bundle is not built (cd viewer-plugin && npm ci && npm run build)")
    answer = page.goto("/viewer")
    policy = answer.headers["content-security-policy"]
    assert "script-src 'self';" in policy and "unsafe-eval" not in policy
    page.wait_for_selector(".mirador-viewer", timeout=TIMEOUT_MS)
    page.wait_for_function("() => window.miradorInstance && window.miradorInstance.store.getState()"
                           ".workspace.windowIds.length > 0")
    page.wait_for_selector(".openseadragon-canvas canvas", timeout=TIMEOUT_MS)


def test_long_labels_stay_inside_their_cards(page, sample: SampleCatalogue) -> None:  # noqa: ANN001
    # A title with no break opportunity ran out of its card over the next one.
    with sqlite3.connect(sample.data_dir / "catalogue.sqlite") as db:
        mid = db.execute("SELECT manifest_id FROM region WHERE id=?", (sample.woodcut_region,)).fetchone()[0]
        db.execute("UPDATE manifest SET label=? WHERE id=?", ("Gesamtverzeichnis" * 12, mid))
        db.execute("INSERT INTO change(kind, object_type, object_id, at) VALUES ('update', 'manifest', ?, 0)",
                   (mid,))
    page.goto(f"/?similar={sample.woodcut_region}")
    page.wait_for_selector("#results ol.grid article.card")
    assert "Gesamtverzeichnis" * 12 in page.content()
    overflowing = page.eval_on_selector_all("article.card", """els => els.filter(card => {
        const box = card.getBoundingClientRect();
        return [...card.querySelectorAll('*')].some(el => el.getBoundingClientRect().right > box.right + 1);
    }).length""")
    assert overflowing == 0
    # find-similar says how many neighbours there are in all
    assert re.search(r"Results 1–\d+ of \d+", page.locator("#results .count").inner_text())
