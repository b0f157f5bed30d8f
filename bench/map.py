"""The atlas at scale: ``ivs map``'s layout time, and the map page's frame rate in headless Chromium.

Layout: the same fit-and-place step ``ivs map`` runs (``atlas.build.lay_out``: PCA to 50 dimensions, openTSNE
on a sample of ``--fit-sample`` regions, HDBSCAN on the sample's positions, every other region placed by the
fitted transform), over synthetic 768-d vectors from ``bench/index.py``'s clustered mixture, memory-mapped from
a file as ``ivs map`` reads ``vectors.f32``. Stage times, total, peak memory. ``--baseline`` also fits openTSNE
on all regions (what the sample saves; slow: use it at 100k at most), for the ratio.

Frame rate: a catalogue of ``--n`` regions (cloned from the real books by ``bench/serve.py``'s
``synthesise``), a map of them with those positions written through ``atlas.store``, sheets of synthetic
thumbnails (32 px cells, 2048-px JPEG sheets, as ``ivs map`` packs them), ``ivs serve``, and Debian's Chromium
headless with ``--disable-gpu`` (WebGL on SwiftShader, software). After every sheet has loaded, the page is
panned a few pixels per frame for ``--seconds`` with each frame drawn in ``requestAnimationFrame``: the frames
per second a reader would see: the whole map, and zoomed in 3× and 8×. Far out, where thumbnails would be
smaller than 8 px, the page draws a share of them (``drawn_share``) at 8 px; from there in, every one.

    nice -n 19 .venv/bin/python bench/map.py --n 100000              # layout and frame rate at 100k
    nice -n 19 .venv/bin/python bench/map.py --n 1000000 --skip-fps  # layout of 1M (~3 GB of vectors in /tmp)
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench"))

from iiif_visual_search.atlas import layout, store, thumbs  # noqa: E402
from iiif_visual_search.atlas.build import _Clock, lay_out  # noqa: E402

CHROMIUM = os.environ.get("IVS_CHROMIUM", "/usr/bin/chromium")


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024


def write_vectors(path: Path, n: int, dim: int, seed: int) -> np.memmap:
    from index import Mixture  # bench/index.py: the clustered, power-law-spectrum mixture

    mix = Mixture(dim, clusters=max(20, n // 2000), seed=seed)
    out = np.memmap(path, dtype=np.float32, mode="w+", shape=(n, dim))
    for start in range(0, n, 100_000):
        out[start:start + 100_000] = mix.draw(start, min(n, start + 100_000))
    out.flush()
    return np.memmap(path, dtype=np.float32, mode="r", shape=(n, dim))


def bench_layout(n: int, dim: int, fit_sample: int, workdir: Path, baseline: bool) -> dict:
    t0 = time.perf_counter()
    vectors = write_vectors(workdir / f"vectors-{n}.f32", n, dim, seed=7)
    print(f"[layout {n}] {n}×{dim} synthetic vectors written in {time.perf_counter() - t0:.0f} s", flush=True)
    ids = [f"r{i:016x}" for i in range(n)]
    params = layout.LayoutParams(fit_sample=fit_sample)
    clock = _Clock()
    t0 = time.perf_counter()
    done = lay_out(lambda positions: np.asarray(vectors[positions]), ids, params, clock=clock,
                   say=lambda m: print(f"[layout {n}] {m}", flush=True))
    total = time.perf_counter() - t0
    clusters = len(set(done.cluster.tolist()) - {-1})
    out = {"n": n, "dim": dim, "fit_sample": int(len(done.sample)), "seconds": clock.seconds, "total_s": round(total, 1),
           "clusters": clusters, "noise": float((done.cluster < 0).mean()), "peak_rss_gb": round(peak_rss_gb(), 2),
           "load_after": os.getloadavg()}
    print(f"[layout {n}] total {total:.0f} s = {total / 60:.1f} min; stages {clock.seconds}; {clusters} clusters, "
          f"{out['noise']:.0%} in none; peak RSS {out['peak_rss_gb']} GB; load {os.getloadavg()[0]:.1f}", flush=True)
    if baseline:
        t0 = time.perf_counter()
        lay_out(lambda positions: np.asarray(vectors[positions]), ids, layout.LayoutParams(fit_sample=n))
        full = time.perf_counter() - t0
        out["baseline_full_tsne_s"] = round(full, 1)
        print(f"[layout {n}] baseline, t-SNE on all {n}: {full:.0f} s; ours {total:.0f} s: {full / total:.2f}× faster",
              flush=True)
    np.save(workdir / f"xy-{n}.npy", done.xy)
    np.save(workdir / f"cluster-{n}.npy", done.cluster)
    return out


def synthetic_sheets(folder: Path, n: int, cell: int, cluster: np.ndarray) -> None:
    """Sheets whose cells look like pictures to a texture sampler: a gradient in a colour per cluster."""
    from PIL import Image

    per = thumbs.per_sheet(cell)
    grid = thumbs.SHEET // cell
    folder.mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[0:cell, 0:cell].astype(np.float32) / cell
    rng = np.random.default_rng(0)
    for sheet in range(-(-n // per)):
        pixels = np.full((thumbs.SHEET, thumbs.SHEET, 3), 233, dtype=np.uint8)
        for slot in range(min(per, n - sheet * per)):
            c = int(cluster[sheet * per + slot])
            base = np.array([(c * 53) % 200 + 30, (c * 97) % 200 + 30, (c * 151) % 200 + 30], dtype=np.float32)
            shade = (0.6 + 0.4 * xx * yy + 0.1 * rng.random())[..., None]
            r, q = divmod(slot, grid)
            pixels[r * cell:(r + 1) * cell, q * cell:(q + 1) * cell] = np.clip(base * shade, 0, 255).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(pixels).save(buf, "JPEG", quality=thumbs.QUALITY)
        (folder / f"{sheet}.jpg").write_bytes(buf.getvalue())


def build_served_map(data_dir: Path, n: int, xy: np.ndarray, cluster: np.ndarray) -> str:
    from serve import seed_catalogue, synthesise

    from iiif_visual_search.catalogue import Catalogue

    if not (data_dir / "catalogue.sqlite").exists():
        seed_catalogue(data_dir, REPO.parent / "shared" / "data")
        synthesise(data_dir, n)
    with Catalogue(data_dir / "catalogue.sqlite") as cat:
        ids = [r["id"] for r in cat.query("SELECT id FROM region WHERE deleted=0 ORDER BY seq LIMIT ?", (n,))]
    n = len(ids)
    key = "bench"
    cell = thumbs.cell_size(n)
    folder = store.new_version_folder(data_dir, key)
    cells = thumbs.spatial_cells(xy[:n])  # as ivs map hands them out
    by_cell = np.empty(n, dtype=np.int32)
    by_cell[cells] = cluster[:n]
    synthetic_sheets(folder / "atlas", n, cell, by_cell)
    sizes = np.bincount(cluster[:n][cluster[:n] >= 0]) if (cluster[:n] >= 0).any() else np.zeros(0)
    clusters = []
    for cid, size in enumerate(sizes.tolist()):
        if size:
            where = np.flatnonzero(cluster[:n] == cid)
            clusters.append({"id": cid, "label": f"cluster {cid}", "size": size, "x": float(xy[where, 0].mean()),
                             "y": float(xy[where, 1].mean()), "terms": [], "prompt": ""})
    rng = np.random.default_rng(1)
    meta = {"model": key, "key": key, "architecture": "synthetic", "revision": "bench", "dim": 768, "params": {},
            "atlas": {"cell": cell, "sheet": thumbs.SHEET, "sheets": thumbs.sheet_count(np.arange(n), cell)},
            "clusters": clusters, "next_cluster": len(sizes), "counts": {"regions": n}}
    data = store.MapData(meta, np.array(ids), xy[:n].astype(np.float32), cluster[:n].astype(np.int32),
                         cells, rng.uniform(0.5, 2.0, n).astype(np.float32),
                         np.ones(n, dtype=bool))
    store.write(folder, data)
    store.publish(data_dir, key, folder)
    return key


FPS_JS = """async ([seconds, dx]) => {
  const m = await window.ivsMap.ready;
  return await new Promise((resolve) => {
    let frames = 0; let t0 = null;
    function step(now) {
      if (t0 === null) t0 = now;
      m.pan(dx, dx / 3); m.drawNow(); frames += 1;
      if (now - t0 < seconds * 1000) requestAnimationFrame(step);
      else resolve(frames / ((now - t0) / 1000));
    }
    requestAnimationFrame(step);
  });
}"""


def bench_fps(data_dir: Path, key: str, seconds: float) -> dict:
    import httpx
    from playwright.sync_api import sync_playwright
    from serve import free_port

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([str(Path(sys.executable).with_name("ivs")), "--data-dir", str(data_dir), "serve",
                             "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    out: dict = {}
    try:
        deadline = time.monotonic() + 1800  # at a million regions the first start builds the text index
        while time.monotonic() < deadline:
            try:
                if httpx.get(base + "/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(1)
        out["serve_start_s"] = round(1800 - (deadline - time.monotonic()), 1)
        out["bin_mb"] = round(len(httpx.get(f"{base}/map/{key}.bin", timeout=120).content) / 1e6, 2)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                         args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            errors: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            t0 = time.perf_counter()
            page.goto(f"{base}/map?model={key}", timeout=300_000)
            page.wait_for_function("window.ivsMap && window.ivsMap.ready.then(m => m.sheetsLoaded() === m.sheets())",
                                   timeout=600_000, polling=500)
            out["load_s"] = round(time.perf_counter() - t0, 1)
            out["renderer"] = page.evaluate("""() => { const g = document.querySelector('#map canvas').getContext('webgl2');
                const d = g.getExtension('WEBGL_debug_renderer_info'); return d ? g.getParameter(d.UNMASKED_RENDERER_WEBGL) : '?'; }""")
            out["points"] = page.evaluate("window.ivsMap.ready.then(m => m.count())")
            for zoom in (1, 3, 8):  # the whole map, then zoomed in 3× and 8× from it
                page.evaluate(f"window.ivsMap.ready.then(m => {{ m.showAll(); m.zoom({zoom}); }})")
                out[f"fps_zoom_{zoom}x"] = round(page.evaluate(FPS_JS, [seconds, 2]), 1)
                out[f"drawn_share_zoom_{zoom}x"] = round(page.evaluate("window.ivsMap.ready.then(m => m.drawnShare())"), 3)
            out["console_errors"] = errors
            browser.close()
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    print(f"[fps] {json.dumps(out)}", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=768)
    ap.add_argument("--fit-sample", type=int, default=50_000)
    ap.add_argument("--seconds", type=float, default=8.0, help="per frame-rate measurement")
    ap.add_argument("--skip-fps", action="store_true")
    ap.add_argument("--skip-layout", action="store_true", help="reuse the positions a run with --keep saved")
    ap.add_argument("--baseline", action="store_true", help="also t-SNE on all regions, for the ratio")
    ap.add_argument("--keep", type=Path, default=None, help="work folder kept between runs (vectors, catalogue)")
    args = ap.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, load {os.getloadavg()}", flush=True)
    workdir = args.keep or Path(tempfile.mkdtemp(prefix="ivs-bench-map-"))
    workdir.mkdir(parents=True, exist_ok=True)
    results = {}
    if not (args.skip_layout and (workdir / f"xy-{args.n}.npy").is_file()):
        results["layout"] = bench_layout(args.n, args.dim, args.fit_sample, workdir, args.baseline)
    (workdir / f"vectors-{args.n}.f32").unlink(missing_ok=True)
    if not args.skip_fps:
        xy, cluster = np.load(workdir / f"xy-{args.n}.npy"), np.load(workdir / f"cluster-{args.n}.npy")
        data_dir = workdir / f"data-{args.n}"
        t0 = time.perf_counter()
        key = build_served_map(data_dir, args.n, xy, cluster)
        print(f"[fps] catalogue, map and sheets of {args.n} regions built in {time.perf_counter() - t0:.0f} s", flush=True)
        results["fps"] = bench_fps(data_dir, key, args.seconds)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
