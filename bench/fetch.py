"""Region-fetch throughput: ``ivs fetch`` (defaults: 4 per host, 16 in all) against a sequential loop that
requests one region at a time over a fresh connection and saves it with Pillow (the paper's way).

Usage: ``python bench/fetch.py [--procs N] [--rounds N] [--repeat K]``. Starts IIPImage behind lighttpd on
loopback (tests/iiif_server.py; needs the Debian packages from scripts/install-test-deps.sh), serving the
scans of ../shared/data/gallicorpora-incunabula and dta-printedbooklayout as pyramid TIFFs, with every
graphical region their layout files mark (``--repeat`` adds shifted copies for a longer run). Both sides
request the same URLs and write JPEG files; rounds alternate which goes first. Prints regions/s and the ratio.
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


def sequential(server: IIPImageServer, spec: list[dict], out: Path) -> tuple[int, float]:
    """One request at a time, a new connection each, decode and save: the loop ``ivs fetch`` replaces."""
    out.mkdir(parents=True, exist_ok=True)
    infos = {c["service"]: parse_info(httpx.get(c["service"] + "/info.json").json()) for c in spec}
    started = time.perf_counter()
    n = 0
    for c in spec:
        info = infos[c["service"]]
        for block, x, y, w, h in c["regions"]:
            plan = plan_region(info, Box(x, y, w, h), SizePolicy())
            response = httpx.get(plan.direct, timeout=60)
            response.raise_for_status()
            image = Image.open(io.BytesIO(response.content)).convert("RGB")
            if image.size != plan.size:
                image = image.resize(plan.size, Image.Resampling.LANCZOS)
            image.save(out / f"{n}.jpg", quality=90)
            n += 1
    return n, time.perf_counter() - started


def ours(spec: list[dict], data_dir: Path) -> tuple[int, float]:
    settings = Settings(data_dir=data_dir)
    cat = Catalogue(settings.catalogue_path)
    add_canvas(cat, "https://bench.example/manifest", spec)
    started = time.perf_counter()
    report = asyncio.run(fetch_async(cat, settings, FetchOptions(progress=False)))
    elapsed = time.perf_counter() - started
    cat.close()
    if report.failed:
        raise SystemExit(f"ivs fetch failed on {report.failed} regions")
    return report.fetched, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--procs", type=int, default=max(4, os.cpu_count() or 1),
                        help="iipsrv FastCGI processes (the server's capacity; default max(4, CPUs))")
    parser.add_argument("--rounds", type=int, default=2)
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
            total = sum(len(c["regions"]) for c in spec)
            print(f"{len(images)} scans, {total} regions, IIPImage with {args.procs} FastCGI processes, "
                  f"{os.cpu_count()} CPUs")
            seq_rates, our_rates = [], []
            for r in range(args.rounds):
                order = ("seq", "ours") if r % 2 == 0 else ("ours", "seq")
                for which in order:
                    if which == "seq":
                        n, s = sequential(server, spec, Path(tmp) / f"seq{r}")
                        seq_rates.append(n / s)
                    else:
                        n, s = ours(spec, Path(tmp) / f"ours{r}")
                        our_rates.append(n / s)
                    print(f"  round {r + 1} {which:>4}: {n} regions in {s:.2f}s = {n / s:.1f} regions/s")
        finally:
            server.stop()
    seq, our = statistics.median(seq_rates), statistics.median(our_rates)
    print(f"sequential loop: {seq:.1f} regions/s; ivs fetch: {our:.1f} regions/s; speed-up {our / seq:.1f}x")


if __name__ == "__main__":
    main()
