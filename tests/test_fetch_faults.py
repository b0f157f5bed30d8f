"""The fetcher against a misbehaving loopback server: every region ends fetched and valid or quarantined
with the reason, delays follow Retry-After and the backoff, the cache is never left half-written."""

from __future__ import annotations

import asyncio
import io
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from PIL import Image

from iiif_visual_search.catalogue import Catalogue
from iiif_visual_search.config import Settings
from iiif_visual_search.fetch.cache import ImageCache
from iiif_visual_search.fetch.client import ClientConfig, FetchError, PoliteClient, decode_image, parse_retry_after
from iiif_visual_search.fetch.run import FetchOptions, fetch_async

from iiif_server import DATA, add_canvas


async def _fetch_and_close(cat, settings, options, client):
    """Fetch and close the client in one event loop (its connections belong to that loop)."""
    async with client:
        return await fetch_async(cat, settings, options, client=client)


SCAN = DATA / "dta-printedbooklayout" / "beck_eisen01_1884_0641.png"


def _jpeg(size: tuple[int, int] = (800, 600)) -> bytes:
    image = Image.new("RGB", size)
    # A gradient, so crops of different places differ.
    image.putdata([((x * 255) // size[0], (y * 255) // size[1], 128) for y in range(size[1]) for x in range(size[0])])
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90)
    return out.getvalue()


GOOD = _jpeg()


def _bomb() -> bytes:
    out = io.BytesIO()
    Image.new("1", (12_000, 12_000)).save(out, "PNG")  # 144 Mpx that compress to a few kB
    return out.getvalue()


class FaultServer:
    """Routes by path; counts hits and records headers so tests can check what the client did."""

    def __init__(self) -> None:
        self.hits: dict[str, int] = {}
        self.user_agents: list[str] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.down = False
        self._lock = threading.Lock()
        self.bomb = _bomb()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _send(self, status: int, body: bytes, ctype: str = "image/jpeg",
                      headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                path = self.path.split("?")[0]
                with server._lock:
                    server.hits[path] = server.hits.get(path, 0) + 1
                    n = server.hits[path]
                    server.user_agents.append(self.headers.get("User-Agent", ""))
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    self._route(path, n)
                finally:
                    with server._lock:
                        server.in_flight -= 1

            def _route(self, path: str, n: int) -> None:
                if server.down:
                    self._send(503, b"down", "text/plain")
                elif path.startswith("/ok/"):
                    self._send(200, GOOD)
                elif path.startswith("/busy/"):
                    time.sleep(0.15)
                    self._send(200, GOOD)
                elif path == "/429-then-ok.jpg":
                    if n == 1:
                        self._send(429, b"slow down", "text/plain", {"Retry-After": "7"})
                    else:
                        self._send(200, GOOD)
                elif path == "/503-twice.jpg":
                    if n <= 2:
                        self._send(503, b"busy", "text/html")
                    else:
                        self._send(200, GOOD)
                elif path == "/503-always.jpg":
                    self._send(503, b"busy", "text/html")
                elif path == "/slow.jpg":
                    self.send_response(200)
                    self.send_header("Content-Type", "image/jpeg")
                    self.send_header("Content-Length", str(len(GOOD)))
                    self.end_headers()
                    self.wfile.write(GOOD[:100])
                    self.wfile.flush()
                    time.sleep(1.5)
                    try:
                        self.wfile.write(GOOD[100:])
                    except OSError:
                        pass
                elif path == "/truncated.jpg":
                    self._send(200, GOOD[: len(GOOD) // 2])
                elif path == "/error-page.jpg":
                    self._send(200, b"<html><body>Internal error</body></html>", "text/html")
                elif path == "/bomb.png":
                    self._send(200, server.bomb, "image/png")
                elif path == "/huge.jpg":
                    self._send(200, GOOD + b"\0" * 300_000)
                elif path == "/svc/info.json":
                    self._send(404, b"no such image", "text/plain")
                else:
                    self._send(404, b"not found", "text/html")

        class Server(ThreadingHTTPServer):
            def handle_error(self, request: object, client_address: object) -> None:
                pass  # clients that hang up early (timeouts, size limits) are part of these tests

        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> FaultServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class FakeTime:
    """Injected sleep and clock: the run takes no wall time for its pauses, and the pauses are recorded."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


@pytest.fixture()
def server():
    with FaultServer() as s:
        yield s


def _settings(tmp_path: Path, timeout: float = 5.0) -> Settings:
    return Settings(data_dir=tmp_path / "data", contact="mailto:test@example.org", timeout_s=timeout)


def _client(settings: Settings, fake: FakeTime, **config: object) -> PoliteClient:
    cfg = ClientConfig(user_agent=settings.user_agent, timeout_s=settings.timeout_s, **config)
    return PoliteClient(cfg, sleep=fake.sleep, clock=fake.clock, rng=lambda: 0.0)


def _one_region_canvases(urls: dict[str, str]) -> list[dict]:
    return [{"uri": f"https://example.org/canvas/{name}", "width": 1600, "height": 1200, "image_url": url,
             "regions": [("b1", 200, 100, 600, 500)]} for name, url in urls.items()]


def test_each_fault_ends_fetched_or_quarantined_with_its_reason(tmp_path: Path, server: FaultServer) -> None:
    settings = _settings(tmp_path, timeout=0.5)
    cat = Catalogue(settings.catalogue_path)
    b = server.base
    urls = {
        "ok": f"{b}/ok/a.jpg", "429": f"{b}/429-then-ok.jpg", "503": f"{b}/503-twice.jpg",
        "503always": f"{b}/503-always.jpg", "slow": f"{b}/slow.jpg", "truncated": f"{b}/truncated.jpg",
        "html": f"{b}/error-page.jpg", "bomb": f"{b}/bomb.png", "404": f"{b}/missing.jpg",
        "huge": f"{b}/huge.jpg",
    }
    canvases = _one_region_canvases(urls)
    canvases.append({"uri": "https://example.org/canvas/svc", "width": 100, "height": 100,
                     "service": f"{b}/svc", "version": 3, "regions": [("b1", 0, 0, 50, 50)]})
    mid = add_canvas(cat, "https://example.org/manifest/faults", canvases)
    fake = FakeTime()
    client = _client(settings, fake, retries=2, max_bytes=200_000)
    report = asyncio.run(_fetch_and_close(cat, settings, FetchOptions(progress=False), client))

    reasons = {r["ref"]: r["reason"] for r in cat.quarantined("image")}
    by_canvas = {row["canvas_uri"].rsplit("/", 1)[1]: row for row in cat.regions(mid)}
    assert {k for k, row in by_canvas.items() if row["image_path"]} == {"ok", "429", "503"}
    expected = {
        "503always": "HTTP 503 (gave up after 3 attempts)",
        "slow": "timeout",
        "truncated": "broken image",
        "html": "wrong content type: text/html",
        "bomb": "decompression bomb: 12000x12000",
        "404": "HTTP 404",
        "huge": "too large",
        "svc": "info.json: HTTP 404",
    }
    for name, needle in expected.items():
        rid = by_canvas[name]["id"]
        assert rid in reasons, name
        assert needle in reasons[rid], (name, reasons[rid])
        assert by_canvas[name]["image_path"] is None
    assert report.fetched == 3 and report.failed == len(expected)
    # Every stored file decodes and has the size recorded; no temp file is left behind.
    for row in cat.query("SELECT * FROM region_image"):
        with Image.open(row["path"]) as im:
            assert im.size == (row["width"], row["height"])
    assert ImageCache(settings.data_dir / "images").stray_temp_files() == []
    # 429: the Retry-After (7 s) was honoured; 503: backoff; timeouts were retried.
    assert 7.0 in fake.sleeps
    assert server.hits["/429-then-ok.jpg"] == 2
    assert server.hits["/503-twice.jpg"] == 3
    assert server.hits["/503-always.jpg"] == 3
    assert server.hits["/missing.jpg"] == 1  # a 404 is final: no retry
    assert server.hits["/truncated.jpg"] == 1  # a broken image is not a transient error
    assert all("mailto:test@example.org" in ua and ua.startswith("iiif-visual-search/") for ua in server.user_agents)
    cat.close()


def test_backoff_is_exponential_with_jitter_and_capped() -> None:
    fake = FakeTime()
    cfg = ClientConfig(user_agent="t", backoff_base_s=1.0, backoff_max_s=5.0)
    for rng, expected in ((0.0, [0.5, 1.0, 2.0, 2.5, 2.5]), (1.0, [1.0, 2.0, 4.0, 5.0, 5.0])):
        client = PoliteClient(cfg, sleep=fake.sleep, clock=fake.clock, rng=lambda r=rng: r)
        assert [client._backoff(k) for k in range(5)] == expected
        asyncio.run(client.aclose())


def test_retry_after_pauses_the_whole_host(server: FaultServer, tmp_path: Path) -> None:
    """After a 429 with Retry-After, other requests to that host wait too (one slow-down for everyone)."""
    fake = FakeTime()
    settings = _settings(tmp_path)

    async def go() -> None:
        async with _client(settings, fake) as client:
            await client.get_image(f"{server.base}/429-then-ok.jpg")
            started = fake.now
            await client.get_image(f"{server.base}/ok/b.jpg")
            assert fake.now == started  # the pause is over: no extra wait
            client._not_before[server.base.split("//")[1]] = fake.now + 3
            await client.get_image(f"{server.base}/ok/c.jpg")
            assert fake.sleeps[-1] == pytest.approx(3.0)

    asyncio.run(go())
    assert fake.sleeps[0] == 7.0


def test_retry_after_parsing() -> None:
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == pytest.approx(10.0)
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def test_too_long_retry_after_fails_instead_of_hanging(server: FaultServer, tmp_path: Path) -> None:
    fake = FakeTime()
    settings = _settings(tmp_path)

    async def go() -> None:
        async with _client(settings, fake, retry_after_max_s=5.0) as client:
            with pytest.raises(FetchError, match="Retry-After 7s is too long"):
                await client.get_image(f"{server.base}/429-then-ok.jpg")

    asyncio.run(go())


def test_per_host_limit_is_kept_and_used(tmp_path: Path, server: FaultServer) -> None:
    settings = _settings(tmp_path)
    cat = Catalogue(settings.catalogue_path)
    add_canvas(cat, "https://example.org/manifest/busy",
               _one_region_canvases({f"c{i}": f"{server.base}/busy/{i}.jpg" for i in range(12)}))
    started = time.perf_counter()
    report = asyncio.run(fetch_async(cat, settings, FetchOptions(progress=False, per_host=4, global_limit=16)))
    elapsed = time.perf_counter() - started
    assert report.fetched == 12
    assert server.max_in_flight == 4
    assert elapsed < 12 * 0.15  # in parallel, not one at a time
    cat.close()


def test_a_failing_refetch_keeps_what_was_cached(tmp_path: Path, server: FaultServer) -> None:
    settings = _settings(tmp_path)
    cat = Catalogue(settings.catalogue_path)
    mid = add_canvas(cat, "https://example.org/manifest/keep", _one_region_canvases({"a": f"{server.base}/ok/a.jpg"}))
    assert asyncio.run(fetch_async(cat, settings, FetchOptions(progress=False))).fetched == 1
    before = cat.query_one("SELECT * FROM region_image")
    server.down = True
    fake = FakeTime()
    client = _client(settings, fake, retries=1)
    report = asyncio.run(_fetch_and_close(cat, settings, FetchOptions(progress=False, force=True), client))
    assert report.failed == 1
    after = cat.query_one("SELECT * FROM region_image")
    assert dict(after) == dict(before) and Path(after["path"]).is_file()
    assert "HTTP 503" in cat.quarantined("image")[0]["reason"]
    # Once the server is back, the next run succeeds and clears the quarantine row.
    server.down = False
    assert asyncio.run(fetch_async(cat, settings, FetchOptions(progress=False, force=True))).fetched == 1
    assert cat.quarantined("image") == []
    assert cat.regions(mid)[0]["image_path"] == before["path"]  # same pixels, same content address
    cat.close()


def test_decode_rejects_bombs_before_decoding() -> None:
    with pytest.raises(FetchError, match="decompression bomb"):
        decode_image(_bomb(), max_pixels=100_000_000)
    assert decode_image(GOOD, max_pixels=100_000_000).size == (800, 600)


def test_local_files_and_file_urls_crop_like_pillow(tmp_path: Path) -> None:
    if not SCAN.exists():
        pytest.skip(f"test data absent: {SCAN} (../shared/data)")
    settings = _settings(tmp_path)
    cat = Catalogue(settings.catalogue_path)
    with Image.open(SCAN) as im:
        w, h = im.size
        scan = im.convert("RGB")
    box = (129, 1386, 724, 432)  # block_7 of the PAGE file
    canvases = [
        {"uri": "c-file", "width": w, "height": h, "image_url": SCAN.as_uri(), "regions": [("b", *box)]},
        # A canvas twice the scan's size: the region is scaled canvas -> image before cutting.
        {"uri": "c-path", "width": 2 * w, "height": 2 * h, "image_url": str(SCAN),
         "regions": [("b", *(2 * v for v in box))]},
        {"uri": "c-gone", "width": w, "height": h, "image_url": str(tmp_path / "nope.png"), "regions": [("b", *box)]},
    ]
    mid = add_canvas(cat, "https://example.org/manifest/local", canvases)
    report = asyncio.run(fetch_async(cat, settings, FetchOptions(progress=False)))
    assert report.fetched == 2 and report.failed == 1
    x, y, bw, bh = box
    reference = scan.crop((x, y, x + bw, y + bh))  # 724x432: within 1024, short side >= 256: kept as is
    rows = {r["canvas_uri"]: r for r in cat.regions(mid)}
    for uri in ("c-file", "c-path"):
        with Image.open(rows[uri]["image_path"]) as got:
            assert got.size == reference.size
            diff = sum(abs(a - b) for a, b in zip(got.convert("L").tobytes(), reference.convert("L").tobytes()))
            assert diff / (bw * bh) < 3.0
    assert "cannot read" in cat.quarantined("image")[0]["reason"]
    cat.close()
