"""The one guard on requests the service makes for a client: every spelling of a non-global address is refused,
on every hop, for every route (image_url, canvas + xywh, /page-image)."""

from __future__ import annotations

import asyncio
import io
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from starlette.testclient import TestClient

from datapaths import SHARED_DATA
from iiif_visual_search.catalogue import Catalogue
from iiif_visual_search.config import Settings
from iiif_visual_search.web import outbound
from iiif_visual_search.web.app import create_app
from iiif_visual_search.web.errors import ApiError
from iiif_visual_search.web.options import ServeOptions

NOT_GLOBAL = [
    "127.0.0.1", "127.1", "2130706433", "0x7f000001", "0177.0.0.1", "0.0.0.0", "10.0.0.1", "100.64.0.1",
    "100.100.100.200", "100.127.255.254", "169.254.169.254", "172.16.0.1", "192.168.0.1", "192.0.0.170",
    "198.18.0.1", "224.0.0.1", "240.0.0.1", "255.255.255.255", "localhost",
    "[::1]", "[::]", "[fe80::1]", "[fc00::1]", "[::ffff:127.0.0.1]", "[::ffff:a9fe:a9fe]", "[::127.0.0.1]",
    "[2002:7f00:1::]", "[2002:a9fe:a9fe::1]", "[2002:6440:0001::]", "[64:ff9b::127.0.0.1]",
    "[64:ff9b::100.100.100.200]", "[64:ff9b:1::1]", "[2001:0:4136:e378:8000:63bf:80ff:fffe]", "[ff02::1]",
]
GLOBAL = ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946", "2002:5db8:d822::1", "64:ff9b::5db8:d822",
          "::ffff:93.184.216.34"]


@pytest.mark.parametrize("host", NOT_GLOBAL)
def test_every_spelling_of_a_non_global_address_is_refused(host: str) -> None:
    with pytest.raises(ApiError) as refused:
        outbound.check_url(f"http://{host}:8080/x.jpg", allow_private=False)
    assert refused.value.status == 422 and "non-public" in refused.value.message
    outbound.check_url(f"http://{host}:8080/x.jpg", allow_private=True)  # the operator's switch lifts it


@pytest.mark.parametrize("address", GLOBAL)
def test_global_addresses_pass(address: str) -> None:
    assert outbound.is_public_address(address)


@pytest.fixture
def fake_dns(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    names = {"images.example.org": "93.184.216.34", "rebind.example.org": "127.0.0.1",
             "metadata.example.org": "100.100.100.200"}
    real = socket.getaddrinfo

    def lookup(host: str, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host in names:
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (names[host], port))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(outbound.socket, "getaddrinfo", lookup)
    return names


@pytest.mark.parametrize("location", ["http://127.0.0.1:8080/secret", "http://rebind.example.org/x",
                                      "http://metadata.example.org/latest", "http://[2002:7f00:1::]/x",
                                      "http://169.254.169.254/latest/meta-data", "file:///etc/passwd"])
def test_every_redirect_hop_is_checked(fake_dns: dict[str, str], location: str) -> None:
    asked: list[str] = []

    def server(request: httpx.Request) -> httpx.Response:
        asked.append(str(request.url))
        return httpx.Response(302, headers={"location": location})

    with pytest.raises(ApiError) as refused:
        outbound.fetch_bytes("http://images.example.org/page.jpg", max_bytes=1000, timeout_s=5,
                             allow_private=False, transport=httpx.MockTransport(server))
    assert refused.value.status == 422
    assert asked == ["http://93.184.216.34/page.jpg"]  # the first hop only: the second was never made


# --- the routes ------------------------------------------------------------------------------------------------


class _Images(BaseHTTPRequestHandler):
    hits = 0
    body = b""

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        type(self).hits += 1
        self.send_response(200)
        self.send_header("Content-Type", "image/jpeg")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def loopback_canvas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, Any, type[_Images]]]:
    """A catalogue whose first canvas's page image sits on a loopback HTTP server."""
    from iiif_visual_search.ingest import ingest
    from iiif_visual_search.local_sample import shared_books, write_sample

    books = [b for b in shared_books(SHARED_DATA) if b.slug.startswith("dta-")][:1]
    if not books:
        pytest.skip(f"no DTA page scans under {SHARED_DATA}")
    tmp = tmp_path_factory.mktemp("outbound")
    collection = write_sample(SHARED_DATA, tmp / "sample", books)
    settings = Settings(data_dir=tmp / "data")
    buf = io.BytesIO()
    Image.new("RGB", (600, 800), "white").save(buf, "JPEG")
    handler = type("Images", (_Images,), {"body": buf.getvalue(), "hits": 0})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with Catalogue(settings.catalogue_path) as catalogue:
        asyncio.run(ingest([str(collection)], catalogue, settings))
        canvas = catalogue.canvases(catalogue.manifests()[0]["id"])[0]
        catalogue.conn.execute("UPDATE canvas SET image_url=?, image_service='' WHERE id=?",
                               (f"http://127.0.0.1:{server.server_port}/page.jpg", canvas["id"]))
    try:
        yield settings, canvas, handler
    finally:
        server.shutdown()


def _fake_similar(catalogue: Catalogue, settings: Any, **kwargs: Any) -> list[tuple[str, float]]:
    return []


def test_canvas_crop_and_page_image_refuse_a_loopback_image_server(loopback_canvas: Any) -> None:
    # Both followed the canvas's URL with no address check: a remote manifest chose it.
    settings, canvas, handler = loopback_canvas
    handler.hits = 0
    with TestClient(create_app(settings, ServeOptions(), similar_backend=_fake_similar)) as client:
        crop = client.post("/similar", json={"canvas": canvas["uri"], "xywh": "10,10,100,100"})
        assert crop.status_code == 502 and "non-public" in crop.json()["error"]
        get = client.get("/similar", params={"canvas": canvas["uri"], "xywh": "10,10,100,100"})
        assert get.status_code == 502
        page = client.get(f"/page-image/{canvas['id']}.jpg")
        assert page.status_code == 502 and "non-public" in page.json()["error"]
    assert handler.hits == 0


def test_allow_private_urls_lets_the_operator_reach_a_private_image_server(loopback_canvas: Any) -> None:
    settings, canvas, handler = loopback_canvas
    handler.hits = 0
    options = ServeOptions(allow_private_urls=True)
    with TestClient(create_app(settings, options, similar_backend=_fake_similar)) as client:
        assert client.post("/similar", json={"canvas": canvas["uri"], "xywh": "10,10,100,100"}).status_code == 200
        page = client.get(f"/page-image/{canvas['id']}.jpg")
        assert page.status_code == 200 and page.headers["content-type"] == "image/jpeg"
    assert handler.hits == 2


@pytest.mark.parametrize("host", ["100.100.100.200", "100.64.0.1", "[2002:7f00:1::]", "[64:ff9b::127.0.0.1]"])
def test_image_url_refuses_the_spellings_that_got_through(loopback_canvas: Any, host: str) -> None:
    settings, _, _ = loopback_canvas
    with TestClient(create_app(settings, ServeOptions(), similar_backend=_fake_similar)) as client:
        assert client.post("/similar", json={"image_url": f"http://{host}/x.jpg"}).status_code == 422
        assert client.get("/similar", params={"image_url": f"http://{host}/x.jpg"}).status_code == 422
