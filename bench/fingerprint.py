"""Fingerprint near-duplicate mode under the paper's exact-retrieval protocol: top-k of the global vector
alone and re-ranked by local features (global and descriptor-voted candidates, then geometric
verification, as ``find_similar`` does), and the latency of one query over ``--gallery`` regions.

    .venv/bin/python bench/fingerprint.py [--seeds 42 7] [--windows 200] [--distractors 1505] [--gallery 10000]
    nice -n 19 .venv/bin/python bench/fingerprint.py --many 100000 --workdir /tmp/fp-many   # resumable

``--many N``: the 174 crops queried among themselves plus N page windows, through the on-disk path
``find_similar`` takes (keypoint records in ``features.bin``, the keypoint index built by
``update_keypoint_index`` and read memory-mapped by ``search_keypoints``), with the per-query latency of
global search + votes + verification. The windows' features are kept in ``--workdir``, so a larger N
later extends a smaller run instead of starting over.

Sets: the 174 real crops of tests/real_crops.py; random page windows (a different distribution: whole-page
PNG/JPEG/TIFF of DTA, Gallicorpora, OCR-D Kant and Indian ferns, BnF thumbnails); and the crops queried
against a gallery of the crops plus ``--distractors`` page windows of the same pages (hard: look-alike text,
windows that overlap the crops).

Measured on the shared 2-core CPU (seed 42 / 7), candidates = vector top 50 + 50 most-voted regions,
support = inliers × the shares of the two pictures' areas. 2026-12-04, images between 448 and 512 px
described at their own size (``sift-rootsift-affine2``):
- 174 crops: top-1 0.989/0.989, top-5 0.989/1.000 (vector alone top-1 0.586/0.586); 200 page windows:
  top-1 0.960/0.965;
- 174 crops against 1,679 (crops + 1,505 windows): top-1 0.989/0.989, top-50 0.989/1.000 (vector alone:
  top-1 0.49/0.52, original in its top 200 only 0.82/0.89);
- 10,000 regions, one query, one thread (2026-12-03): p50 268 ms / p95 338 ms (extraction 71, votes 123,
  verification 65); keypoint index IVF-SQ8 (2.1M descriptors) built in 65 s, 28 KiB per region;
- ``--many 100000``: top-1 0.931/0.920 (was 0.902/0.868 before the rule above), with same-picture windows
  dropped as junk 0.937/0.948; query p50 176-183 ms, one thread (bench/README.md).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from iiif_visual_search.embed import local_features as lf  # noqa: E402
from iiif_visual_search.embed.fingerprint import (  # noqa: E402
    RERANK_CANDIDATES,
    VOTED_CANDIDATES,
    FingerprintEmbedder,
    shortlist,
    verify,
)
from iiif_visual_search.evaluate.protocol import augment_all  # noqa: E402
from iiif_visual_search.index.keypoints import (  # noqa: E402
    records_of,
    rerank,
    search_keypoints,
    update_keypoint_index,
)

Image.MAX_IMAGE_PIXELS = None


def page_windows(n: int, seed: int = 0) -> list[Image.Image]:
    from real_crops import DATA

    pages = sorted(DATA.glob("dta-printedbooklayout/*.png")) + sorted(DATA.glob("gallicorpora-incunabula/*.jpg")) \
        + sorted(DATA.glob("ocrd-kant-1784/*.tif")) + sorted(DATA.glob("ocrd-indian-ferns/*.tif")) \
        + sorted(DATA.glob("bnf-abbyy-alto-thumbs/D/*.jpg"))
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        with Image.open(pages[i % len(pages)]) as page:
            page = page.convert("RGB")
            w, h = int(page.width * rng.uniform(0.15, 0.5)), int(page.height * rng.uniform(0.08, 0.4))
            x, y = int(rng.integers(0, page.width - w)), int(rng.integers(0, page.height - h))
            im = page.crop((x, y, x + w, y + h))
            im.thumbnail((512, 512), Image.Resampling.LANCZOS)
            out.append(im)
    return out


def protocol(name: str, images: list[Image.Image], seeds: list[int], emb: FingerprintEmbedder,
             distractors: list[Image.Image] = (), distractor_local: list | None = None) -> None:
    """The protocol through ``index.keypoints.rerank`` (the path ``exact_retrieval`` and ``ivs evaluate
    retrieval`` take), the gallery being ``images`` plus ``distractors`` (queries: augmented ``images``)."""
    gallery = list(images) + list(distractors)
    gallery_v = emb.embed_images(gallery)
    gallery_l = emb.extract_local(images) + (distractor_local if distractor_local is not None
                                             else emb.extract_local(list(distractors)))
    n = len(images)
    for seed in seeds:
        queries = augment_all(images, seed)
        t = time.perf_counter()
        scores = emb.embed_images(queries) @ gallery_v.T
        q_local = emb.extract_local(queries)
        t_extract = time.perf_counter() - t
        plain = ranks_from_scores_gallery(scores, n)
        t = time.perf_counter()
        reranked = ranks_from_scores_gallery(rerank(q_local, gallery_l, scores), n)
        dt = (time.perf_counter() - t) / n
        fmt = lambda r: " ".join(f"top{k}={np.mean((r >= 0) & (r < k)):.3f}" for k in (1, 5, 10, 50))  # noqa: E731
        print(f"{name:<14} queries={n:<4} gallery={len(gallery):<5} seed={seed:<3} global   {fmt(plain)}"
              f"   (original in global top {RERANK_CANDIDATES}: {np.mean(plain < RERANK_CANDIDATES):.3f},"
              f" top 200: {np.mean(plain < 200):.3f})")
        print(f"{'':<14} {'':<12} {'':<13} {'':<8} reranked {fmt(reranked)}   ({dt * 1e3:.0f} ms/query votes + "
              f"verification, {t_extract / n * 1e3:.0f} ms extraction)")


def ranks_from_scores_gallery(scores: np.ndarray, n: int) -> np.ndarray:
    """Rank of original i (column i) for query i among all gallery columns (ties against the original)."""
    target = scores[np.arange(n), np.arange(n)]
    return (scores > target[:, None]).sum(1)


def latency(images: list[Image.Image], local: list, size: int, emb: FingerprintEmbedder, queries: int = 30) -> None:
    """One query at a time against ``size`` regions, as ``find_similar`` runs it: FAISS flat search over the
    global vectors, descriptor votes from the keypoint index on disk (built by ``update_keypoint_index``, as
    ``ivs index`` does), the shortlist's records read from disk and verified. The gallery is ``images``
    (distinct) topped up to ``size`` with copies whose descriptors and vectors are jittered, so that FAISS's
    lists and the verification see ``size`` distinct regions."""
    rng = np.random.default_rng(0)
    vecs = emb.embed_images(images)
    reps = -(-size // len(images))
    gallery = np.tile(vecs, (reps, 1))[:size]
    gallery[len(images):] += rng.normal(0, 0.01, gallery[len(images):].shape).astype(np.float32)
    gallery /= np.maximum(np.linalg.norm(gallery, axis=1, keepdims=True), 1e-9)  # a blank window has no vector
    index = faiss.IndexFlatIP(gallery.shape[1])
    index.add(gallery)
    records = records_of(local)
    with tempfile.TemporaryDirectory() as tmp:
        store = lf.LocalFeatureStore(tmp)
        for start in range(0, size, len(images)):
            rec = records[:min(len(images), size - start)].copy()
            if start:
                noisy = rec["descriptors"].astype(np.int16) + rng.integers(-6, 7, rec["descriptors"].shape)
                rec["descriptors"] = np.clip(noisy, 0, 255).astype(np.uint8)
            store.write_records_at(start, rec)
        t = time.perf_counter()
        faiss.omp_set_num_threads(2)
        built = update_keypoint_index(tmp, rows_limit=size)
        print(f"keypoint index over {size} regions: {built}, built in {time.perf_counter() - t:.1f} s, "
              f"{(store.dir / 'keypoints.faiss').stat().st_size / size / 1024:.1f} KiB per region "
              f"(keypoint records: {lf.record_dtype().itemsize / 1024:.1f} KiB per region)")
        kp = search_keypoints(tmp)
        qs = augment_all(images[:queries], 99)
        stages = {"extract": [], "search": [], "votes": [], "verify": [], "total": []}
        faiss.omp_set_num_threads(1)
        for q in qs:
            t0 = time.perf_counter()
            qv, ql = emb.embed_images([q]), lf.extract(q)
            t1 = time.perf_counter()
            _, rows = index.search(qv, RERANK_CANDIDATES)
            t2 = time.perf_counter()
            voted = kp.votes(ql, VOTED_CANDIDATES)[0]
            t3 = time.perf_counter()
            cand = shortlist(rows[0], voted)
            verify(ql, store.read(cand), gallery[cand] @ qv[0])
            t4 = time.perf_counter()
            for k, v in zip(stages, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t4 - t0)):
                stages[k].append(v)
    print(f"latency over {size} regions, {RERANK_CANDIDATES} global + {VOTED_CANDIDATES} voted candidates, one "
          "thread: " + ", ".join(f"{k} p50 {np.median(v) * 1e3:.0f} ms / p95 {np.percentile(v, 95) * 1e3:.0f} ms"
                                 for k, v in stages.items()))


WINDOWS_PER_PAGE = 64   # consecutive windows cut from one page (decoded once), then the next page


def _pages() -> list[Path]:
    from real_crops import DATA

    return sorted(DATA.glob("dta-printedbooklayout/*.png")) + sorted(DATA.glob("gallicorpora-incunabula/*.jpg")) \
        + sorted(DATA.glob("ocrd-kant-1784/*.tif")) + sorted(DATA.glob("ocrd-indian-ferns/*.tif")) \
        + sorted(DATA.glob("bnf-abbyy-alto-thumbs/D/*.jpg"))


def window_box(width: int, height: int, i: int) -> tuple[int, int, int, int]:
    """Window ``i`` of the many-distractor set on a page of ``width`` × ``height``: its own seeded size and
    place."""
    rng = np.random.default_rng([1234, i])
    w, h = int(width * rng.uniform(0.15, 0.5)), int(height * rng.uniform(0.08, 0.4))
    x, y = int(rng.integers(0, width - w)), int(rng.integers(0, height - h))
    return x, y, x + w, y + h


def window(page: Image.Image, i: int) -> Image.Image:
    im = page.crop(window_box(page.width, page.height, i))
    im.thumbnail((512, 512), Image.Resampling.LANCZOS)
    return im


def _iou(a: tuple, b: tuple) -> float:
    inter = max(0, min(a[2], b[2]) - max(a[0], b[0])) * max(0, min(a[3], b[3]) - max(a[1], b[1]))
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


class SamePicture:
    """Whether gallery ``row`` is a window of crop ``crop``'s own page that overlaps what the query shows at
    least as much as the crop does (IoU on the page with the query's footprint: the crop's box widened by the
    rotation, less the four crops of its ``Augmentation``). Such a window is as right an answer as the crop; a
    larger N cuts more of them (at 100k, ~2,900 windows a page). The retrieval benchmarks of Oxford and Paris
    (Philbin et al. 2007; Radenović et al. 2018) call such gallery images *junk* and drop them from the ranking:
    neither a hit nor a miss."""

    def __init__(self, seed: int, m: int) -> None:
        from real_crops import real_crop_places

        from iiif_visual_search.evaluate.protocol import Augmentation

        self.places, self.pages, self.m = real_crop_places(), _pages(), m
        rng = np.random.default_rng(seed)
        self.augs = [Augmentation.draw(rng) for _ in range(m)]
        self._sizes: dict[Path, tuple[int, int]] = {}

    def _size(self, path: Path) -> tuple[int, int]:
        if path not in self._sizes:
            with Image.open(path) as page:  # the header only
                self._sizes[path] = page.size
        return self._sizes[path]

    def __call__(self, crop: int, row: int) -> bool:
        import math

        path, (x0, y0, x1, y1) = self.places[crop]
        i = row - self.m
        if i < 0 or self.pages[(i // WINDOWS_PER_PAGE) % len(self.pages)] != path:
            return False
        box = window_box(*self._size(path), i)
        a, r = self.augs[crop], math.radians(abs(self.augs[crop].rotation))
        w, h = (x1 - x0) * math.cos(r) + (y1 - y0) * math.sin(r), (x1 - x0) * math.sin(r) + (y1 - y0) * math.cos(r)
        left, top = (x0 + x1 - w) / 2, (y0 + y1 - h) / 2
        footprint = (left + a.crop_left * w, top + a.crop_top * h, left + w - a.crop_right * w,
                     top + h - a.crop_bottom * h)
        return _iou(footprint, box) >= _iou(footprint, (x0, y0, x1, y1))


def _gallery_batch(rows: range, m: int, crops: list[Image.Image]) -> tuple[np.ndarray, np.ndarray]:
    """Keypoint records and global vectors of gallery ``rows`` (the ``m`` crops first, then windows; ``crops``
    holds those of the crops among ``rows``): one worker's share of ``grow_gallery``."""
    import cv2

    cv2.setNumThreads(1)
    emb, pages, images, cache = _worker_embedder(), _pages(), [], {}
    for r in rows:
        if r < m:
            images.append(crops[r - rows.start])
            continue
        i = r - m
        path = pages[(i // WINDOWS_PER_PAGE) % len(pages)]
        if path not in cache:
            with Image.open(path) as page:
                cache.clear()
                cache[path] = page.convert("RGB")
        images.append(window(cache[path], i))
    return lf.to_records(emb.extract_local(images)), np.ascontiguousarray(emb.embed_images(images), np.float32)


_EMBEDDER: FingerprintEmbedder | None = None


def _worker_embedder() -> FingerprintEmbedder:
    global _EMBEDDER
    if _EMBEDDER is None:
        _EMBEDDER = FingerprintEmbedder()
    return _EMBEDDER


def grow_gallery(workdir: Path, crops: list[Image.Image], n: int, emb: FingerprintEmbedder, batch: int = 256,
                 workers: int = 2) -> int:
    """Rows 0..len(crops)-1 are the crops, then ``n`` windows: keypoint records in ``features.bin``, global
    vectors in ``global.f32``, both appended from where an earlier run stopped; batches are cut and
    described in ``workers`` processes and written in order. Returns the row count."""
    from concurrent.futures import ProcessPoolExecutor

    store = lf.LocalFeatureStore(workdir)
    vec_path = workdir / "global.f32"
    dim = emb.embed_images(crops[:1]).shape[1]
    have = min(len(store), (vec_path.stat().st_size // (4 * dim)) if vec_path.exists() else 0)
    if have < len(crops):
        have = 0
    store.dir.mkdir(parents=True, exist_ok=True)
    with open(vec_path, "ab") as fh:
        fh.truncate(have * 4 * dim)
    total, t0, start = len(crops) + n, time.perf_counter(), have
    batches = [range(b, min(total, b + batch)) for b in range(have, total, batch)]
    with ProcessPoolExecutor(workers) as pool:
        for rows, (records, vectors) in zip(batches, pool.map(_gallery_batch, batches, [len(crops)] * len(batches),
                                                               [crops[b.start:b.stop] for b in batches]), strict=True):
            store.write_records_at(rows.start, records)
            with open(vec_path, "ab") as fh:
                fh.write(vectors.tobytes())
            have = rows.stop
            el = time.perf_counter() - t0
            print(f"  gallery rows {have}/{total} ({(have - start) / el:.1f}/s, {el:.0f} s)", flush=True)
    return total


def many(crops: list[Image.Image], n: int, seeds: list[int], emb: FingerprintEmbedder, workdir: Path,
         grow_only: bool = False) -> None:
    """Top-k of the crops' augmented copies among the crops plus ``n`` windows, the way ``find_similar``
    runs one query: global top ``RERANK_CANDIDATES`` (exact, over every row), ``VOTED_CANDIDATES`` from the
    memory-mapped keypoint index, their records read from disk and verified."""
    import resource

    workdir.mkdir(parents=True, exist_ok=True)
    total = grow_gallery(workdir, crops, n, emb)
    if grow_only:
        return
    t = time.perf_counter()
    faiss.omp_set_num_threads(2)
    built = update_keypoint_index(workdir, rows_limit=total)
    kp_bytes = (workdir / "local" / "keypoints.faiss").stat().st_size
    print(f"keypoint index over {total} regions: {built}, updated in {time.perf_counter() - t:.0f} s, "
          f"{kp_bytes / 2**20:,.0f} MiB on disk ({kp_bytes / total / 1024:.1f} KiB per region)", flush=True)
    store = lf.LocalFeatureStore(workdir)
    dim = emb.embed_images(crops[:1]).shape[1]  # a larger earlier run grew more rows: only the first total count
    gallery = np.fromfile(workdir / "global.f32", dtype=np.float32, count=total * dim).reshape(total, dim)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kp = search_keypoints(workdir)
    faiss.omp_set_num_threads(1)
    m = len(crops)
    for seed in seeds:
        queries = augment_all(crops, seed)
        qv, ql = emb.embed_images(queries), emb.extract_local(queries)
        same = SamePicture(seed, m)
        plain, reranked, junk_dropped, times, misses = [], [], [], [], []
        for i in range(m):
            t0 = time.perf_counter()
            scores = gallery @ qv[i]
            top = np.argpartition(-scores, RERANK_CANDIDATES)[:RERANK_CANDIDATES]
            top = top[np.argsort(-scores[top], kind="stable")]
            voted = kp.votes(ql[i], VOTED_CANDIDATES)[0]
            cand = shortlist(top, voted)
            new = verify(ql[i], store.read(cand), scores[cand])[0]
            times.append(time.perf_counter() - t0)
            plain.append(int((scores > scores[i]).sum()))
            hit = np.flatnonzero(cand == i)
            above = cand[new > new[hit[0]]] if len(hit) else None
            reranked.append(len(above) if above is not None else 10**9)
            junk_dropped.append(sum(not same(i, int(r)) for r in above) if above is not None else 10**9)
            if reranked[-1]:
                misses.append((i, int(cand[np.argmax(new)])))
        fmt = lambda r: " ".join(f"top{k}={np.mean(np.asarray(r) < k):.3f}" for k in (1, 5, 10, 50))  # noqa: E731
        print(f"crops among {total} regions, seed {seed}: global {fmt(plain)}; reranked {fmt(reranked)}; "
              f"query (global + votes + verification, one thread) p50 {np.median(times) * 1e3:.0f} ms, "
              f"p95 {np.percentile(times, 95) * 1e3:.0f} ms; of the {len(misses)} misses, "
              f"{sum(same(crop, row) for crop, row in misses)} lost to a window of the same page that overlaps "
              "what the query shows at least as much as its original", flush=True)
        print(f"  the same with such windows dropped from the ranking (junk, as in the Oxford and Paris "
              f"benchmarks): {fmt(junk_dropped)}", flush=True)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"max RSS {rss / 1e6:.2f} GB (before the queries {rss0 / 1e6:.2f} GB; the mapped keypoint index counts "
          "only as far as its pages were touched, and they are page cache)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[42, 7])
    ap.add_argument("--windows", type=int, default=200, help="page windows as a second query set (0: none)")
    ap.add_argument("--distractors", type=int, default=1505,
                    help="page windows added to the crops' gallery (0: the plain protocol only)")
    ap.add_argument("--gallery", type=int, default=10_000, help="regions for the latency run (0: none)")
    ap.add_argument("--many", type=int, default=0,
                    help="only the crops among this many page windows, on disk (the other runs are skipped)")
    ap.add_argument("--grow-only", action="store_true", help="with --many: only cut and describe the windows")
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "ivs-fingerprint-many")
    args = ap.parse_args()
    import cv2

    cv2.setNumThreads(1)
    from real_crops import real_crops

    emb = FingerprintEmbedder()
    crops = [im for _, im in real_crops()]
    if args.many:
        many(crops, args.many, args.seeds, emb, args.workdir, args.grow_only)
        return
    protocol("real crops", crops, args.seeds, emb)
    windows = page_windows(max(args.windows, args.distractors))
    windows_local = emb.extract_local(windows)
    if args.windows:
        protocol("page windows", windows[:args.windows], args.seeds, emb)
    if args.distractors:
        protocol("crops+windows", crops, args.seeds, emb, windows[:args.distractors],
                 windows_local[:args.distractors])
    if args.gallery:
        latency(crops + windows, emb.extract_local(crops) + windows_local, args.gallery, emb)


if __name__ == "__main__":
    main()
