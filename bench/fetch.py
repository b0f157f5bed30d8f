"""Region-fetch throughput: ``ivs fetch`` (defaults: 4 per host, 16 in all) against a sequential loop that
requests one region at a time over a fresh connection and saves it with Pillow (the paper's way).

Usage: ``python bench/fetch.py [--procs N] [--rounds N] [--repeat K]``. Starts IIPImage behind lighttpd on
loopback (tests/iiif_server.py; needs the Debian packages from scripts/install-test-deps.sh), serving the
scans of ../shared/data/gallicorpora-incunabula and dta-printedbooklayout as pyramid TIFFs, with every
graphical region their layout files mark (``--repeat`` adds shifted copies for a longer run). All sides
request the same URLs; rounds alternate the order. Three ways are timed:

- ``seq``: the paper's loop: ``requests.get`` (a fresh session and connection per region, as the CHR24
  notebooks did), decode with Pillow, resize when the answer is not the wanted size, save as JPEG.
- ``seq-raw``: the same loop writing the server's bytes as they come (no decode, no check): the cheapest a
  one-at-a-time loop can be, so the ratio against it isolates what concurrency alone buys.
- ``ours``: ``ivs fetch`` with its defaults.

Besides regions/s it prints the CPU each side spends per region: the image server (lighttpd and the iipsrv
processes, from /proc) and this process (``time.process_time``). On a machine whose cores the server itself
saturates, ``cores / (server + client CPU per region)`` bounds any client's rate, and the bench prints that
bound next to the measured ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import requests
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from iiif_server import DATA, IIPImageServer, ServerUnavailable, add_canvas, layout_boxes  # noqa: E402

from iiif_visual_search.catalogue import Catalogue  # noqa: E402
from iiif_visual_search.config import Settings  # noqa: E402
from iiif_visual_search.fetch.image_api import Box, SizePolicy, parse_info, plan_region  # noqa: E402
from iiif_visual_search.fetch.run import FetchOptions, fetch_async  # noqa: E402


def scans() -> dict[str, Path]:
    found = {}
    for folder, pattern in (("gallicorpora-incunabula", "*.jpg"), ("dta-printedbooklayout", "*.png")):
        for path in sorted((DATA / folder).glob(pattern)):
            if path.with_suffix(".xml").exists() and layout_boxes(path.with_suffix(".xml")):
                found[path.stem] = path
    return found


def canvases(server: IIPImageServer, images: dict[str, Path], repeat: int) -> list[dict]:
    out = []
    for name, path in images.items():
        with Image.open(path) as im:
            w, h = im.size
        regions = []
        for k in range(repeat):
            for block, x, y, bw, bh in layout_boxes(path.with_suffix(".xml")):
                # Shifted copies are distinct regions (distinct ids and URLs), still inside the page.
                dx, dy = min(k * 7, w - x - bw), min(k * 5, h - y - bh)
                regions.append((f"{block}-{k}", x + max(0, dx), y + max(0, dy), bw, bh))
        out.append({"uri": f"https://bench.example/{name}", "width": w, "height": h,
                    "service": server.service(name), "version": 2, "regions": regions})
    return out


def server_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) of ``pid`` and its children (lighttpd and its iipsrv FastCGI processes)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(entry) == pid or int(fields[1]) == pid:  # fields[1]: the parent's pid
            total += (int(fields[11]) + int(fields[12])) / tick  # utime + stime
    return total


def urls(spec: list[dict]) -> list[tuple[str, tuple[int, int]]]:
    infos = {c["service"]: parse_info(httpx.get(c["service"] + "/info.json").json()) for c in spec}
    out = []
    for c in spec:
        for block, x, y, w, h in c["regions"]:
            plan = plan_region(infos[c["service"]], Box(x, y, w, h), SizePolicy())
            out.append((plan.direct, plan.size))
    return out


def sequential(todo: list[tuple[str, tuple[int, int]]], out: Path, raw: bool = False) -> tuple[int, float]:
    """One request at a time, a new connection each, decode and save: the loop ``ivs fetch`` replaces."""
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    for n, (url, size) in enumerate(todo):
        response = requests.get(url, timeout=60)
        response.raise_for_status()
        if raw:
            (out / f"{n}.jpg").write_bytes(response.content)
            continue
        image = Image.open(io.BytesIO(response.content)).convert("RGB")
        if image.size != size:
            image = image.resize(size, Image.Resampling.LANCZOS)
        image.save(out / f"{n}.jpg", quality=90)
    return len(todo), time.perf_counter() - started


def ours(spec: list[dict], data_dir: Path) -> tuple[int, float, int]:
    settings = Settings(data_dir=data_dir)
    cat = Catalogue(settings.catalogue_path)
    add_canvas(cat, "https://bench.example/manifest", spec)
    started = time.perf_counter()
    report = asyncio.run(fetch_async(cat, settings, FetchOptions(progress=False)))
    elapsed = time.perf_counter() - started
    cat.close()
    if report.failed:
        raise SystemExit(f"ivs fetch failed on {report.failed} regions")
    return report.fetched, elapsed, report.stored_as_is


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--procs", type=int, default=max(4, os.cpu_count() or 1),
                        help="iipsrv FastCGI processes (the server's capacity; default max(4, CPUs))")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=3, help="copies of each layout region (default 3)")
    args = parser.parse_args()
    images = scans()
    if not images:
        raise SystemExit(f"no scans with layout files under {DATA}")
    with tempfile.TemporaryDirectory() as tmp:
        try:
            server = IIPImageServer(Path(tmp) / "iip", images, procs=args.procs).start()
        except ServerUnavailable as exc:
            raise SystemExit(str(exc)) from None
        try:
            spec = canvases(server, images, args.repeat)
            todo = urls(spec)
            total = len(todo)
            print(f"{len(images)} scans, {total} regions, IIPImage with {args.procs} FastCGI processes, "
                  f"{os.cpu_count()} CPUs, load average before {os.getloadavg()[0]:.1f}")
            sequential(todo[:5], Path(tmp) / "warm")  # the server opens each file once per process
            ways = ("seq", "seq-raw", "ours")
            rates: dict[str, list[float]] = {w: [] for w in ways}
            cpu: dict[str, list[tuple[float, float]]] = {w: [] for w in ways}
            assert server._proc is not None  # lighttpd: its children are the iipsrv processes
            for r in range(args.rounds):
                order = ways[r % 3:] + ways[:r % 3]
                for which in order:
                    before_server, before_us = server_cpu_s(server._proc.pid), time.process_time()
                    note = ""
                    if which == "ours":
                        n, s, as_is = ours(spec, Path(tmp) / f"ours{r}")
                        note = f" ({as_is} stored as the server sent them)"
                    else:
                        n, s = sequential(todo, Path(tmp) / f"{which}{r}", raw=which == "seq-raw")
                    server_s, us_s = server_cpu_s(server._proc.pid) - before_server, time.process_time() - before_us
                    rates[which].append(n / s)
                    cpu[which].append((1000 * server_s / n, 1000 * us_s / n))
                    print(f"  round {r + 1} {which:>7}: {n} regions in {s:.2f}s = {n / s:5.1f} regions/s; CPU per "
                          f"region: server {1000 * server_s / n:.1f} ms, client {1000 * us_s / n:.1f} ms{note}")
        finally:
            server.stop()
    med = {w: statistics.median(v) for w, v in rates.items()}
    srv = {w: statistics.median(c[0] for c in v) for w, v in cpu.items()}
    cli = {w: statistics.median(c[1] for c in v) for w, v in cpu.items()}
    cores = os.cpu_count() or 1
    for w in ways:
        print(f"{w:>7}: {med[w]:5.1f} regions/s (median of {args.rounds}); CPU per region: server {srv[w]:.1f} ms, "
              f"client {cli[w]:.1f} ms")
    bound = 1000 * cores / (srv["ours"] + cli["ours"])
    print(f"CPU bound for ours on {cores} cores with nothing else running: {bound:.0f} regions/s = "
          f"{bound / med['seq']:.1f}x the paper's loop")
    print(f"speed-up: {med['ours'] / med['seq']:.1f}x over the paper's loop (seq), "
          f"{med['ours'] / med['seq-raw']:.1f}x over the raw-bytes loop (seq-raw)")


if __name__ == "__main__":
    main()
