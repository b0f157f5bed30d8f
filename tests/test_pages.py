"""The search page (issue 8) in-process: real incunabula pages from ../shared/data, the real CLI pipeline,
the Starlette app through TestClient. Every request here is what a browser without JavaScript sends,
except the ones that carry HTMX's headers."""

from __future__ import annotations

import io
import re
from html import unescape
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from PIL import Image
from starlette.testclient import TestClient

from browser.sample_catalogue import SampleCatalogue, build
from datapaths import SHARED_DATA
from iiif_visual_search.config import Settings
from iiif_visual_search.web.app import create_app
from iiif_visual_search.web.i18n import STRINGS, pick_language
from iiif_visual_search.web.pages import SearchState, book_from_row


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> SampleCatalogue:
    if not (SHARED_DATA / "gallicorpora-incunabula").is_dir():
        pytest.skip(f"needs the shared test data at {SHARED_DATA}/gallicorpora-incunabula")
    return build(SHARED_DATA, tmp_path_factory.mktemp("pages"))


@pytest.fixture(scope="module")
def client(sample: SampleCatalogue) -> TestClient:
    return TestClient(create_app(Settings(data_dir=sample.data_dir, base_url="http://testserver")))


def cards(html: str) -> list[str]:
    """The region ids of the result cards, in order (the query card of a similar search excluded)."""
    grid = html.split('<ol class="grid">', 1)
    if len(grid) < 2:
        return []
    return re.findall(r'<article class="card" aria-labelledby="card-([^"]+)"', grid[1])


def test_no_js_text_search_returns_a_full_page_with_results(client: TestClient) -> None:
    r = client.get("/?q=martin")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    html = r.text
    assert html.startswith("<!DOCTYPE html>") and '<html lang="en">' in html
    assert '<form id="search"' in html and 'action="/"' in html and 'method="get"' in html
    found = cards(html)
    assert found, "the text around the Saint Martin woodcuts mentions martin"
    # the match is marked in the snippet, case-folded
    assert re.search(r"<mark>martin</mark>", html, re.IGNORECASE)
    assert "Results 1–" in html
    # every card has the similar, viewer and detail links
    assert html.count('class="similar"') >= len(found)
    assert html.count('class="viewer"') >= len(found)


def test_empty_page_describes_the_collection(client: TestClient, sample: SampleCatalogue) -> None:
    html = client.get("/").text
    assert cards(html) == []
    assert re.search(r"\d+ pictures in 6 books", html)


def test_text_search_with_no_hits_says_so(client: TestClient) -> None:
    r = client.get("/?q=zzyzxqwv")
    assert r.status_code == 200 and "No pictures found." in r.text and cards(r.text) == []


def test_htmx_request_gets_the_results_partial_with_out_of_band_fields(client: TestClient) -> None:
    r = client.get("/?q=martin", headers={"HX-Request": "true", "HX-Target": "results"})
    assert r.status_code == 200
    assert "<html" not in r.text
    assert r.text.lstrip().startswith('<section id="results"')
    assert 'id="query-state" hx-swap-oob="true"' in r.text
    assert re.search(r'<input id="q"[^>]*value="martin"[^>]*hx-swap-oob="true"', r.text)
    assert cards(r.text) == cards(client.get("/?q=martin").text)
    # the language switch is swapped too, so it switches the search now shown (it once kept the old one)
    switch = re.search(r'<nav id="lang-switch"[^>]*hx-swap-oob="true".*?href="([^"]+)" hreflang="nb"', r.text, re.S)
    assert switch and parse_qs(urlparse(unescape(switch.group(1))).query) == {"q": ["martin"], "lang": ["nb"]}
    assert 'id="upload-state" hx-swap-oob="true"' in r.text
    # a history restore asks for the whole page
    full = client.get("/?q=martin", headers={"HX-Request": "true", "HX-Target": "results",
                                             "HX-History-Restore-Request": "true"})
    assert "<html" in full.text


def test_languages_from_parameter_and_accept_language(client: TestClient) -> None:
    nb = client.get("/?q=martin&lang=nb").text
    assert '<html lang="nb">' in nb and "Bildesøk" in nb and "Treff 1–" in nb
    assert '<html lang="nb">' in client.get("/", headers={"Accept-Language": "nb-NO,nb;q=0.9,en;q=0.5"}).text
    assert '<html lang="en">' in client.get("/", headers={"Accept-Language": "fr-FR, en;q=0.5"}).text
    # the switch keeps the search
    switch = re.search(r'<a href="([^"]+)" hreflang="en"', nb).group(1)
    assert parse_qs(urlparse(unescape(switch)).query) == {"q": ["martin"], "lang": ["en"]}


def test_every_string_has_both_languages() -> None:
    assert all(set(v) == {"en", "nb"} and all(v.values()) for v in STRINGS.values())
    assert pick_language(None, "nn-NO") == "nb"
    assert pick_language("xx", "en;q=0.1, nb;q=0.8") == "nb"
    assert pick_language(None, None) == "en"


def test_permalink_round_trip() -> None:
    state = SearchState(q="kart", by="meaning", model="siglip", match="duplicate", classes=("Map", "_none"),
                        books=("m1", "m2"), year_from=1800, year_to=1900, page=3, lang="nb")
    query = state.query()
    from starlette.requests import Request

    from iiif_visual_search.web.pages import parse_state

    request = Request({"type": "http", "method": "GET", "path": "/", "query_string": query[1:].encode(),
                       "headers": []})
    assert parse_state(request) == state
    # the query kind decides which query parameter the link keeps
    assert "similar=" not in SearchState(q="x", similar="r1").query()
    assert SearchState(similar="r1").query(page=2) == "?similar=r1&page=2"


def test_similar_click_finds_neighbours_and_shows_the_query_picture(client: TestClient,
                                                                    sample: SampleCatalogue) -> None:
    html = client.get(f"/?similar={sample.woodcut_region}&match=duplicate").text
    found = cards(html)
    assert found and sample.woodcut_region not in found
    assert f'aria-labelledby="card-{sample.woodcut_region}"' in html  # the query card above the grid
    assert "model fingerprint" in html
    scores = [float(s) for s in re.findall(r'<dd class="score">([-0-9.]+)</dd>', html)]
    assert scores == sorted(scores, reverse=True)


def test_upload_of_a_woodcut_crop_finds_its_page(client: TestClient, sample: SampleCatalogue) -> None:
    x, y, w, h = sample.woodcut_box
    with Image.open(sample.woodcut_scan) as scan:
        crop = scan.convert("RGB").crop((x + w // 20, y + h // 20, x + w - w // 20, y + h - h // 20))
    buf = io.BytesIO()
    crop.save(buf, "PNG")
    r = client.post("/search/image", files={"image": ("woodcut.png", buf.getvalue(), "image/png")},
                    data={"match": "duplicate", "lang": "nb"}, follow_redirects=False)
    assert r.status_code == 303
    target = r.headers["location"]
    params = parse_qs(urlparse(target).query)
    assert params["match"] == ["duplicate"] and params["lang"] == ["nb"] and re.fullmatch(r"[0-9a-f]{32}",
                                                                                            params["upload"][0])
    page = client.get(target)
    assert page.status_code == 200
    assert cards(page.text)[0] == sample.woodcut_region
    query_img = re.search(r'<img src="(/search/uploads/[0-9a-f]+\.jpg)"', page.text).group(1)
    stored = client.get(query_img)
    assert stored.status_code == 200 and stored.headers["content-type"] == "image/jpeg"
    assert max(Image.open(io.BytesIO(stored.content)).size) <= 1024
    # HTMX-driven uploads are told where to go instead of being redirected
    buf.seek(0)
    hx = client.post("/search/image", files={"image": ("w.png", buf.getvalue(), "image/png")},
                     headers={"HX-Request": "true"}, follow_redirects=False)
    assert hx.status_code == 204 and hx.headers["HX-Redirect"].startswith("/?upload=")


def test_class_filters(client: TestClient, sample: SampleCatalogue) -> None:
    blank = next(r for r, label in sample.labels.items() if label == "Blank page")
    map_region = next(r for r, label in sample.labels.items() if label == "Map")
    url = f"/?similar={sample.woodcut_region}&match=duplicate"
    default = cards(client.get(url).text)
    assert blank not in default and map_region in default, "Blank page is hidden by default"
    html = client.get(url).text
    assert re.search(r'value="Blank page"[^>]*>', html) and not re.search(r'value="Blank page"[^>]*checked', html)
    assert re.search(r'value="Map"[^>]*checked', html)
    everything = cards(client.get(url + "&cf=1&class=Blank+page&class=Map&class=_none"
                                        "&class=Illustration+or+photograph").text)
    assert blank in everything
    only_maps = cards(client.get(url + "&cf=1&class=Map").text)
    assert only_maps == [map_region]


def test_book_filter_and_models_offered(client: TestClient, sample: SampleCatalogue) -> None:
    html = client.get("/").text
    books = re.findall(r'<option value="(m[0-9a-f]+)"', html)
    assert len(books) == 6
    only = cards(client.get(f"/?similar={sample.woodcut_region}&match=duplicate&book={books[0]}").text)
    all_hits = cards(client.get(f"/?similar={sample.woodcut_region}&match=duplicate").text)
    assert len(only) < len(all_hits)
    # only indexed models are offered: this catalogue has the fingerprint alone
    assert re.findall(r'<select id="model"[^>]*>(.*?)</select>', html, re.S)
    assert re.findall(r'<option value="([^"]+)"[^>]*>fingerprint', html) == ["fingerprint"]
    # no metadata gives a year here, so there is no year filter; a year range then matches nothing
    assert 'name="from"' not in html
    assert cards(client.get(f"/?similar={sample.woodcut_region}&from=1400").text) == []


def test_meaning_search_needs_a_model_that_reads_text(client: TestClient) -> None:
    r = client.get("/?q=woodcut&by=meaning")
    assert r.status_code == 400 and "cannot read text" in r.text
    assert client.get("/?q=woodcut&by=meaning&model=nosuchmodel").status_code == 400


@pytest.mark.parametrize("query, status", [
    ("page=0", 400), ("page=abc", 400), ("by=sideways&q=x", 400), ("match=exact", 400),
    ("similar=../../etc/passwd", 400), ("similar=rdoesnotexist", 404), ("upload=nothex", 400),
    ("upload=" + "0" * 32, 404), ("from=nineteen", 400), ("collection=nope&q=martin", 404),
])
def test_bad_input_is_a_page_with_the_reason(client: TestClient, query: str, status: int) -> None:
    r = client.get("/?" + query)
    assert r.status_code == status
    assert r.headers["content-type"].startswith("text/html")
    assert 'role="alert"' in r.text and "Traceback" not in r.text


def test_bad_uploads(client: TestClient) -> None:
    r = client.post("/search/image", files={"image": ("x.png", b"not an image", "image/png")})
    assert r.status_code == 415 and 'role="alert"' in r.text
    r = client.post("/search/image", data={"image_url": ""})
    assert r.status_code == 422
    # a URL goes to its permalink; fetching it there refuses loopback addresses (SSRF)
    r = client.post("/search/image", data={"image_url": "http://127.0.0.1:9/x.jpg"}, follow_redirects=False)
    assert r.status_code == 303 and "image_url=http" in r.headers["location"]
    page = client.get(r.headers["location"])
    assert page.status_code == 422 and "non-public" in page.text


def test_region_detail_draws_the_box_on_the_page(client: TestClient, sample: SampleCatalogue) -> None:
    r = client.get(f"/region/{sample.woodcut_region}")
    assert r.status_code == 200
    html = r.text
    with Image.open(sample.woodcut_scan) as scan:
        width, height = scan.size
    x, y, w, h = sample.woodcut_box
    # The box is an SVG rect in canvas units over the page (no style attributes: the CSP forbids them).
    view = re.search(r'class="region-overlay" viewBox="0 0 (\d+) (\d+)"', html).groups()
    rect = re.search(r'<rect class="region-box" x="(\d+)" y="(\d+)" width="(\d+)" height="(\d+)"', html).groups()
    assert [int(v) for v in view] == [width, height] and [int(v) for v in rect] == [x, y, w, h]
    assert " style=" not in html
    page_img = re.search(r'<img src="(/page-image/[^"]+)"', html).group(1)
    img = client.get(page_img)
    assert img.status_code == 200 and img.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(img.content)).width == 800
    viewer = unescape(re.search(r'<a class="viewer" href="([^"]+)"', html).group(1))
    params = parse_qs(urlparse(viewer).query)
    # the sample is read from disk: its canvas is named by our http id, as its manifest names it
    assert params["xywh"] == [f"{x},{y},{w},{h}"] and params["canvas"][0].startswith("http://testserver/iiif/")
    assert params["manifest"][0].startswith("http://testserver/iiif/")
    assert "Illustration or photograph" in html
    assert client.get("/region/rnope").status_code == 404
    assert client.get("/page-image/cnope.jpg").status_code == 404


def test_book_metadata_gives_author_year_and_homepage() -> None:
    row = {"id": "m1", "uri": "u", "url": "u", "label": "Kart over kysten", "homepage": "https://www.nb.no/items/x",
           "metadata": '[{"label": "Forfatter", "value": "<b>Munch, P. A.</b>"}, '
                       '{"label": "Utgivelsesår", "value": "ca. 1845"}]', "nav_date": None}
    book = book_from_row(row)
    assert (book.author, book.year, book.homepage) == ("Munch, P. A.", 1845, "https://www.nb.no/items/x")
    v3 = book_from_row({**row, "metadata": "[]", "nav_date": "1790-01-01T00:00:00Z"})
    assert v3.year == 1790 and v3.author == ""


def test_static_files_and_htmx_licence(client: TestClient) -> None:
    js = client.get("/static/htmx.min.js")
    assert js.status_code == 200 and js.text.startswith("/*! htmx 2.0.11") and "0BSD" in js.text[:200]
    assert client.get("/static/htmx.LICENSE.txt").text.startswith("Zero-Clause BSD")
    assert client.get("/static/pages.css").status_code == 200


def test_only_choices_that_can_work_are_offered_and_the_indexed_model_is_the_default(
        client: TestClient, sample: SampleCatalogue) -> None:
    # Only the fingerprint is indexed here: "Meaning" search was offered (then said the model cannot read
    # text), "Similar content (semantic)" was preselected, and near-duplicates gave the same results.
    html = client.get("/").text
    assert 'value="meaning"' not in html and 'type="radio" name="match"' not in html
    assert re.search(r'<option value="fingerprint"\s+selected>fingerprint · near-duplicates only', html)
    # the service's find-similar without a model uses the indexed one (it answered 503 "no vectors … siglip")
    r = client.get(f"/similar/{sample.woodcut_region}")
    assert r.status_code == 200 and "(fingerprint)" in r.json()["label"]["en"][0]
    r = client.get(f"/similar/{sample.woodcut_region}?model=fingerprnt")
    assert r.status_code == 400 and "did you mean fingerprint?" in r.json()["error"]


def test_cli_model_default_and_typos(sample: SampleCatalogue) -> None:
    from click.testing import CliRunner

    from iiif_visual_search.cli import main

    run = CliRunner().invoke
    base = ["--data-dir", str(sample.data_dir)]
    res = run(main, [*base, "similar", "--region", sample.woodcut_region, "--k", "3", "--json"])
    assert res.exit_code == 0, res.output
    assert len([line for line in res.output.splitlines() if line.startswith("{")]) == 3
    for verb in (["similar", "--region", sample.woodcut_region], ["embed"]):
        res = run(main, [*base, *verb, "--model", "fingerprnt"])
        assert res.exit_code == 1 and "unknown model 'fingerprnt'; did you mean fingerprint?" in res.output, \
            res.output
    res = run(main, [*base, "stauts"])
    assert res.exit_code == 2 and "Did you mean 'status'?" in res.output
    # --data-dir after the verb too, on sub-verbs as well
    res = run(main, ["status", "--data-dir", str(sample.data_dir)])
    assert res.exit_code == 0 and "manifests" in res.output.lower(), res.output
    res = run(main, ["classify", "apply", "--data-dir", str(sample.data_dir / "nowhere")])
    assert "nowhere" in res.output, res.output


def test_cards_get_sized_thumbnails_and_common_words_a_relative_score(client: TestClient,
                                                                      sample: SampleCatalogue) -> None:
    html = client.get(f"/?similar={sample.woodcut_region}").text
    thumbs = re.findall(r'<a class="thumb"[^>]*>\s*<img src="([^"]+)"', html)
    assert thumbs
    for url in thumbs[:3]:
        # the local sample's pages come through our image service, asked for a 300-pixel-wide crop
        assert re.search(r"/image/3/c[0-9a-f]+/\d+,\d+,\d+,\d+/\d+,/0/default\.jpg$", unescape(url)), url
        got = client.get(unescape(url).replace("http://testserver", ""))
        assert got.status_code == 200 and Image.open(io.BytesIO(got.content)).width <= 300
    # a cached region image at a card's size (for regions without an image service)
    full = client.get(f"/regions/{sample.woodcut_region}/image.jpg")
    small = client.get(f"/regions/{sample.woodcut_region}/image.jpg?w=300")
    assert small.status_code == 200 and Image.open(io.BytesIO(small.content)).width <= 300
    assert len(small.content) < len(full.content)
    # find-similar says how many in all
    assert re.search(r"Results 1–\d+ of \d+", html)
    # the most common word of the collection: BM25 near 0 everywhere printed "Score 0.000" on every card
    counts = {w: len(cards(client.get(f"/?q={w}").text)) for w in ("et", "de", "la", "le", "en")}
    common = client.get(f"/?q={max(counts, key=counts.get)}").text
    scores = re.findall(r'<dd class="score">([0-9.]+)</dd>', common)
    assert scores and scores[0] == "1.00" and "0.000" not in scores and "Relevance" in common
