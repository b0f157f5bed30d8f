"""National scale on one machine: every cost of a synthetic collection at growing sizes, with a growth table.

    nice -n 19 .venv/bin/python bench/scale.py                        # 10k, 100k and 1M regions
    nice -n 19 .venv/bin/python bench/scale.py --sizes 2000 10000     # small
    nice -n 19 .venv/bin/python bench/scale.py --sizes 1000000 --out bench/scale-out   # adds a row
    .venv/bin/python bench/scale.py --serve-only --out bench/scale-out   # read paths again, on --keep'd data
    .venv/bin/python bench/scale.py --ingest-only --sizes 30000 120000 --rounds 3   # ingest pages/s only

Each size gets a fresh data directory. The collection (synthetic; fixed seed):
- books of ``--pages-per-book`` pages, ``--regions-per-page`` pictures a page, as IIIF Presentation 3
  manifests in one collection, each page's ALTO 4 file linked through ``seeAlso``, all generated on request
  by an HTTP server on loopback (so ingest reads them as it reads a library's). Each page's image is a JPEG
  drawn on request (nothing here fetches them: the cost measured is the catalogue's and the service's);
- ALTO text: words of the real ALTO pages of ../shared/data drawn with Zipf frequencies (rank^-1.1), so some
  words are in nearly every text and most in very few, as in a real OCR vocabulary;
- 768-d vectors with the structure of ``bench/index.py`` (a Gaussian mixture with a power-law spectrum,
  log-normal cluster sizes; one cluster per 100 regions), stored under a synthetic model ``bench-768`` and
  indexed by ``ivs index`` (the kind chosen by size and memory, efSearch calibrated for recall@10 0.99).

Measured at each size: ``ivs ingest`` pages/s; catalogue, text index and vector index bytes per region;
``ivs index`` time (index build); text index build; ``ivs status`` time; then ``ivs serve`` in a subprocess,
once the work it starts in the background (postings of the most frequent words) is done and every query set
has been asked once untimed (steady serving: a memory-mapped index is read in by its first queries):
HTTP p50/p99 with one client and with 8 of find-similar by region id and by vector, Content Search with a
rare and a common word, a canvas's region page, the first and last ``/annotations`` and ``/activity`` pages,
and the server's RSS afterwards. Results go to ``OUT/scale-<N>.json`` (one file per size, so a later run can
add a size), and the table printed covers every size in ``OUT``: each cost with its growth exponent k
(cost ∝ N^k, least squares over log-log), and 10M and 100M columns extrapolated from k. The plot is
``OUT/scale.png``.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import io
import json
import os
import platform
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "data"
MODEL = "bench-768"
DIM = 768
PAGE_W, PAGE_H = 2000, 3000


def _bench_module(name: str):  # noqa: ANN202 - a sibling bench script as a module
    spec = importlib.util.spec_from_file_location(f"bench_{name}", Path(__file__).with_name(f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- the collection, served on loopback ---------------------------------------------------------------------


@lru_cache(maxsize=1)
def vocabulary() -> list[str]:
    """Distinct words of the shared ALTO pages (3+ letters), most frequent first."""
    from collections import Counter

    pages = _bench_module("serve").alto_pages(SHARED) if SHARED.is_dir() else []
    counts = Counter(w.strip(".,;:!?()\"'").lower() for page in pages for w in page)
    words = [w for w, _ in counts.most_common() if len(w) >= 3 and w.isalpha()]
    if len(words) < 500:  # no shared data: pronounceable made-up words
        rng = random.Random(0)
        words = ["".join(rng.choice("bcdfghklmnprstv") + rng.choice("aeiou") for _ in range(rng.randint(2, 4)))
                 for _ in range(20_000)]
    return list(dict.fromkeys(words))


class Collection:
    """Deterministic books: manifest ``b``, page ``p`` and its ALTO come from (b, p) alone."""

    def __init__(self, regions: int, pages_per_book: int, regions_per_page: int, base: str) -> None:
        self.regions, self.ppb, self.rpp, self.base = regions, pages_per_book, regions_per_page, base
        self.pages = -(-regions // regions_per_page)
        self.books = -(-self.pages // pages_per_book)
        words = vocabulary()
        weights = 1.0 / np.arange(1, len(words) + 1) ** 1.1
        self.words, self.cdf = words, np.cumsum(weights / weights.sum())

    def pages_of(self, book: int) -> int:
        return min(self.ppb, self.pages - book * self.ppb)

    def collection(self) -> dict:
        return {"@context": "http://iiif.io/api/presentation/3/context.json", "id": f"{self.base}/collection.json",
                "type": "Collection", "label": {"en": ["Synthetic books"]},
                "items": [{"id": f"{self.base}/b{b}/manifest.json", "type": "Manifest",
                           "label": {"en": [f"Book {b}"]}} for b in range(self.books)]}

    def manifest(self, b: int) -> dict:
        items = []
        for p in range(self.pages_of(b)):
            canvas = f"{self.base}/b{b}/canvas/{p}"
            items.append({
                "id": canvas, "type": "Canvas", "width": PAGE_W, "height": PAGE_H,
                "label": {"none": [str(p + 1)]},
                "items": [{"id": f"{canvas}/page", "type": "AnnotationPage", "items": [{
                    "id": f"{canvas}/image", "type": "Annotation", "motivation": "painting", "target": canvas,
                    "body": {"id": f"{self.base}/b{b}/image/{p}.jpg", "type": "Image", "format": "image/jpeg",
                             "width": PAGE_W // 4, "height": PAGE_H // 4}}]}],
                "seeAlso": [{"id": f"{self.base}/b{b}/alto/{p}.xml", "type": "Dataset", "format": "application/xml",
                             "profile": "http://www.loc.gov/standards/alto/ns-v4#"}],
            })
        return {"@context": "http://iiif.io/api/presentation/3/context.json", "id": f"{self.base}/b{b}/manifest.json",
                "type": "Manifest", "label": {"en": [f"Book {b}"]}, "items": items}

    def _text(self, rng: np.random.Generator, n: int) -> str:
        idx = np.minimum(np.searchsorted(self.cdf, rng.random(n)), len(self.words) - 1)
        return " ".join(self.words[i] for i in idx)

    def alto(self, b: int, p: int) -> str:
        page = b * self.ppb + p
        n = min(self.rpp, self.regions - page * self.rpp)
        rng = np.random.default_rng([7, b, p])
        blocks, y, step = [], 100, (PAGE_H - 200) // max(n, 1)
        for i in range(n):
            words = self._text(rng, 25).split()
            strings = "".join(f'<String CONTENT="{escape(w)}" HPOS="{100 + 60 * j}" VPOS="{y}" WIDTH="50" HEIGHT="30"/>'
                              for j, w in enumerate(words))
            blocks.append(f'<TextBlock ID="t{i}" HPOS="100" VPOS="{y}" WIDTH="1800" HEIGHT="60">'
                          f'<TextLine HPOS="100" VPOS="{y}" WIDTH="1800" HEIGHT="30">{strings}</TextLine></TextBlock>')
            h = max(80, step - 120)
            blocks.append(f'<Illustration ID="i{i}" HPOS="{200 + 40 * i}" VPOS="{y + 70}" WIDTH="{900 + 20 * i}" '
                          f'HEIGHT="{h}"/>')
            y += step
        return ('<?xml version="1.0" encoding="UTF-8"?>'
                '<alto xmlns="http://www.loc.gov/standards/alto/ns-v4#"><Description>'
                '<MeasurementUnit>pixel</MeasurementUnit></Description><Layout>'
                f'<Page ID="p{p}" WIDTH="{PAGE_W}" HEIGHT="{PAGE_H}" PHYSICAL_IMG_NR="{p + 1}">'
                f'<PrintSpace HPOS="0" VPOS="0" WIDTH="{PAGE_W}" HEIGHT="{PAGE_H}">{"".join(blocks)}</PrintSpace>'
                '</Page></Layout></alto>')

    @staticmethod
    def image(b: int, p: int) -> bytes:
        from PIL import Image, ImageDraw

        im = Image.new("L", (PAGE_W // 4, PAGE_H // 4), 235)
        draw = ImageDraw.Draw(im)
        rng = random.Random(b * 100_003 + p)
        for _ in range(12):
            x, y = rng.randrange(im.width - 60), rng.randrange(im.height - 60)
            draw.rectangle((x, y, x + rng.randrange(20, 60), y + rng.randrange(20, 60)), fill=rng.randrange(80))
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=80)
        return buf.getvalue()


def serve_collection(col_factory) -> tuple[ThreadingHTTPServer, Collection]:  # noqa: ANN001
    """An HTTP server on a free loopback port, in a thread, answering from ``col_factory(base)``."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    col = col_factory(f"http://127.0.0.1:{server.server_port}")

    class Handler(BaseHTTPRequestHandler):
        # Keep-alive with Nagle off, as IIIF servers behind nginx or a CDN answer: HTTP/1.0 closed every
        # connection after one document, and keep-alive with Nagle on stalled each reply 40 ms on delayed ACKs
        # (a fetch of the ALTO alone: 401 documents/s closing, 167 stalled, 442 as now).
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802 - the http.server interface
            path = self.path.split("?")[0]
            body, ctype = None, "application/json"
            if path == "/collection.json":
                body = json.dumps(col.collection()).encode()
            elif m := re.fullmatch(r"/b(\d+)/manifest\.json", path):
                body = json.dumps(col.manifest(int(m[1]))).encode()
            elif m := re.fullmatch(r"/b(\d+)/alto/(\d+)\.xml", path):
                body, ctype = col.alto(int(m[1]), int(m[2])).encode(), "application/xml"
            elif m := re.fullmatch(r"/b(\d+)/image/(\d+)\.jpg", path):
                body, ctype = col.image(int(m[1]), int(m[2])), "image/jpeg"
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server.RequestHandlerClass = Handler
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, col


# --- measuring ----------------------------------------------------------------------------------------------


def ivs(data_dir: Path, *args: str) -> tuple[float, str]:
    exe = Path(sys.executable).with_name("ivs")
    t0 = time.perf_counter()
    res = subprocess.run([str(exe), "--data-dir", str(data_dir), *args], capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(f"ivs {' '.join(args)} failed: {res.stderr[-2000:]}")
    return time.perf_counter() - t0, res.stdout


def size_of(*paths: Path) -> int:
    total = 0
    for p in paths:
        if p.is_file():
            total += p.stat().st_size
        elif p.is_dir():
            total += sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
    return total


def add_vectors(data_dir: Path, seed: int = 0) -> int:
    """Structured 768-d vectors for every region, under a synthetic model descriptor, in 50k-row batches."""
    from iiif_visual_search.catalogue import Catalogue
    from iiif_visual_search.embed.models import ModelDescriptor
    from iiif_visual_search.index.vectors import VectorStore

    cat = Catalogue(data_dir / "catalogue.sqlite")
    ids = [r["id"] for r in cat.query("SELECT id FROM region ORDER BY rowid")]
    desc = ModelDescriptor(name=MODEL, key=MODEL, architecture="synthetic", source="bench/scale.py", revision="1",
                           dim=DIM, output="Gaussian mixture, power-law spectrum (bench/index.py)")
    store = VectorStore(data_dir, MODEL, cat, descriptor=desc)
    mix = _bench_module("index").Mixture(DIM, max(100, len(ids) // 100), seed)
    for c0 in range(0, len(ids), 50_000):
        store.add(ids[c0:c0 + 50_000], mix.draw(c0, min(len(ids), c0 + 50_000)))
    cat.close()
    return len(ids)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def httpx_get(url: str) -> None:
    import httpx

    httpx.get(url, timeout=600).raise_for_status()


def start_server(data_dir: Path) -> tuple[subprocess.Popen, str]:
    import httpx

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    exe = Path(sys.executable).with_name("ivs")
    proc = subprocess.Popen([str(exe), "--data-dir", str(data_dir), "serve", "--host", "127.0.0.1", "--port",
                             str(port), "--base-url", base], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(1200):
        try:
            if httpx.get(f"{base}/health", timeout=5).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise SystemExit(f"ivs serve exited with {proc.returncode}")
        time.sleep(0.25)
    proc.terminate()
    raise SystemExit("ivs serve did not start")


def settle(pid: int, quiet_s: float = 0.05, limit_s: float = 600) -> float:
    """Wait until the server has finished its start-up work in the background (the text index loads the
    postings of its most frequent words), so that work is not timed as part of the first read paths: until
    the process used under ``quiet_s`` of CPU in each of two seconds. Returns the seconds waited."""
    def cpu() -> float:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    t0, last, quiet = time.perf_counter(), cpu(), 0
    while quiet < 2 and time.perf_counter() - t0 < limit_s:
        time.sleep(1)
        now = cpu()
        quiet = quiet + 1 if now - last < quiet_s else 0
        last = now
    return time.perf_counter() - t0


def rss_mb(pid: int) -> dict[str, float]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssFile", "VmHWM"):
            out[key] = int(value.split()[0]) / 1024
    return out


async def timed(base: str, requests: list, clients: int) -> list[float]:
    """Milliseconds per request; ``requests`` are (method, path, params, json) tuples, shared by the clients."""
    import httpx

    times: list[float] = []
    it = iter(requests)
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, timeout=120, limits=limits) as client:
        async def one(method: str, path: str, params: dict | None, body: object) -> None:
            t0 = time.perf_counter()
            r = await client.request(method, path, params=params, json=body)
            times.append((time.perf_counter() - t0) * 1000)
            if r.status_code != 200:
                raise RuntimeError(f"{method} {path} {params}: HTTP {r.status_code} {r.text[:300]}")

        async def worker() -> None:
            for req in it:
                await one(*req)

        await one(*requests[0])  # warm: the first request loads an index
        times.clear()
        await asyncio.gather(*(worker() for _ in range(clients)))
    return times


def query_sets(base: str, data_dir: Path, n: int) -> dict[str, list]:
    """Requests per measured read path (``n`` each; the paging ones repeat one URL)."""
    import httpx

    from iiif_visual_search.catalogue import Catalogue
    from iiif_visual_search.index.vectors import VectorStore

    rng = random.Random(1)
    cat = Catalogue(data_dir / "catalogue.sqlite")
    regions = [r["id"] for r in cat.query("SELECT id FROM region ORDER BY rowid")]
    canvases = [(r["manifest_id"], r["position"]) for r in cat.query(
        "SELECT manifest_id, position FROM canvas WHERE position >= 0")]
    vectors = VectorStore(data_dir, MODEL, cat).file
    picked = [rng.randrange(len(regions)) for _ in range(n)]
    noisy = vectors.read(picked) + np.random.default_rng(2).normal(0, 0.02, (n, DIM)).astype(np.float32)
    cat.close()
    words = vocabulary()
    common, rare = words[:20], words[2000:2000 + n] if len(words) > 2000 + n else words[-n:]
    ann = httpx.get(f"{base}/annotations", timeout=600).json()
    act = httpx.get(f"{base}/activity", timeout=600).json()

    def path_of(url: str) -> tuple[str, dict]:
        rest = url.removeprefix(base)
        path, _, query = rest.partition("?")
        return path, dict(p.split("=", 1) for p in query.split("&") if "=" in p)

    def page(url: str) -> list:
        path, params = path_of(url)
        return [("GET", path, params, None)] * n

    first = lambda c: c["first"]["id"] if isinstance(c["first"], dict) else c["first"]  # noqa: E731
    last = lambda c: c["last"]["id"] if isinstance(c["last"], dict) else c["last"]  # noqa: E731
    return {
        "similar by id": [("GET", f"/similar/{regions[i]}", {"model": MODEL, "k": 20}, None) for i in picked],
        "similar by vector": [("POST", "/similar", {"model": MODEL, "k": 20}, {"vector": v.round(5).tolist()})
                              for v in noisy],
        "search, rare word": [("GET", "/search/2", {"q": rare[i % len(rare)]}, None) for i in range(n)],
        "search, common word": [("GET", "/search/2", {"q": common[i % len(common)]}, None) for i in range(n)],
        "region page": [("GET", f"/iiif/{m}/canvas/{p}/regions", None, None)
                        for m, p in (rng.choice(canvases) for _ in range(n))],
        "annotations, first page": page(first(ann)),
        "annotations, last page": page(last(ann)),
        "activity, first page": page(first(act)),
        "activity, last page": page(last(act)),
    }


def measure(n_regions: int, args: argparse.Namespace) -> dict:
    from iiif_visual_search.catalogue import Catalogue
    from iiif_visual_search.index.text import open_text_index

    work = Path(tempfile.mkdtemp(prefix=f"ivs-scale-{n_regions}-", dir=args.workdir))
    data_dir = work / "data"
    out: dict = {"regions": n_regions, "date": time.strftime("%Y-%m-%d %H:%M"), "host": platform.node(),
                 "cpus": os.cpu_count(), "load_before": os.getloadavg()[0]}
    server, col = serve_collection(lambda base: Collection(n_regions, args.pages_per_book, args.regions_per_page,
                                                           base))
    try:
        print(f"[{n_regions}] {col.books} books, {col.pages} pages; ingesting", flush=True)
        seconds, _ = ivs(data_dir, "ingest", f"{col.base}/collection.json")
    finally:
        server.shutdown()
    out["ingest_s"], out["pages"] = seconds, col.pages
    out["ingest_pages_per_s"] = col.pages / seconds
    if args.ingest_only:
        print(f"[{n_regions}] ingest {seconds:.1f} s ({out['ingest_pages_per_s']:.0f} pages/s)", flush=True)
        shutil.rmtree(work, ignore_errors=True)
        return out
    cat = Catalogue(data_dir / "catalogue.sqlite")
    out["regions_ingested"] = cat.query("SELECT count(*) AS n FROM region")[0]["n"]
    t0 = time.perf_counter()
    open_text_index(data_dir).sync(cat)
    out["text_index_s"] = time.perf_counter() - t0
    cat.close()
    print(f"[{n_regions}] ingest {seconds:.0f} s ({out['ingest_pages_per_s']:.0f} pages/s); vectors", flush=True)
    add_vectors(data_dir)
    out["index_s"], stdout = ivs(data_dir, "index", "--model", MODEL)
    out["index"] = json.loads(stdout.strip().splitlines()[-1])
    out["status_s"], _ = ivs(data_dir, "status")
    n = out["regions_ingested"]
    vdir = data_dir / "vectors" / MODEL
    out["bytes_per_region"] = {
        "catalogue": size_of(*data_dir.glob("catalogue.sqlite*")) / n,
        "text index": size_of(*[p for p in data_dir.iterdir() if "text" in p.name]) / n,
        "vector index": size_of(vdir / "index.faiss") / n,
        "vectors": size_of(vdir / "vectors.f32") / n,
    }
    print(f"[{n_regions}] index {out['index_s']:.0f} s {out['index']}; status {out['status_s']:.1f} s; serving",
          flush=True)
    serve_and_time(data_dir, out, args)
    out["load_after"] = os.getloadavg()[0]
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    else:
        out["data_dir"] = str(data_dir)
    return out


def remeasure(n_regions: int, args: argparse.Namespace) -> dict:
    """``--serve-only``: the read paths and ``ivs status`` again, on the data dir an earlier ``--keep`` run
    left for this size (its ingest and build figures are kept from that run's JSON)."""
    out = json.loads((args.out / f"scale-{n_regions}.json").read_text())
    data_dir = Path(out.get("data_dir", ""))
    if not (data_dir / "catalogue.sqlite").is_file():
        raise SystemExit(f"no kept data dir for {n_regions} regions (run with --keep first): {data_dir}")
    out["served"] = time.strftime("%Y-%m-%d %H:%M")
    out["load_before_serve"] = os.getloadavg()[0]
    out["status_s"], _ = ivs(data_dir, "status")
    print(f"[{n_regions}] status {out['status_s']:.1f} s; serving {data_dir}", flush=True)
    serve_and_time(data_dir, out, args)
    out["load_after"] = os.getloadavg()[0]
    return out


def serve_and_time(data_dir: Path, out: dict, args: argparse.Namespace) -> None:
    """``ivs serve`` in a subprocess: the read paths over HTTP, one client and ``args.clients``, and its RSS."""
    proc, base = start_server(data_dir)
    try:
        httpx_get(f"{base}/search/2?q=the")  # the first search starts the background load of common words
        out["settle_s"] = settle(proc.pid)
        out["http"] = {}
        sets = query_sets(base, data_dir, args.requests)
        # Every query set once, untimed, as in steady serving: the first queries of a memory-mapped index read
        # its pages (from disk where they are not in the page cache), which is start-up, not a request's cost.
        t0 = time.perf_counter()
        for reqs in sets.values():
            asyncio.run(timed(base, reqs, 1))
        out["warm_s"] = time.perf_counter() - t0
        for name, reqs in sets.items():
            row = {}
            for clients in (1, args.clients):
                times = asyncio.run(timed(base, reqs, clients))
                row[str(clients)] = {"p50": float(np.percentile(times, 50)), "p99": float(np.percentile(times, 99))}
            out["http"][name] = row
            print(f"  {name:<26} ×1 p50 {row['1']['p50']:7.1f} p99 {row['1']['p99']:7.1f} ms   "
                  f"×{args.clients} p50 {row[str(args.clients)]['p50']:7.1f} p99 {row[str(args.clients)]['p99']:7.1f} ms",
                  flush=True)
        out["serve_rss_mb"] = rss_mb(proc.pid)
    finally:
        proc.terminate()
        proc.wait(30)


# --- reporting ----------------------------------------------------------------------------------------------


def costs(r: dict, clients: int) -> dict[str, float]:
    """The flat cost table of one size: name → value."""
    row = {"ingest s/page (1/pages/s)": 1.0 / r["ingest_pages_per_s"], "index build s": r["index_s"],
           "text index build s": r["text_index_s"], "ivs status s": r["status_s"],
           "serve RSS MB": r["serve_rss_mb"]["VmRSS"]}
    if "RssAnon" in r["serve_rss_mb"]:  # what is the process's own: mapped index pages are shared page cache
        row["serve private (anon) MB"] = r["serve_rss_mb"]["RssAnon"]
    row.update({f"{k} B/region": v for k, v in r["bytes_per_region"].items()})
    for name, by in r["http"].items():
        row[f"{name} ×1 p50 ms"] = by["1"]["p50"]
        row[f"{name} ×1 p99 ms"] = by["1"]["p99"]
        row[f"{name} ×{clients} p50 ms"] = by[str(clients)]["p50"]
    return row


def exponent(ns: list[int], values: list[float]) -> float | None:
    pairs = [(n, v) for n, v in zip(ns, values) if v > 0]
    if len(pairs) < 2:
        return None
    x, y = np.log([p[0] for p in pairs]), np.log([p[1] for p in pairs])
    return float(np.polyfit(x, y, 1)[0])


def report(out_dir: Path, clients: int) -> None:
    results = sorted((json.loads(p.read_text()) for p in out_dir.glob("scale-*.json")), key=lambda r: r["regions"])
    if not results:
        return
    ns = [r["regions"] for r in results]
    tables = [costs(r, clients) for r in results]
    names = list(tables[-1])
    head = f"{'cost':<42}" + "".join(f"{n:>12,}" for n in ns) + f"{'k':>7}{'10M (est)':>12}{'100M (est)':>12}"
    print("\n" + head)
    lines = []
    for name in names:
        values = [t.get(name, float("nan")) for t in tables]
        k = exponent(ns, values)
        est = ["" if k is None else f"{values[-1] * (target / ns[-1]) ** k:12.4g}" for target in (10**7, 10**8)]
        line = f"{name:<42}" + "".join(f"{v:12.4g}" for v in values) + \
            (f"{k:7.2f}" if k is not None else f"{'':>7}") + "".join(f"{e:>12}" for e in est)
        lines.append(line)
    print("\n".join(lines))
    kinds = ", ".join(f"{r['regions']:,}: {r['index'].get('kind')} (efSearch {r['index'].get('ef_search')}, "
                      f"recall@10 {r['index'].get('recall@10')})" for r in results)
    print(f"vector index: {kinds}")
    print("k: cost ∝ N^k, least squares over log-log; the 10M and 100M columns extrapolate the largest size "
          "measured with k (bytes per region: with k as measured, not assumed constant)")
    plot(out_dir / "scale.png", ns, tables)


def plot(path: Path, ns: list[int], tables: list[dict[str, float]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = {"HTTP p50, one client (ms)": [k for k in tables[-1] if k.endswith("×1 p50 ms")],
              "build and admin (s)": [k for k in tables[-1] if k.endswith(" s") or k.startswith("ingest")],
              "bytes per region": [k for k in tables[-1] if k.endswith("B/region")] + ["serve RSS MB"]}
    fig, axes = plt.subplots(1, 3, figsize=(18, 6))
    for ax, (title, keys) in zip(axes, groups.items()):
        for key in keys:
            ax.plot(ns, [t.get(key, np.nan) for t in tables], marker="o", label=key.replace(" ×1 p50 ms", ""))
        ax.set(xscale="log", yscale="log", title=title, xlabel="regions")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"plot: {path}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000], help="regions")
    ap.add_argument("--pages-per-book", type=int, default=100)
    ap.add_argument("--regions-per-page", type=int, default=6)
    ap.add_argument("--requests", type=int, default=100, help="per read path and client setting")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "ivs-scale")
    ap.add_argument("--workdir", type=Path, default=None, help="where the data directories go")
    ap.add_argument("--keep", action="store_true", help="keep each size's data directory")
    ap.add_argument("--report", action="store_true", help="only print the table and plot of OUT")
    ap.add_argument("--ingest-only", action="store_true",
                    help="only time ivs ingest at each size (printed; nothing written to OUT)")
    ap.add_argument("--rounds", type=int, default=1, help="with --ingest-only: ingest each size this many times")
    ap.add_argument("--serve-only", action="store_true",
                    help="time the read paths and ivs status again on the data dirs a --keep run left (after a "
                         "change to the service), keeping that run's ingest and build figures")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if not args.report:
        print(f"bench/scale.py {time.strftime('%Y-%m-%d %H:%M')} {platform.node()} {os.cpu_count()} CPUs, "
              f"load {os.getloadavg()[0]:.1f}; sizes {args.sizes}; results in {args.out}", flush=True)
        for n in args.sizes:
            if args.ingest_only:
                for _ in range(args.rounds):
                    measure(n, args)
                continue
            result = remeasure(n, args) if args.serve_only else measure(n, args)
            (args.out / f"scale-{n}.json").write_text(json.dumps(result, indent=1))
    if not args.ingest_only:
        report(args.out, args.clients)


if __name__ == "__main__":
    main()
