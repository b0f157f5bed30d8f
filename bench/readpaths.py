"""Read paths in-process at two or more collection sizes: the cost of each request and how it grows.

    nice -n 19 .venv/bin/python bench/scale.py --sizes 10000 100000 --keep --workdir /tmp/ivs-scale
    nice -n 19 .venv/bin/python bench/readpaths.py /tmp/ivs-scale/ivs-scale-10000-*/data \\
        /tmp/ivs-scale/ivs-scale-100000-*/data

    # a larger size without ingesting it: the kept 100k collection copied ten times (new ids), text index rebuilt
    nice -n 19 .venv/bin/python bench/readpaths.py --grow /tmp/ivs-scale/ivs-scale-100000-*/data 1000000 /tmp/ivs-1m

Takes data directories kept by ``bench/scale.py --keep`` (any sizes, smallest first). For each, the service
runs in this process (Starlette app, httpx ASGI transport: no sockets, so load on a shared machine blurs it
less than ``scale.py``'s HTTP numbers), every query set is asked once to warm the caches the service keeps
(postings of common words, manifest labels, counts), then timed. Beside the service's read paths, the
statements the service ran per request before it followed the change log and ranked common words from
impact-ordered postings are timed on the same data ("was:" rows), so the growth of both is printed by one
process: the cost at each size, the ratio largest/smallest and the exponent k (cost ∝ N^k).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import random
import sqlite3
import statistics
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

MODEL = "bench-768"


def _scale_module():  # noqa: ANN202 - the sibling bench script, for its vocabulary
    spec = importlib.util.spec_from_file_location("bench_scale", Path(__file__).with_name("scale.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _ms(fn: Callable[[int], object], n: int) -> tuple[float, float]:
    for i in range(n):  # warm: what the service caches is cached before timing, as in steady serving
        fn(i)
    times = []
    for i in range(n):
        t0 = time.perf_counter()
        fn(i)
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times), float(np.percentile(times, 99))


def measure(data_dir: Path, n: int) -> tuple[int, dict[str, tuple[float, float]]]:
    import httpx

    from iiif_visual_search.config import load_settings
    from iiif_visual_search.web.app import create_app

    base = "http://bench"
    app = create_app(load_settings(data_dir=data_dir, base_url=base))
    words = _scale_module().vocabulary()
    common, rare = words[:20], words[2000:2000 + n]
    cat = sqlite3.connect(f"file:{data_dir / 'catalogue.sqlite'}?mode=ro", uri=True)
    text = sqlite3.connect(f"file:{data_dir / 'text-index.sqlite'}?mode=ro", uri=True)
    regions = int(cat.execute("SELECT COUNT(*) FROM region WHERE deleted=0").fetchone()[0])
    rng = random.Random(1)
    canvases = cat.execute("SELECT manifest_id, position FROM canvas WHERE position >= 0").fetchall()
    region_ids = [r[0] for r in cat.execute("SELECT id FROM region ORDER BY rowid")]
    manifest_urls = [r[0] for r in cat.execute("SELECT url FROM manifest")]
    picked_canvases = [rng.choice(canvases) for _ in range(n)]
    picked_regions = [rng.choice(region_ids) for _ in range(n)]
    out: dict[str, tuple[float, float]] = {}

    async def run() -> None:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base) as client:
            async def get(path: str, params: dict | None = None) -> None:
                r = await client.get(path, params=params)
                if r.status_code != 200:
                    raise RuntimeError(f"{path} {params}: HTTP {r.status_code} {r.text[:200]}")

            await client.get("/search/2", params={"q": common[0]})  # starts the background load of common words
            for thread in threading.enumerate():  # timed after it, as in steady serving
                if thread.name == "text-index-warm":
                    thread.join()
            ann = (await client.get("/annotations")).json()
            act = (await client.get("/activity")).json()
            paths: dict[str, Callable[[int], object]] = {
                "search, rare word": lambda i: get("/search/2", {"q": rare[i % len(rare)]}),
                "search, common word": lambda i: get("/search/2", {"q": common[i % 20]}),
                "search, two common words": lambda i: get("/search/2", {"q": f"{common[i % 20]} {common[(i + 3) % 20]}"}),
                "search, common word, page 5": lambda i: get("/search/2", {"q": common[i % 20], "page": "5"}),
                "region page": lambda i: get(f"/iiif/{picked_canvases[i][0]}/canvas/{picked_canvases[i][1]}/regions"),
                "/annotations": lambda i: get("/annotations"),
                "/annotations first page": lambda i: get(ann["first"]["id"].removeprefix(base)),
                "/annotations last page": lambda i: get(ann["last"]["id"].removeprefix(base)),
                "/activity first page": lambda i: get(act["first"]["id"].removeprefix(base)),
                "/health": lambda i: get("/health"),
            }
            if (data_dir / "vectors" / MODEL).is_dir():
                paths["similar by id"] = lambda i: get(f"/similar/{picked_regions[i]}", {"model": MODEL, "k": 20})
            for name, fn in paths.items():
                for i in range(n):  # warm
                    await fn(i)
                times = []
                for i in range(n):
                    t0 = time.perf_counter()
                    await fn(i)
                    times.append((time.perf_counter() - t0) * 1000)
                out[name] = (statistics.median(times), float(np.percentile(times, 99)))

    asyncio.run(run())
    # What each request ran before (per request, on the same data).
    out["was: live region count"] = _ms(
        lambda i: cat.execute("SELECT COUNT(*) FROM region WHERE deleted=0").fetchone(), min(n, 20))
    out["was: every manifest's label version"] = _ms(
        lambda i: cat.execute("SELECT id, fetched_at FROM manifest WHERE status='ok'").fetchall(), n)
    out["was: manifest by url (scan)"] = _ms(
        lambda i: cat.execute("SELECT id FROM manifest NOT INDEXED WHERE url=?",
                              (manifest_urls[i % len(manifest_urls)],)).fetchone(), n)
    out["was: document frequency, common word"] = _ms(
        lambda i: text.execute("SELECT doc FROM vocab_col WHERE term=? AND col='text'", (common[i % 20],)).fetchone(),
        min(n, 20))
    out["was: two common words, every match ranked"] = _ms(lambda i: _full_rank(app, common[i % 20],
                                                                                 common[(i + 3) % 20]), n)
    cat.close()
    text.close()
    return regions, out


def _full_rank(app, a: str, b: str) -> None:  # noqa: ANN001 - the Starlette app
    """Two words ranked the way the service did before: intersect every posting, score every match, sort."""
    index = app.state.ivs.text
    hot = index._hot_index()
    lists = sorted((hot.postings(index._conn(), w) for w in (a, b)), key=lambda p: len(p.rows))
    rows = np.intersect1d(lists[0].rows, lists[1].rows, assume_unique=True)
    score = np.zeros(len(rows))
    for plist in lists:
        score += plist.score[np.searchsorted(plist.rows, rows)]
    want = min(len(rows), 50)
    if want:
        top = np.argpartition(-score, want - 1)[:want]
        top[np.lexsort((rows[top], -score[top]))]


def grow(source: Path, regions: int, dest: Path) -> None:
    """``dest``: ``source``'s catalogue with its books copied (new ids, same texts) until it holds ``regions``
    regions, each copy logged as created, and its text index built. No vectors: find-similar is left out."""
    import shutil

    from iiif_visual_search.catalogue import Catalogue
    from iiif_visual_search.index.text import open_text_index

    dest.mkdir(parents=True)
    shutil.copyfile(source / "catalogue.sqlite", dest / "catalogue.sqlite")
    cat = Catalogue(dest / "catalogue.sqlite")
    have = int(cat.query_one("SELECT COUNT(*) AS n FROM region")["n"])
    last = int(cat.query_one("SELECT MAX(seq) AS n FROM region")["n"])
    t0 = time.perf_counter()
    for copy in range(1, -(-regions // have)):
        suffix = f"-{copy}"
        with cat.transaction() as conn:
            conn.execute("""INSERT INTO manifest(id, uri, url, version, label, metadata, rights, required_statement,
                                homepage, raw, content_hash, fetched_at, status, error)
                            SELECT id || ?1, uri || '#' || ?1, url || '#' || ?1, version, label, metadata, rights,
                                required_statement, homepage, raw, content_hash, fetched_at, status, error
                            FROM manifest WHERE id NOT LIKE '%-%'""", (suffix,))
            conn.execute("""INSERT INTO canvas SELECT id || ?1, manifest_id || ?1, uri, position, label, width, height,
                                image_url, image_width, image_height, image_service, image_service_version,
                                image_service_profile, image_service_level, layout_url, layout_format, layout_hash,
                                layout_status, physical_scale FROM canvas WHERE id NOT LIKE '%-%'""", (suffix,))
            limit = min(have, regions - copy * have)
            conn.execute("""INSERT INTO region(id, canvas_id, manifest_id, x, y, w, h, source_block_id, block_type,
                                context_before, context_after, caption, flags, created_at, updated_at, deleted, seq)
                            SELECT id || ?1, canvas_id || ?1, manifest_id || ?1, x, y, w, h, source_block_id,
                                block_type, context_before, context_after, caption, flags, created_at, updated_at,
                                deleted, seq + ?2 FROM region WHERE id NOT LIKE '%-%' ORDER BY seq LIMIT ?3""",
                         (suffix, copy * last, limit))
            conn.execute("""INSERT INTO change(kind, object_type, object_id, at)
                            SELECT 'create', 'region', id, created_at FROM region WHERE id LIKE '%' || ?1
                            ORDER BY seq""", (suffix,))
        print(f"  copy {copy}: {int(cat.query_one('SELECT COUNT(*) AS n FROM region')['n']):,} regions "
              f"({time.perf_counter() - t0:.0f} s)", flush=True)
    t0 = time.perf_counter()
    n = open_text_index(dest).rebuild(cat)
    print(f"  text index: {n:,} regions in {time.perf_counter() - t0:.0f} s", flush=True)
    cat.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("data_dirs", type=Path, nargs="*", help="data directories kept by bench/scale.py --keep")
    ap.add_argument("--requests", type=int, default=60, help="per read path and size")
    ap.add_argument("--grow", nargs=3, metavar=("SOURCE", "REGIONS", "DEST"),
                    help="copy SOURCE's books into a new data dir DEST until it holds REGIONS regions, and stop")
    args = ap.parse_args()
    if args.grow:
        grow(Path(args.grow[0]), int(args.grow[1]), Path(args.grow[2]))
        return
    results = []
    for data_dir in args.data_dirs:
        regions, costs = measure(data_dir, args.requests)
        print(f"{regions:,} regions: {data_dir}", flush=True)
        results.append((regions, costs))
    results.sort(key=lambda r: r[0])
    ns = [r for r, _ in results]
    head = f"{'p50 ms (p99)':<44}" + "".join(f"{n:>18,}" for n in ns) + f"{'ratio':>8}{'k':>7}"
    print("\n" + head)
    for name in results[0][1]:
        if any(name not in c for _, c in results):
            continue
        values = [c[name] for _, c in results]
        p50s = [v[0] for v in values]
        k = float(np.polyfit(np.log(ns), np.log(p50s), 1)[0]) if len(ns) > 1 and min(p50s) > 0 else float("nan")
        cells = "".join(f"{f'{p50:.2f} ({p99:.1f})':>18}" for p50, p99 in values)
        print(f"{name:<44}{cells}{p50s[-1] / p50s[0]:8.2f}{k:7.2f}")
    print(f"ratio: p50 at {ns[-1]:,} over p50 at {ns[0]:,}; k: p50 ∝ N^k (a ratio of 1 is k = 0: flat)")


if __name__ == "__main__":
    main()
