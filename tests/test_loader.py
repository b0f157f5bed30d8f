"""DocumentLoader against a real HTTP server on loopback: what it sends, and the words of each way a GET fails."""

from __future__ import annotations

import asyncio
import gzip
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from iiif_visual_search.fetch import client
from iiif_visual_search.loader import (
    MAX_REDIRECTS,
    DocumentLoader,
    LoadError,
    local_path,
)

ALTO = b'<?xml version="1.0"?><alto xmlns="http://www.loc.gov/standards/alto/ns-v4#"/>'
seen: dict[str, dict[str, str]] = {}
calls: dict[str, int] = {}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def _send(self, status: int, body: bytes = b"", **headers: str) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        seen[self.path] = {k.lower(): v for k, v in self.headers.items()}
        calls[self.path] = calls.get(self.path, 0) + 1
        if self.path in ("/page.xml", "http://books.invalid/page.xml"):  # the latter asked of a proxy
            self._send(200, ALTO)
        elif self.path == "/moved.xml":
            self._send(302, Location="/page.xml")
        elif self.path == "/loop.xml":
            self._send(302, Location="/loop.xml")
        elif self.path == "/compressed.xml":
            self._send(200, gzip.compress(ALTO), Content_Encoding="gzip")
        elif self.path == "/bomb.xml":  # 40 KB on the wire, 40 MB once decoded
            self._send(200, gzip.compress(b" " * 40_000_000), Content_Encoding="gzip")
        elif self.path == "/hangs-up.xml":
            self.connection.shutdown(socket.SHUT_RDWR)
        elif self.path == "/busy.xml":
            self._send(503, Retry_After="0")
        else:
            self._send(404)


@pytest.fixture(scope="module")
def base() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def load(url: str, max_bytes: int = 1_000_000) -> bytes:
    async def run() -> bytes:
        async with DocumentLoader(user_agent="ivs-test/1", max_bytes=max_bytes, timeout_s=5, retries=1) as loader:
            return await loader.load(url)
    return asyncio.run(run())


def test_a_document_comes_with_our_user_agent_and_compressed_if_the_server_likes(base: str) -> None:
    assert load(f"{base}/page.xml") == ALTO
    assert seen["/page.xml"]["user-agent"] == "ivs-test/1"
    assert "gzip" in seen["/page.xml"]["accept-encoding"]
    assert load(f"{base}/compressed.xml") == ALTO


def test_redirects_are_followed_and_a_loop_is_a_reason(base: str) -> None:
    assert load(f"{base}/moved.xml") == ALTO
    with pytest.raises(LoadError, match=f"more than {MAX_REDIRECTS} redirects from {base}/loop.xml"):
        load(f"{base}/loop.xml")


def test_the_size_limit_holds_for_what_a_compressed_body_becomes(base: str) -> None:
    with pytest.raises(LoadError, match="larger than the limit of 1000000 bytes"):
        load(f"{base}/bomb.xml")


def test_a_refused_connection_says_so_in_the_systems_words(base: str) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(LoadError) as failure:
        load(f"http://127.0.0.1:{port}/page.xml")
    reason = str(failure.value)
    assert reason.startswith("cannot connect to 127.0.0.1: [Errno 111] Connection refused")
    assert "object at 0x" not in reason and "HTTPConnection" not in reason  # stable words for quarantine


def test_a_broken_connection_and_a_busy_server_are_tried_again_then_named(base: str) -> None:
    with pytest.raises(LoadError, match=f"connection broke reading {base}/hangs-up.xml"):
        load(f"{base}/hangs-up.xml")
    assert calls["/hangs-up.xml"] == 2  # retries=1
    with pytest.raises(LoadError, match="HTTP 503 from 127.0.0.1"):
        load(f"{base}/busy.xml")
    assert calls["/busy.xml"] == 2
    with pytest.raises(LoadError, match=f"HTTP 404 for {base}/missing.xml"):
        load(f"{base}/missing.xml")
    assert calls["/missing.xml"] == 1  # a 404 is an answer, not worth asking again


def test_tls_spoken_to_a_plain_server_is_final_not_retried(base: str) -> None:
    port = base.rsplit(":", 1)[1]
    before = sum(calls.values())
    with pytest.raises(LoadError, match="cannot connect securely to 127.0.0.1"):
        load(f"https://127.0.0.1:{port}/page.xml")
    assert sum(calls.values()) == before  # no HTTP request reached it, and no second try


def test_the_proxy_of_the_environment_is_used_unless_no_proxy_names_the_host(
        base: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "HTTP_PROXY", "no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", base)
    assert load("http://books.invalid/page.xml") == ALTO  # asked of the proxy, in absolute form
    assert calls["http://books.invalid/page.xml"] == 1
    monkeypatch.setenv("NO_PROXY", "books.invalid")
    with pytest.raises(LoadError, match="cannot connect to books.invalid"):
        load("http://books.invalid/page.xml")  # straight to a host that does not exist
    assert calls["http://books.invalid/page.xml"] == 1


def test_a_proxy_without_a_scheme_is_http_and_a_socks_proxy_is_named_and_skipped(
        base: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", base.removeprefix("http://"))  # host:port, as curl takes it
    monkeypatch.setenv("HTTPS_PROXY", "socks5://127.0.0.1:1080")
    assert load("http://books.invalid/page.xml") == ALTO
    assert "ignoring the https proxy socks5://127.0.0.1:1080" in caplog.text


def test_a_reference_names_a_local_file_only_as_a_path_or_a_file_url() -> None:
    """One rule for layout files and region images (the fetch client once had its own, looser copy that took
    any one-letter scheme for a drive letter)."""
    assert client.local_path is local_path
    assert local_path("file:///data/a%20b/p1.xml") == Path("/data/a b/p1.xml")
    assert local_path("alto/p1.xml") == Path("alto/p1.xml") and local_path("/abs/p1.jpg") == Path("/abs/p1.jpg")
    assert local_path("C:\\scans\\p1.jpg") == Path("C:\\scans\\p1.jpg")
    for remote in ("https://example.org/p1.xml", "http://example.org/p1.jpg", "data:image/png;base64,AAAA",
                   "x:p1.jpg", "ftp://example.org/p1.jpg"):
        assert local_path(remote) is None, remote
