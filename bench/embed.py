"""Images/s of our batched embedding pipeline against the naive per-image Hugging Face loop, same run.

The naive loop is what the paper ran: AutoImageProcessor + model, fp32, one image at a time.
Random weights at the real architecture size (no download): speed does not depend on the weights.

    .venv/bin/python bench/embed.py --arch siglip --images 48 --batch 8

``--ray local`` compares instead ``ivs embed --ray local`` with the local ``ivs embed``, end to end from cached
images in a catalogue, for the architecture and the weight-free fingerprint. Each path runs twice, on
``--images`` and on a quarter of them, so the time splits into a fixed start-up (worker processes, model
loads) and a cost per image; the Ray path's overhead per image is the difference of the slopes.

    .venv/bin/python bench/embed.py --ray local --arch siglip --images 64 --batch 16
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))


def build(arch: str, root: Path) -> Path:
    import transformers as t

    path = root / arch
    if arch == "siglip":
        cfg = t.SiglipConfig(text_config={"vocab_size": 1000},
                             vision_config={"image_size": 256, "patch_size": 16})
        t.SiglipModel(cfg).save_pretrained(path)
        t.SiglipImageProcessor(size={"height": 256, "width": 256}, resample=3).save_pretrained(path)
    elif arch == "clip":
        cfg = t.CLIPConfig(text_config={"vocab_size": 1000}, vision_config={"patch_size": 32})
        t.CLIPModel(cfg).save_pretrained(path)
        t.CLIPImageProcessor().save_pretrained(path)
    else:
        t.ViTModel(t.ViTConfig(), add_pooling_layer=False).save_pretrained(path)
        t.ViTImageProcessor().save_pretrained(path)
    return path


def images(n: int) -> list[Image.Image]:
    try:
        from real_crops import real_crops
        crops = [im for _, im in real_crops()]
    except Exception:  # noqa: BLE001 - no shared data: synthetic pictures of varied sizes
        rng = np.random.default_rng(0)
        crops = [Image.fromarray(rng.integers(0, 255, (rng.integers(100, 500), rng.integers(100, 500), 3),
                                              dtype=np.uint8)) for _ in range(32)]
    return [crops[i % len(crops)] for i in range(n)]


def naive(path: Path, arch: str, ims: list[Image.Image]) -> tuple[float, np.ndarray]:
    from transformers import AutoImageProcessor, AutoModel

    proc = AutoImageProcessor.from_pretrained(path)
    model = AutoModel.from_pretrained(path).eval()
    out = []
    t0 = time.perf_counter()
    with torch.inference_mode():
        for im in ims:
            px = proc(images=im.convert("RGB"), return_tensors="pt")["pixel_values"]
            if arch == "vit":
                v = model(pixel_values=px, output_hidden_states=True).hidden_states[-1][:, 0]
            else:
                o = model.get_image_features(pixel_values=px)
                v = o if torch.is_tensor(o) else o.pooler_output
            out.append(torch.nn.functional.normalize(v, dim=1)[0].numpy())
    return len(ims) / (time.perf_counter() - t0), np.stack(out)


def ours(path: Path, ims: list[Image.Image], batch: int, precision: str | None) -> tuple[float, np.ndarray, str]:
    from concurrent.futures import ThreadPoolExecutor

    from iiif_visual_search.embed.models import HFEmbedder

    emb = HFEmbedder(str(path), str(path), precision=precision)
    emb.embed_images(ims[:2])  # warm-up (oneDNN kernels)
    t0 = time.perf_counter()
    rows = []
    with ThreadPoolExecutor(4) as pool:
        prepared = list(pool.map(emb.prepare, ims))
        for i in range(0, len(prepared), batch):
            rows.append(emb.embed_prepared(prepared[i:i + batch]))
    return len(ims) / (time.perf_counter() - t0), np.concatenate(rows), f"{emb.device}/{emb.dtype}"


class CpuMeter:
    """CPU seconds of this process and every process below it (the local Ray cluster's workers), sampled
    from /proc, the last reading of an exited process kept. On a shared machine CPU time per image is a far
    steadier figure than wall time, and the one that cost scales with."""

    def __init__(self, every: float = 0.2) -> None:
        import os
        import threading

        self.tick = os.sysconf("SC_CLK_TCK")
        self.seen: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(every,), daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        import os

        parent: dict[int, int] = {}
        times: dict[int, float] = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parent[int(entry)] = int(fields[1])
            times[int(entry)] = (int(fields[11]) + int(fields[12])) / self.tick
        me = os.getpid()
        for pid, cpu in times.items():
            p, hops = pid, 0
            while p not in (0, 1, me) and hops < 64:
                p, hops = parent.get(p, 0), hops + 1
            if p == me or pid == me:
                self.seen[pid] = cpu

    def _run(self, every: float) -> None:
        while not self._stop.wait(every):
            self._sample()

    def total(self) -> float:
        self._sample()
        return sum(self.seen.values())


def ray_vs_local(args: argparse.Namespace) -> None:
    import os

    from embed_data import build_data_dir

    from iiif_visual_search.catalogue import Catalogue
    from iiif_visual_search.embed.models import get_embedder
    from iiif_visual_search.embed_ray import connect, run_embed_ray
    from iiif_visual_search.embed_job import run_embed

    meter = CpuMeter()
    t0 = time.perf_counter()
    connect(args.ray, num_cpus=os.cpu_count())
    print(f"ray: cluster {args.ray} up in {time.perf_counter() - t0:.1f} s; {os.cpu_count()} CPUs here; load "
          f"average {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for model, n in ((str(build(args.arch, root)), args.images), ("fingerprint", args.images * 4)):
            name = args.arch if model != "fingerprint" else model
            get_embedder(model, "cpu", precision=args.precision)  # loaded once here: not part of either path
            sizes = (n // 4, n)
            cpu: dict[str, list[float]] = {"local": [], "ray": []}
            for size in sizes:
                for way in ("local", "ray"):
                    data = build_data_dir(root / f"{name}-{way}-{size}", size, images=images(size))
                    cat = Catalogue(data / "catalogue.sqlite")
                    c, t = meter.total(), time.perf_counter()
                    if way == "local":
                        report = run_embed(cat, data, model, device="cpu", batch_size=args.batch, progress=False)
                    else:
                        report = run_embed_ray(cat, data, model, address=args.ray, precision=args.precision,
                                               batch_size=args.batch, progress=False)
                    wall, used = time.perf_counter() - t, meter.total() - c
                    assert report.embedded == size, report
                    cpu[way].append(used)
                    print(f"{name} {way} {size} images: {wall:.1f} s ({size / wall:.1f} img/s), CPU {used:.1f} s "
                          f"({used / size * 1e3:.0f} ms/img); first batch after {report.warmup_seconds:.1f} s; "
                          f"load {os.getloadavg()[0]:.1f}")
            per = {w: (c[1] - c[0]) / (sizes[1] - sizes[0]) for w, c in cpu.items()}
            fixed = {w: c[0] - per[w] * sizes[0] for w, c in cpu.items()}
            print(f"{name}: CPU per image local {per['local'] * 1e3:.0f} ms, ray {per['ray'] * 1e3:.0f} ms "
                  f"(overhead {(per['ray'] - per['local']) * 1e3:+.0f} ms, {per['ray'] / per['local']:.2f}x); "
                  f"fixed CPU per job local {fixed['local']:.1f} s, ray {fixed['ray']:.1f} s")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", default="siglip", choices=["siglip", "clip", "vit"])
    ap.add_argument("--images", type=int, default=48)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--precision", default=None, help="auto (default), fp32, bf16, fp16")
    ap.add_argument("--ray", default=None, help="local, auto or ray://HOST:PORT: the Ray path against the local one")
    args = ap.parse_args()
    torch.manual_seed(0)
    if args.ray:
        ray_vs_local(args)
        return
    ims = images(args.images)
    with tempfile.TemporaryDirectory() as tmp:
        path = build(args.arch, Path(tmp))
        base_ips, base = naive(path, args.arch, ims)
        fast_ips, fast, where = ours(path, ims, args.batch, args.precision)
    cos = (base * fast).sum(1)
    print(f"{args.arch}: naive fp32 per-image {base_ips:.2f} img/s | ours ({where}, batch {args.batch}) "
          f"{fast_ips:.2f} img/s | speed-up {fast_ips / base_ips:.2f}x | cosine min {cos.min():.6f} "
          f"mean {cos.mean():.6f} | torch threads {torch.get_num_threads()}")


if __name__ == "__main__":
    main()
