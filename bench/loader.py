"""Document fetching for ingest: ``DocumentLoader`` (urllib3's pool on threads) against httpx's blocking client
on the same threads (the loader until 2026-12-03) and httpx's async client (before that), each doing the same
streamed, size-capped GETs, on bench/scale.py's loopback server, in one process.

    .venv/bin/python bench/loader.py [--documents 2000] [--rounds 3]

Each round fetches the same ALTO pages with both, alternating which goes first. Prints documents/s and CPU
milliseconds a document (this process: the loopback server's thread included, the same for all, its pages
drawn beforehand), and the ratios of the loader to each of the others.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import importlib.util
import statistics
import time
from pathlib import Path

import httpx

from iiif_visual_search.loader import DocumentLoader

MAX_BYTES = 50_000_000


def _scale():  # noqa: ANN202 - the sibling bench script, for its collection and server
    spec = importlib.util.spec_from_file_location("bench_scale", Path(__file__).with_name("scale.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def with_loader(urls: list[str], concurrency: int) -> None:
    async with DocumentLoader(user_agent="bench", max_bytes=MAX_BYTES, concurrency=concurrency) as loader:
        await asyncio.gather(*(loader.load(u) for u in urls))


async def with_httpx_threads(urls: list[str], concurrency: int) -> None:
    """The loader before urllib3: httpx.Client on ``concurrency`` threads, the body streamed and capped."""
    from concurrent.futures import ThreadPoolExecutor

    with httpx.Client(limits=httpx.Limits(max_connections=concurrency)) as client, \
            ThreadPoolExecutor(concurrency) as threads:
        def one(url: str) -> bytes:
            with client.stream("GET", url) as response:
                response.raise_for_status()
                chunks, total = [], 0
                for chunk in response.iter_bytes():
                    total += len(chunk)
                    if total > MAX_BYTES:
                        raise ValueError("too large")
                    chunks.append(chunk)
                return b"".join(chunks)
        loop = asyncio.get_running_loop()
        await asyncio.gather(*(loop.run_in_executor(threads, one, u) for u in urls))


async def with_async_client(urls: list[str], concurrency: int) -> None:
    """What the loader did before: httpx.AsyncClient, a semaphore, the body streamed and capped."""
    semaphore = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=concurrency)) as client:
        async def one(url: str) -> bytes:
            async with semaphore, client.stream("GET", url) as response:
                response.raise_for_status()
                chunks, total = [], 0
                async for chunk in response.aiter_bytes():
                    total += len(chunk)
                    if total > MAX_BYTES:
                        raise ValueError("too large")
                    chunks.append(chunk)
                return b"".join(chunks)
        await asyncio.gather(*(one(u) for u in urls))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    scale = _scale()
    pages_per_book = 100
    server, col = scale.serve_collection(
        lambda base: scale.Collection(args.documents * 6, pages_per_book, 6, base))
    # Each page's ALTO drawn once, before timing: the server shares this process, and drawing it on every
    # request (as bench/scale.py does) would be most of what is timed.
    col.alto = functools.lru_cache(maxsize=None)(col.alto)
    urls = [f"{col.base}/b{i // pages_per_book}/alto/{i % pages_per_book}.xml" for i in range(args.documents)]
    for i in range(args.documents):
        col.alto(i // pages_per_book, i % pages_per_book)
    ways = {"DocumentLoader": with_loader, "httpx.Client": with_httpx_threads, "httpx.AsyncClient": with_async_client}
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in ways}
    try:
        asyncio.run(with_loader(urls[:50], args.concurrency))  # warm-up: imports, the server's first answers
        for r in range(args.rounds):
            for name in (list(ways) if r % 2 == 0 else list(ways)[::-1]):
                wall, cpu = time.perf_counter(), time.process_time()
                asyncio.run(ways[name](urls, args.concurrency))
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                results[name].append((len(urls) / wall, cpu * 1000 / len(urls)))
                print(f"round {r + 1} {name:18} {len(urls) / wall:6.0f} documents/s  "
                      f"{cpu * 1000 / len(urls):.2f} ms CPU a document", flush=True)
    finally:
        server.shutdown()
    rate = {n: statistics.median(v[0] for v in results[n]) for n in ways}
    cpu = {n: statistics.median(v[1] for v in results[n]) for n in ways}
    for name in ways:
        versus = "" if name == "DocumentLoader" else (
            f"   loader/this: rate {rate['DocumentLoader'] / rate[name]:.2f}×, "
            f"CPU {cpu['DocumentLoader'] / cpu[name]:.2f}×")
        print(f"median {name:18} {rate[name]:6.0f} documents/s  {cpu[name]:.2f} ms CPU a document{versus}")


if __name__ == "__main__":
    main()
