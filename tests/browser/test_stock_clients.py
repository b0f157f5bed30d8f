"""Stock IIIF viewers, with no configuration, against a live ``ivs serve`` on loopback.

Mirador 4 (its defaults: no ``annotations.filteredMotivations``), Clover 3, TIFY and Universal Viewer 4 load
one augmented v2 manifest (BnF Gallica's Vogue 1920, cut to the three pages that have ALTO) and one v3 manifest
(the IIIF Cookbook newspaper). Each must show the page's regions: as many as the region page lists, with a class
label on screen (UV, which reads no annotations itself, counts those its page hands it); Mirador's search panel
and UV's footer search must get hits from our Content Search 1.0. The viewers come from npm
(``tests/browser/stock``, installed and built by scripts/test.sh) and are served from a second loopback port, so
every request to the service is cross-origin; every non-loopback request is blocked (the page images live on
gallica.bnf.fr and iiif.io, so the viewers show no pixels: regions are counted in their panels).
Screenshots go to ``test-output/stock-clients/``.
"""

from __future__ import annotations

import asyncio
import functools
import http.server
import json
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlparse

import httpx
import pytest

from live import free_port, launch_chromium, require_browser, running_ivs
from sample_catalogue import IVS, REPO

sys.path.insert(0, str(REPO / "tests"))
from test_iiif_data import GALLICA, NEWSPAPER, NEWSPAPER_BASE, require_data  # noqa: E402

pytestmark = pytest.mark.browser

STOCK = Path(__file__).resolve().parent / "stock"
SHOTS = REPO / "test-output" / "stock-clients"
TIMEOUT_MS = 30_000
VOGUE_PAGES = (18, 19, 20)  # the canvases with ALTO


@dataclass
class Book:
    name: str
    manifest: str          # our augmented manifest's URL
    canvas_index: int      # a canvas with regions (0-based)
    labels: list[str]      # the class labels of its regions, as the region page lists them
    query: str             # a word of the text around its pictures


@dataclass
class Service:
    base: str
    books: dict[str, Book]


def _catalogue(work: Path) -> Path:
    """The two books, ingested the way test_iiif_data does; returns the data directory."""
    from iiif_visual_search.catalogue import Catalogue
    from iiif_visual_search.config import Settings
    from iiif_visual_search.ingest import LayoutOverride, ingest

    require_data()
    settings = Settings(data_dir=work / "data", base_url="http://127.0.0.1")
    text = (NEWSPAPER / "newspaper_issue_1-manifest.json").read_text(encoding="utf-8")
    text = text.replace("{{ id.url }}", f"{NEWSPAPER_BASE}/newspaper_issue_1-manifest.json")
    newspaper = work / "newspaper.json"
    newspaper.write_text(text.replace("{{ id.path }}", NEWSPAPER_BASE), encoding="utf-8")
    vogue = json.loads((GALLICA / "vogue-1920-bpt6k9604118j_v2.json").read_text(encoding="utf-8"))
    canvases = vogue["sequences"][0]["canvases"]
    vogue["sequences"][0]["canvases"] = [canvases[i] for i in VOGUE_PAGES]
    vogue_file = work / "vogue.json"
    vogue_file.write_text(json.dumps(vogue), encoding="utf-8")
    layouts = {canvases[i]["@id"]: LayoutOverride(str(GALLICA / "alto" / f"X000000{i + 1}.xml"), "alto")
               for i in VOGUE_PAGES}
    layouts["#1"] = LayoutOverride(str(NEWSPAPER / "newspaper_issue_1-alto_p1.xml"), "alto")
    layouts["#2"] = LayoutOverride(str(NEWSPAPER / "newspaper_issue_1-alto_p2.xml"), "alto")
    with Catalogue(settings.catalogue_path) as catalogue:
        asyncio.run(ingest([str(newspaper)], catalogue, settings, layout_map={
            k: v for k, v in layouts.items() if k.startswith("#")}))
        asyncio.run(ingest([str(vogue_file)], catalogue, settings, layout_map={
            k: v for k, v in layouts.items() if not k.startswith("#")}))
    return settings.data_dir


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    require_browser()
    if not (STOCK / "node_modules" / "mirador").is_dir():
        pytest.skip(f"needs the stock viewers from npm (cd {STOCK} && npm ci && npm run build; scripts/test.sh)")
    if not (STOCK / "dist" / "clover.js").is_file():
        subprocess.run(["npm", "run", "build", "--silent"], cwd=STOCK, check=True, timeout=300)
    work = tmp_path_factory.mktemp("stock-clients")
    data = _catalogue(work)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with running_ivs([*IVS, "--data-dir", str(data), "serve", "--host", "127.0.0.1", "--port", str(port),
                      "--base-url", base], base=base, log_path=work / "serve.log"):
        books = {}
        for m in httpx.get(base + "/collection").json()["items"]:
            doc = httpx.get(m["id"]).json()
            v3 = doc.get("items") is not None
            canvases = doc["items"] if v3 else doc["sequences"][0]["canvases"]
            index = next(i for i, c in enumerate(canvases) if c.get("annotations" if v3 else "otherContent"))
            page = httpx.get(f"{m['id'].rsplit('/', 1)[0]}/canvas/{index}/regions?version=3").json()
            labels = [a["body"][0]["value"] for a in page["items"]]
            name = "v3" if v3 else "v2"
            books[name] = Book(name, m["id"], index, labels, "Berlin" if v3 else "vogue")
        assert set(books) == {"v2", "v3"}
        yield Service(base, books)


@pytest.fixture(scope="module")
def clients_url() -> Iterator[str]:
    """The viewers' pages and npm packages, from their own loopback port (so the service is cross-origin)."""
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(STOCK)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


@pytest.fixture(scope="module")
def browser(service: Service) -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = launch_chromium(pw)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser) -> Iterator[object]:  # noqa: ANN001
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, locale="en-US")
    blocked: list[str] = []

    def only_loopback(route) -> None:  # noqa: ANN001
        if urlparse(route.request.url).hostname in ("127.0.0.1", "localhost"):
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    context.route("**/*", only_loopback)
    pg = context.new_page()
    pg.set_default_timeout(TIMEOUT_MS)
    yield pg
    context.close()


def shot(pg, name: str) -> None:  # noqa: ANN001
    SHOTS.mkdir(parents=True, exist_ok=True)
    pg.screenshot(path=str(SHOTS / f"{name}.png"))


VERSIONS = ["v2", "v3"]


@pytest.mark.parametrize("version", VERSIONS)
def test_stock_mirador_lists_the_regions_and_searches(page, service: Service, clients_url: str,  # noqa: ANN001
                                                      version: str) -> None:
    book = service.books[version]
    # The page images (and the newspaper's own OCR annotations) are blocked: Mirador says so in a dialog.
    page.add_locator_handler(page.get_by_role("button", name="OK"), lambda ok: ok.click())
    page.goto(f"{clients_url}/pages/mirador.html?manifest={quote(book.manifest)}&canvas={book.canvas_index}")
    n = len(book.labels)
    page.get_by_text(re.compile(rf"Showing {n} annotations?")).wait_for()
    shot(page, f"mirador-{version}-annotations")
    for label in set(book.labels):  # the class: a tag chip (v3), the annotation's text (v2)
        assert page.get_by_text(label, exact=version == "v3").count() >= book.labels.count(label), label
    # The search panel (Content Search 1.0, found through the manifest's service) gets our hits.
    page.get_by_role("tab", name=re.compile("Search", re.I)).click()
    box = page.get_by_role("combobox").or_(page.get_by_role("searchbox")).or_(page.get_by_role("textbox")).first
    box.fill(book.query)
    box.press("Enter")
    search = httpx.get(f"{service.base}/search/1/{book.manifest.rsplit('/', 2)[-2]}", params={"q": book.query})
    total = search.json()["within"]["total"]
    assert total > 0
    page.get_by_text(f"1 of {total}", exact=True).wait_for()  # Mirador's hit navigator, from our within.total
    page.get_by_text(re.compile(rf"^{book.query}$", re.I)).first.wait_for()  # a hit's highlighted match
    shot(page, f"mirador-{version}-search")


@pytest.mark.parametrize("version", VERSIONS)
def test_stock_clover_lists_the_regions(page, service: Service, clients_url: str, version: str) -> None:  # noqa: ANN001
    book = service.books[version]
    assert book.canvas_index == 0, "Clover opens on the first canvas"
    page.goto(f"{clients_url}/pages/clover.html?manifest={quote(book.manifest)}")
    page.get_by_role("tab", name=re.compile("Annotations", re.I)).first.click()
    page.get_by_text(book.labels[0], exact=True).first.wait_for()
    shot(page, f"clover-{version}")
    for label in set(book.labels):
        assert page.get_by_text(label, exact=True).count() >= book.labels.count(label), label


@pytest.mark.parametrize("version", VERSIONS)
def test_stock_tify_lists_the_regions(page, service: Service, clients_url: str, version: str) -> None:  # noqa: ANN001
    book = service.books[version]
    page.goto(f"{clients_url}/pages/tify.html?manifest={quote(book.manifest)}&page={book.canvas_index + 1}")
    page.get_by_role("button", name="Text").click()
    page.locator(".tify-text-item").nth(len(book.labels) - 1).wait_for()
    shot(page, f"tify-{version}")
    items = page.locator(".tify-text-item").all_inner_texts()
    assert len(items) == len(book.labels)
    # TIFY shows every body (v3) or the first resource (v2): the class label comes first.
    assert [item.splitlines()[0].strip() for item in items] == book.labels


@pytest.mark.parametrize("version", VERSIONS)
def test_stock_universal_viewer_counts_the_regions_and_searches(page, service: Service, clients_url: str,  # noqa: ANN001
                                                                version: str) -> None:
    """UV 4 loads no annotations itself: the page hands it the canvas's v2 region list, as the README says. It
    counts them as results of that canvas (on its thumbnail); its footer search uses our Content Search 1.0.
    The README's first snippet passed ``manifest`` instead of ``iiifManifestId``: UV spun for ever."""
    if not (STOCK / "node_modules" / "universalviewer").is_dir():
        pytest.skip(f"needs Universal Viewer from npm (cd {STOCK} && npm ci; scripts/test.sh)")
    book = service.books[version]
    # The page images are blocked: UV takes that for a failed log-in and says so in a dialog.
    page.add_locator_handler(page.get_by_role("button", name="OK"), lambda ok: ok.click())
    regions = f"{book.manifest.rsplit('/', 1)[0]}/canvas/{book.canvas_index}/regions?version=2"
    page.goto(f"{clients_url}/pages/uv.html?manifest={quote(book.manifest)}&canvas={book.canvas_index}"
              f"&regions={quote(regions)}")
    counted = page.locator(".thumb.selected .searchResults")
    counted.wait_for()
    assert counted.inner_text().strip() == str(len(book.labels))
    shot(page, f"uv-{version}-regions")
    page.locator("button.clearSearch").click()
    box = page.get_by_role("textbox", name=re.compile("Search within", re.I))
    box.fill(book.query)
    box.press("Enter")
    search = httpx.get(f"{service.base}/search/1/{book.manifest.rsplit('/', 2)[-2]}", params={"q": book.query})
    total = search.json()["within"]["total"]
    assert total > 0
    page.get_by_text(re.compile(rf"^{total} results? found for '{book.query}'", re.I)).wait_for()
    per_canvas = [int(t) for t in page.locator(".thumb .searchResults").all_inner_texts()]
    assert sum(per_canvas) == total
    shot(page, f"uv-{version}-search")
