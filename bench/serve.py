"""The service under load: find-similar, Content Search and image upload over HTTP on loopback, at 100k regions.

The catalogue is synthesised in seconds by bulk SQL: the real books of ../shared/data are ingested first, and
their manifest, canvas and region rows are cloned (new ids) up to ``--regions``; every region gets context
text cut from real ALTO pages of ../shared/data (up to 300 characters each side, as the pipeline keeps) and,
for one in ten, a caption. Vectors: clustered random 768-d unit vectors under the descriptor of a
random-weight SigLIP-B/16-256 (built from its config, saved, loaded through ``get_embedder(path)``), indexed
through ``VectorStore`` (HNSW above 20k rows) — so an uploaded image is embedded by the real architecture.

Each query runs in-process (the function the handler calls) and over HTTP against ``ivs serve`` in a
subprocess, one client and then 8 concurrent clients (httpx async); p50/p99, requests/s and the ratios.
Targets (issue 5): similar by region id p50 ≤ 20 ms, Content Search p50 ≤ 30 ms, upload p50 ≤ 250 ms.

    .venv/bin/python bench/serve.py                       # 100k regions (~3 min to build the first time)
    .venv/bin/python bench/serve.py --keep /tmp/ivs-bench  # build once into that folder, reuse after
    .venv/bin/python bench/serve.py --regions 20000 --keep /tmp/ivs-bench-20k --writer --requests 300
                                                          # readers beside a writer (issue 12)
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import random
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))

from iiif_visual_search.catalogue import Catalogue, short_id  # noqa: E402
from iiif_visual_search.config import load_settings  # noqa: E402
from iiif_visual_search.index.text import open_text_index  # noqa: E402

SHARED = REPO.parent / "shared" / "data"
TARGETS_MS = {"similar": 20.0, "search": 30.0, "upload": 250.0}


# --- data ----------------------------------------------------------------------------------------------------


def alto_pages(shared: Path) -> list[list[str]]:
    """The words of every ALTO page in the shared data, in reading order (String CONTENT)."""
    from lxml import etree

    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)
    pages = []
    for path in sorted(shared.rglob("*.xml")):
        try:
            root = etree.parse(str(path), parser).getroot()
        except etree.XMLSyntaxError:
            continue
        if etree.QName(root).localname != "alto":
            continue
        words = [s.get("CONTENT", "") for s in root.iter("{*}String")]
        words = [w for w in words if w.strip()]
        if len(words) >= 40:
            pages.append(words)
    return pages


def window(words: list[str], start: int, limit: int) -> str:
    out, size = [], 0
    for w in words[start:]:
        if size + len(w) + 1 > limit:
            break
        out.append(w)
        size += len(w) + 1
    return " ".join(out)


def seed_catalogue(data_dir: Path, shared: Path) -> None:
    """The real books of the shared data, ingested as ``ivs demo`` does offline."""
    from iiif_visual_search.local_sample import write_sample

    collection = write_sample(shared, data_dir / "sample")
    ivs = Path(sys.executable).with_name("ivs")
    subprocess.run([str(ivs), "--data-dir", str(data_dir), "ingest", str(collection)], check=True,
                   capture_output=True)


def synthesise(data_dir: Path, n_regions: int, seed: int = 0, per_canvas: int = 5, per_manifest: int = 4) -> None:
    """Clone the seeded rows up to ``n_regions`` regions, with real ALTO text as context."""
    rng = random.Random(seed)
    pages = alto_pages(SHARED)
    if not pages:
        raise SystemExit(f"no ALTO pages under {SHARED}")
    cat = Catalogue(data_dir / "catalogue.sqlite")
    conn = cat.conn
    manifests = [dict(r) for r in conn.execute("SELECT * FROM manifest")]
    canvases = [dict(r) for r in conn.execute("SELECT * FROM canvas")]
    regions = [dict(r) for r in conn.execute("SELECT * FROM region WHERE flags = ''")]
    now = time.time()
    m_rows, c_rows, r_rows = [], [], []
    n_manifests = -(-n_regions // (per_canvas * per_manifest))
    count = 0
    for m in range(n_manifests):
        tm = dict(manifests[m % len(manifests)])
        tm["id"] = short_id("bench", str(m), prefix="m", length=12)
        tm["uri"] = f"{tm['uri']}?copy={m}"
        m_rows.append(tm)
        for c in range(per_manifest):
            tc = dict(canvases[(m * per_manifest + c) % len(canvases)])
            tc.update(id=short_id(tm["id"], str(c), prefix="c", length=14), manifest_id=tm["id"], position=c + 1,
                      uri=f"{tc['uri']}?copy={m}")
            c_rows.append(tc)
            for r in range(per_canvas):
                if count >= n_regions:
                    break
                tr = dict(regions[count % len(regions)])
                tr.pop("seq", None)  # unique creation order: SQLite numbers the clones itself
                words = pages[rng.randrange(len(pages))]
                start = rng.randrange(max(1, len(words) - 20))
                before = window(words, start, 300)
                after = window(words, start + len(before.split()) + 5, 300)
                caption = window(words, rng.randrange(len(words)), rng.randrange(20, 60)) if rng.random() < 0.1 else ""
                tr.update(id=short_id(tc["id"], str(r), prefix="r", length=16), canvas_id=tc["id"],
                          manifest_id=tm["id"], context_before=before, context_after=after, caption=caption,
                          created_at=now, updated_at=now, deleted=0)
                r_rows.append(tr)
                count += 1

    def insert(conn: sqlite3.Connection, table: str, rows: list[dict]) -> None:
        cols = list(rows[0])
        conn.executemany(f"INSERT INTO {table}({','.join(cols)}) VALUES ({','.join('?' * len(cols))})",
                         [tuple(r[c] for c in cols) for r in rows])

    with cat.transaction() as tx:
        insert(tx, "manifest", m_rows)
        insert(tx, "canvas", c_rows)
        insert(tx, "region", r_rows)
        tx.executemany("INSERT INTO change(kind, object_type, object_id, at) VALUES ('create', 'region', ?, ?)",
                       [(r["id"], now) for r in r_rows])
    cat.close()


def clustered(n: int, d: int, seed: int = 0, clusters: int = 1000) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, d)).astype(np.float32)
    out = np.empty((n, d), dtype=np.float32)
    for i in range(0, n, 20_000):  # in chunks: 100k × 768 noise at once is 600 MB of float64
        m = min(n, i + 20_000) - i
        x = centres[rng.integers(0, clusters, m)] + 0.6 * rng.standard_normal((m, d), dtype=np.float32)
        out[i:i + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def build_siglip(root: Path) -> Path:
    """SigLIP-B/16-256 with random weights (the vision tower at full size; a small text tower: uploads only
    use the vision tower, and a 250k-token vocabulary would add 0.8 GB to write and read)."""
    import transformers as t

    path = root / "siglip-b16-256-random"
    if (path / "config.json").exists():
        return path
    cfg = t.SiglipConfig(text_config={"vocab_size": 1000},
                         vision_config={"image_size": 256, "patch_size": 16, "hidden_size": 768,
                                        "intermediate_size": 3072, "num_hidden_layers": 12,
                                        "num_attention_heads": 12})
    t.SiglipModel(cfg).eval().save_pretrained(path)
    t.SiglipImageProcessor(size={"height": 256, "width": 256}, resample=3).save_pretrained(path)
    return path


def build_vectors(data_dir: Path, model_path: Path) -> str:
    from iiif_visual_search.embed.models import get_embedder
    from iiif_visual_search.index.vectors import VectorStore

    embedder = get_embedder(str(model_path))
    desc = embedder.descriptor
    cat = Catalogue(data_dir / "catalogue.sqlite")
    ids = [r["id"] for r in cat.query("SELECT id FROM region ORDER BY rowid")]
    store = VectorStore(data_dir, desc.name, cat, descriptor=desc)
    vecs = clustered(len(ids), desc.dim)
    for i in range(0, len(ids), 20_000):
        store.add(ids[i:i + 20_000], vecs[i:i + 20_000])
    t0 = time.perf_counter()
    stats = store.update_index()
    print(f"  index: {stats} in {time.perf_counter() - t0:.0f} s")
    cat.close()
    return desc.key


def build(data_dir: Path, n_regions: int) -> str:
    t0 = time.perf_counter()
    seed_catalogue(data_dir, SHARED)
    synthesise(data_dir, n_regions)
    print(f"  catalogue: {n_regions} regions in {time.perf_counter() - t0:.1f} s")
    t0 = time.perf_counter()
    cat = Catalogue(data_dir / "catalogue.sqlite")
    n = open_text_index(data_dir).rebuild(cat)
    cat.close()
    print(f"  text index: {n} regions in {time.perf_counter() - t0:.1f} s")
    key = build_vectors(data_dir, build_siglip(data_dir / "models"))
    (data_dir / "bench.json").write_text(json.dumps({"regions": n_regions, "model": key}))
    return key


# --- load ----------------------------------------------------------------------------------------------------


def pct(times: list[float]) -> tuple[float, float]:
    return float(np.percentile(times, 50)), float(np.percentile(times, 99))


def in_process(fn: Callable[[int], object], n: int) -> list[float]:
    times = []
    for i in range(n):
        t0 = time.perf_counter()
        fn(i)
        times.append((time.perf_counter() - t0) * 1000)
    return times


async def over_http(base: str, request: Callable[[object, int], Awaitable[object]], n: int,
                    clients: int) -> tuple[list[float], float]:
    import httpx

    times: list[float] = []
    counter = iter(range(n))
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as client:
        async def worker() -> None:
            for i in counter:
                t0 = time.perf_counter()
                r = await request(client, i)
                times.append((time.perf_counter() - t0) * 1000)
                if r.status_code != 200:  # type: ignore[attr-defined]
                    raise RuntimeError(f"HTTP {r.status_code}: {r.text[:300]}")  # type: ignore[attr-defined]
        await request(client, 0)  # warm: first use loads the index / the model
        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        wall = time.perf_counter() - t0
    return times, n / wall


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(data_dir: Path) -> tuple[subprocess.Popen, str]:
    import httpx

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    ivs = Path(sys.executable).with_name("ivs")
    env = {**os.environ, "IVS_INDEX_SYNC_INTERVAL_S": "3600"}
    proc = subprocess.Popen([str(ivs), "--data-dir", str(data_dir), "serve", "--host", "127.0.0.1", "--port",
                             str(port), "--base-url", base], env=env, stdout=subprocess.DEVNULL)
    for _ in range(240):
        try:
            if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise SystemExit(f"ivs serve exited with {proc.returncode}")
        time.sleep(0.25)
    proc.terminate()
    raise SystemExit("ivs serve did not start")


def upload_jpeg() -> bytes:
    """A real woodcut-sized crop of a shared scan, as a viewer would send it."""
    from PIL import Image

    scans = sorted((SHARED / "gallicorpora-incunabula").rglob("*.jpg"))
    image = Image.open(scans[0]).convert("RGB") if scans else Image.new("RGB", (600, 800), "white")
    w, h = image.size
    crop = image.crop((w // 6, h // 6, w // 6 + min(640, w // 2), h // 6 + min(640, h // 2)))
    buf = io.BytesIO()
    crop.save(buf, "JPEG", quality=90)
    return buf.getvalue()


WRITER = """
import sys, time
import numpy as np
sys.path.insert(0, sys.argv[1])
from pathlib import Path
from iiif_visual_search.catalogue import Catalogue
from iiif_visual_search.index.vectors import VectorStore
data_dir, key = Path(sys.argv[2]), sys.argv[3]
cat = Catalogue(data_dir / "catalogue.sqlite")
store = VectorStore(data_dir, key, cat)
ids = [r["id"] for r in cat.query("SELECT id FROM region ORDER BY rowid LIMIT 2000")]
rng = np.random.default_rng(0)
while True:  # what ivs embed and ivs index do, over and over: vectors and catalogue rows, then a new index
    v = rng.standard_normal((len(ids), store.dim)).astype("float32")
    store.add(ids, v / np.linalg.norm(v, axis=1, keepdims=True))
    store.update_index()
    print("round", flush=True)
"""


def pin(pid: int, cpus: set[int]) -> None:
    """Every thread of a process onto these CPUs (threads started later inherit it from the main thread)."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            os.sched_setaffinity(int(task.name), cpus)
        except OSError:
            pass


def writer_comparison(data_dir: Path, key: str, probe: list[str], n: int) -> None:
    """/similar/{id} p50/p99 alone, beside a writer that is niced and pinned to another CPU (what is left is
    waiting on the writer: locks, reloads), and beside a writer at normal priority (CPU contention too)."""
    import httpx

    cpus = sorted(os.sched_getaffinity(0))
    proc, base = serve(data_dir)
    request = lambda c, i: c.get(f"/similar/{probe[i]}", params={"model": key, "k": 20})  # noqa: E731
    rows = []
    try:
        if len(cpus) > 1:
            pin(proc.pid, {cpus[0]})
            os.sched_setaffinity(0, {cpus[0]})  # the client beside the server, away from the writer
        for label, nice, writer_cpus in [("alone", None, None), ("writer niced 19, own CPU", 19, {cpus[-1]}),
                                         ("writer at normal priority", 0, set(cpus)),
                                         ("alone again", None, None)]:  # the noise of a shared machine
            writer = None
            if nice is not None:
                def prepare(nice: int = nice, where: set[int] = writer_cpus) -> None:  # type: ignore[assignment]
                    os.sched_setaffinity(0, where)
                    os.nice(nice)
                writer = subprocess.Popen([sys.executable, "-c", WRITER, str(REPO / "src"), str(data_dir), key],
                                          stdout=subprocess.PIPE, preexec_fn=prepare, text=True)
                writer.stdout.readline()  # one full round done: it is writing now
            if label == "writer at normal priority" and len(cpus) > 1:
                pin(proc.pid, set(cpus))
                os.sched_setaffinity(0, set(cpus))
            times, rps = asyncio.run(over_http(base, request, n, 1))
            rounds = 0
            if writer is not None:
                writer.terminate()
                rounds = sum(1 for _ in writer.stdout)  # what it wrote while we measured (roughly)
                writer.wait(10)
            rows.append((label, *pct(times), rps, rounds))
            httpx.get(f"{base}/health", timeout=10)
    finally:
        proc.terminate()
        proc.wait(10)
        os.sched_setaffinity(0, set(cpus))
    base50, base99 = rows[0][1], rows[0][2]
    print(f"\n/similar/{{id}} over HTTP, 1 client, {n} requests; writer = ivs embed + ivs index in a loop; ms")
    print(f"{'':<28} {'p50':>7} {'p99':>8} {'req/s':>6} {'p50 ×':>6} {'p99 ×':>6} {'rounds done':>12}")
    for label, p50, p99, rps, rounds in rows:
        print(f"{label:<28} {p50:7.1f} {p99:8.1f} {rps:6.1f} {p50 / base50:6.2f} {p99 / base99:6.2f} {rounds:12}")
    print("niced + own CPU − alone: waiting on the writer; normal − niced: CPU contention")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--regions", type=int, default=100_000)
    ap.add_argument("--requests", type=int, default=200, help="per query kind and client setting")
    ap.add_argument("--uploads", type=int, default=30)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--keep", type=Path, help="data folder to build into once and reuse")
    ap.add_argument("--writer", action="store_true",
                    help="only /similar/{id} alone and beside a concurrent embed+index writer (niced and not)")
    args = ap.parse_args()
    if not SHARED.is_dir():
        raise SystemExit(f"needs the shared data at {SHARED}")
    data_dir = args.keep or Path(tempfile.mkdtemp(prefix="ivs-bench-serve-"))
    meta = data_dir / "bench.json"
    if meta.exists() and json.loads(meta.read_text())["regions"] == args.regions:
        key = json.loads(meta.read_text())["model"]
        print(f"reusing {data_dir}")
    else:
        if data_dir.exists() and any(data_dir.iterdir()):
            raise SystemExit(f"{data_dir} is not empty and holds no bench of {args.regions} regions")
        print(f"building {args.regions} regions in {data_dir}")
        key = build(data_dir, args.regions)

    from iiif_visual_search.embed.models import embedder_for
    from iiif_visual_search.index.vectors import search_store
    from iiif_visual_search.similar import find_similar
    from PIL import Image

    settings = load_settings(data_dir=data_dir)
    cat = Catalogue(settings.catalogue_path)
    rng = random.Random(1)
    region_ids = [r["id"] for r in cat.query("SELECT id FROM region")]
    probe = [rng.choice(region_ids) for _ in range(args.requests)]
    text = open_text_index(data_dir)
    n_docs = len(text)
    vocab = text._conn().execute(  # terms of 3+ letters by document frequency
        "SELECT term, doc FROM vocab_col WHERE col='text' AND length(term) >= 3 ORDER BY doc DESC").fetchall()
    common = [t for t, _ in vocab[:40]]
    mid = [t for t, d in vocab if 0.001 * n_docs <= d <= 0.01 * n_docs][:200] or common
    words = [common[i % len(common)] if i % 2 == 0 else mid[i % len(mid)] for i in range(args.requests)]
    manifest_ids = [r["id"] for r in cat.query("SELECT id FROM manifest")]
    prefixes = [common[i % len(common)][:2] for i in range(args.requests)]
    jpeg = upload_jpeg()
    print(f"  {len(region_ids)} regions, {n_docs} texts; common words in {vocab[0][1] / n_docs:.0%} ... "
          f"{vocab[min(39, len(vocab) - 1)][1] / n_docs:.0%} of texts; model {key}")

    if args.writer:
        cat.close()
        writer_comparison(data_dir, key, probe, args.requests)
        return
    embedder = embedder_for(search_store(data_dir, key).descriptor)
    image = Image.open(io.BytesIO(jpeg))
    embedder.embed_images([image])  # warm
    inproc = {
        "similar": lambda i: find_similar(cat, settings, model=key, region_id=probe[i], k=20),
        "search": lambda i: text.search(words[i], limit=50),
        "search_manifest": lambda i: text.search(words[i], manifest_id=manifest_ids[i % len(manifest_ids)],
                                                 limit=50),
        "autocomplete_manifest": lambda i: text.terms(prefixes[i], manifest_id=manifest_ids[i % len(manifest_ids)]),
        "upload": lambda i: find_similar(cat, settings, model=key, k=20,
                                         vector=embedder.embed_images([Image.open(io.BytesIO(jpeg))])[0]),
    }
    http = {
        "similar": lambda c, i: c.get(f"/similar/{probe[i]}", params={"model": key, "k": 20}),
        "search": lambda c, i: c.get("/search/1", params={"q": words[i]}),
        "search_manifest": lambda c, i: c.get(f"/search/1/{manifest_ids[i % len(manifest_ids)]}",
                                              params={"q": words[i]}),
        "autocomplete_manifest": lambda c, i: c.get(f"/autocomplete/1/{manifest_ids[i % len(manifest_ids)]}",
                                                    params={"q": prefixes[i]}),
        "upload": lambda c, i: c.post("/similar", params={"model": key, "k": 20},
                                      files={"image": ("crop.jpg", jpeg, "image/jpeg")}),
    }
    counts = {k: (args.uploads if k == "upload" else args.requests) for k in http}

    rows = []
    proc, base = serve(data_dir)
    try:
        for name in http:
            n = counts[name]
            inproc[name](0)
            ip50, ip99 = pct(in_process(inproc[name], n))
            one, rps1 = asyncio.run(over_http(base, http[name], n, 1))
            many, rpsn = asyncio.run(over_http(base, http[name], n, args.clients))
            h50, h99 = pct(one)
            c50, c99 = pct(many)
            rows.append((name, ip50, ip99, h50, h99, rps1, c50, c99, rpsn))
    finally:
        proc.terminate()
        proc.wait(10)
        cat.close()

    print(f"\n{args.regions} regions, model {key}; {os.cpu_count()} CPUs; ms")
    print(f"{'query':<22} {'in-proc p50/p99':>16} {'HTTP×1 p50/p99':>16} {'req/s':>6} "
          f"{f'HTTP×{args.clients} p50/p99':>16} {'req/s':>6} {'HTTP/in-proc':>12} {'target':>8}")
    failed = []
    for name, ip50, ip99, h50, h99, rps1, c50, c99, rpsn in rows:
        target = TARGETS_MS.get(name.split("_")[0]) if name in TARGETS_MS else None
        verdict = "" if target is None else (f"≤{target:.0f} ok" if h50 <= target else f"≤{target:.0f} MISS")
        if target is not None and h50 > target:
            failed.append(name)
        print(f"{name:<22} {ip50:7.1f}/{ip99:7.1f} {h50:7.1f}/{h99:7.1f} {rps1:6.1f} {c50:7.1f}/{c99:7.1f} "
              f"{rpsn:6.1f} {h50 / ip50:11.2f}x {verdict:>8}")
    print("targets are on the single-client HTTP p50" + (f"; missed: {', '.join(failed)}" if failed else "; all met"))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
