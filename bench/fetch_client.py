"""CPU a region image request costs the client: httpx's async client (what ``ivs fetch`` uses) against urllib3's
pool in threads (what ingest's ``DocumentLoader`` uses), each with 4 requests at once, next to what decoding,
verifying and re-saving the image costs, so that the client's share of the fetch's CPU is seen.

    .venv/bin/python bench/fetch_client.py [--requests 600] [--rounds 3]

The server is another process on loopback (its CPU is not counted); the body is a 900×700 JPEG of noise (about
460 kB, larger than the 126 kB average region of bench/fetch.py, which favours neither client).

2026-12-04, the shared 2-core CPU: httpx async 1.25–1.52 ms a request, urllib3 0.38–0.42 ms (0.25–0.33×);
decode + verify + save 6.7–7.2 ms. Switching ``ivs fetch`` would save about 12 % of its CPU (not done: fetching
waits on the remote servers' politeness limits far more than on this CPU).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import resource
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import urllib3
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


async def with_httpx(url: str, n: int, size: int) -> None:
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=AT_ONCE)) as client:
        gate = asyncio.Semaphore(AT_ONCE)

        async def one() -> None:
            async with gate:
                response = await client.get(url)
                assert len(response.content) == size

        await asyncio.gather(*(one() for _ in range(n)))


def with_urllib3(url: str, n: int, size: int) -> None:
    pool = urllib3.PoolManager(maxsize=AT_ONCE)

    def one(_: int) -> None:
        assert len(pool.request("GET", url).data) == size

    with ThreadPoolExecutor(AT_ONCE) as workers:
        list(workers.map(one, range(n)))


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
        for round_ in range(args.rounds):
            start = cpu_s()
            asyncio.run(with_httpx(url, n, len(data)))
            a = (cpu_s() - start) / n * 1000
            start = cpu_s()
            with_urllib3(url, n, len(data))
            b = (cpu_s() - start) / n * 1000
            start = cpu_s()
            for _ in range(200):
                process(data)
            c = (cpu_s() - start) / 200 * 1000
            print(f"round {round_ + 1}: CPU a request: httpx async {a:.2f} ms, urllib3 threads {b:.2f} ms "
                  f"({b / a:.2f}x); decode + verify + save {c:.2f} ms (the client's share with httpx "
                  f"{a / (a + c):.0%}, with urllib3 {b / (b + c):.0%})")
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
