"""CPU a region image request costs the client: httpx's async client (what ``ivs fetch`` uses) against ingest's
``DocumentLoader`` (urllib3's pool on threads), each with 4 requests at once, next to what decoding, verifying and
re-saving the image costs, so that the client's share of the fetch's CPU is seen. The two clients are
bench/loader.py's, which compares them on ALTO documents.

    .venv/bin/python bench/fetch_client.py [--requests 600] [--rounds 3]

The server is another process on loopback (its CPU is not counted); the body is a 900×700 JPEG of noise (about
460 kB, larger than the 126 kB average region of bench/fetch.py, which favours neither client).

2026-12-04, the shared 2-core CPU, nothing else running, 5 rounds: httpx async 1.29–2.04 ms a request, the
``DocumentLoader`` 1.30–1.71 ms (0.84–1.06×); decode + verify + save 7.2–9.6 ms. For bodies this size the two
clients cost the same (15–18 % of the fetch's CPU): switching ``ivs fetch`` to the loader would gain nothing. A
bare urllib3 pool with no size cap and no streaming took 0.4 ms in an earlier version of this script; the
loader's 2× over httpx on ALTO (bench/loader.py) is a per-request saving that a 460 kB body hides.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import io
import resource
import socket
import subprocess
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
from PIL import Image

AT_ONCE = 4


def body() -> bytes:
    image = Image.effect_noise((900, 700), 60).convert("RGB")
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90)
    return out.getvalue()


def serve(port: int) -> None:
    data = body()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as an image server answers

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _loader_bench():  # the sibling bench script, for its clients
    spec = importlib.util.spec_from_file_location("bench_loader", Path(__file__).with_name("loader.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def process(data: bytes) -> None:
    Image.open(io.BytesIO(data)).verify()
    image = Image.open(io.BytesIO(data))
    image.load()
    image.save(io.BytesIO(), "JPEG", quality=90)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=600)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve(args.serve)
        return
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, __file__, "--serve", str(port)])
    url, data, n = f"http://127.0.0.1:{port}/region.jpg", body(), args.requests
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(url, timeout=1)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "the loopback server did not start"
                time.sleep(0.1)
        print(f"{len(data):,} bytes a request, {n} requests, {AT_ONCE} at once")
        clients = _loader_bench()
        urls = [url] * n
        asyncio.run(clients.with_loader(urls[:20], AT_ONCE))  # warm-up: imports, the server's first answers
        for round_ in range(args.rounds):
            start = cpu_s()
            asyncio.run(clients.with_async_client(urls, AT_ONCE))
            a = (cpu_s() - start) / n * 1000
            start = cpu_s()
            asyncio.run(clients.with_loader(urls, AT_ONCE))
            b = (cpu_s() - start) / n * 1000
            start = cpu_s()
            for _ in range(200):
                process(data)
            c = (cpu_s() - start) / 200 * 1000
            print(f"round {round_ + 1}: CPU a request: httpx async {a:.2f} ms, DocumentLoader {b:.2f} ms "
                  f"({b / a:.2f}x); decode + verify + save {c:.2f} ms (the client's share with httpx "
                  f"{a / (a + c):.0%}, with the loader {b / (b + c):.0%})")
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
