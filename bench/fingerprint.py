"""Fingerprint near-duplicate mode under the paper's exact-retrieval protocol: top-k of the global vector
alone and re-ranked by local features (as ``find_similar`` does), and the latency of one query over a
gallery of ``--gallery`` regions (FAISS candidate search + reading 200 keypoint records + verification).

    .venv/bin/python bench/fingerprint.py [--seeds 42 7] [--windows 200] [--gallery 10000]

Sets: the 174 real crops of tests/real_crops.py; and random page windows (a different distribution:
whole-page PNG/JPEG/TIFF of DTA, Gallicorpora, OCR-D Kant and Indian ferns, BnF thumbnails).
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
from iiif_visual_search.embed.fingerprint import RERANK_CANDIDATES, FingerprintEmbedder  # noqa: E402
from iiif_visual_search.embed.protocol import RetrievalResult, augment_all, ranks_from_scores  # noqa: E402

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


def protocol(name: str, images: list[Image.Image], seeds: list[int], emb: FingerprintEmbedder) -> None:
    gallery_v = emb.embed_images(images)
    gallery_l = emb.extract_local(images)
    for seed in seeds:
        queries = augment_all(images, seed)
        t = time.perf_counter()
        scores = emb.embed_images(queries) @ gallery_v.T
        plain = RetrievalResult(ranks_from_scores(scores)).summary()
        reranked = RetrievalResult(ranks_from_scores(emb.rerank(emb.extract_local(queries), gallery_l,
                                                                scores))).summary()
        dt = (time.perf_counter() - t) / len(images)
        fmt = lambda s: " ".join(f"{k}={v:.3f}" for k, v in s.items())  # noqa: E731
        print(f"{name:<14} n={len(images):<4} seed={seed:<3} global   {fmt(plain)}")
        print(f"{'':<14} {'':<6} {'':<8} reranked {fmt(reranked)}   ({dt * 1e3:.0f} ms/query incl. extraction)")


def latency(images: list[Image.Image], size: int, emb: FingerprintEmbedder, queries: int = 30) -> None:
    """One query at a time against ``size`` regions (the real crops repeated): FAISS flat search over the
    global vectors, then the stored records of the top candidates read from disk and verified."""
    vecs = emb.embed_images(images)
    feats = emb.extract_local(images)
    reps = -(-size // len(images))
    gallery = np.tile(vecs, (reps, 1))[:size]
    gallery = gallery + np.random.default_rng(0).normal(0, 0.01, gallery.shape).astype(np.float32)
    gallery /= np.linalg.norm(gallery, axis=1, keepdims=True)
    index = faiss.IndexFlatIP(gallery.shape[1])
    index.add(gallery)
    with tempfile.TemporaryDirectory() as tmp:
        store = lf.LocalFeatureStore(tmp)
        for start in range(0, size, len(images)):
            store.write_at(start, feats[:min(len(images), size - start)])
        qs = augment_all(images[:queries], 99)
        stages = {"extract": [], "search": [], "rerank": [], "total": []}
        faiss.omp_set_num_threads(1)
        for q in qs:
            t0 = time.perf_counter()
            qv, ql = emb.embed_images([q]), lf.extract(q)
            t1 = time.perf_counter()
            scores, rows = index.search(qv, RERANK_CANDIDATES)
            t2 = time.perf_counter()
            inl = lf.inliers_against(ql, store.read(rows[0]))
            lf.rerank_order(inl, scores[0])
            t3 = time.perf_counter()
            for k, v in zip(stages, (t1 - t0, t2 - t1, t3 - t2, t3 - t0)):
                stages[k].append(v)
    print(f"latency over {size} regions, {RERANK_CANDIDATES} candidates re-ranked, one thread: " + ", ".join(
        f"{k} p50 {np.median(v) * 1e3:.0f} ms / p95 {np.percentile(v, 95) * 1e3:.0f} ms" for k, v in stages.items()))
    print(f"local features on disk: {lf.record_dtype().itemsize} bytes per region")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[42, 7])
    ap.add_argument("--windows", type=int, default=200)
    ap.add_argument("--gallery", type=int, default=10_000)
    args = ap.parse_args()
    import cv2

    cv2.setNumThreads(1)
    from real_crops import real_crops

    emb = FingerprintEmbedder()
    crops = [im for _, im in real_crops()]
    protocol("real crops", crops, args.seeds, emb)
    if args.windows:
        protocol("page windows", page_windows(args.windows), args.seeds, emb)
    if args.gallery:
        latency(crops, args.gallery, emb)


if __name__ == "__main__":
    main()
