"""CPU embedding against the machine's limit: every path side by side in one run, with the matmul peaks.

    nice .venv/bin/python bench/embed.py --arch siglip --images 32 --batch 16 --rounds 3

Prints the machine's fp32 and bf16 matmul peaks (2048², measured in every round, beside the models), the
model's GFLOP per image (counted by torch's FlopCounterMode on one forward), then per path: the cost to start
it, images/s of the model alone and end to end (JPEG files decoded and preprocessed in worker threads ahead of
the model, as ``ivs embed`` does), the fraction of the bf16 peak reached, and the vectors' fidelity to fp32
(smallest cosine and top-5 neighbour overlap, on real crops from ../shared/data). Paths:

- naive: the paper's loop, Hugging Face processor and model in fp32, one image at a time;
- today: our batched pipeline on torch eager, bf16 where the CPU has it (the path before embed/cpu_paths.py);
- openvino, compile (torch.compile, inductor, frozen weights), int8 (dynamic, VNNI; gated, never a default).

Rounds interleave the paths in a rotating order and every figure is a median over rounds, so the ratios hold
on a shared machine; the absolute numbers need a quiet one. Random weights at the real architecture size (no
download): speed does not depend on the weights, fidelity does a little (int8 especially).

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


def matmul_tflops(dtype: torch.dtype, n: int = 2048, tries: int = 3) -> float:
    """Best of ``tries`` n×n products: the kernel's rate when it gets the cores."""
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    a @ b
    best = 0.0
    for _ in range(tries):
        t0 = time.perf_counter()
        a @ b
        best = max(best, 2 * n ** 3 / (time.perf_counter() - t0) / 1e12)
    return best


def gflop_per_image(emb) -> float:  # noqa: ANN001 - HFEmbedder
    from torch.utils.flop_counter import FlopCounterMode

    tower = emb._fp32_tower()
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        tower(torch.zeros((1, 3, emb.spec.height, emb.spec.width)))
    return counter.get_total_flops() / 1e9


class Int8Path:
    """Dynamic int8 on the embedder's fp32 tower, behind the same ``embed_prepared`` as the others."""

    def __init__(self, emb) -> None:  # noqa: ANN001 - HFEmbedder
        from iiif_visual_search.embed.cpu_paths import int8_runner

        self.emb, self.run = emb, int8_runner(emb._fp32_tower())

    def embed_prepared(self, batch: list[np.ndarray]) -> np.ndarray:
        from iiif_visual_search.embed.preprocess import normalise_batch

        with torch.inference_mode():
            feats = self.run(normalise_batch(np.stack(batch), self.emb.spec))
            return torch.nn.functional.normalize(feats, dim=1).numpy()


def end_to_end(emb, files: list[Path], batch: int) -> float:  # noqa: ANN001
    """images/s from JPEG files: decode and preprocess in worker threads a few batches ahead of the model,
    the way ``embed_job.run_embed`` does (without the catalogue and vector file writes)."""
    import os
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    from iiif_visual_search.embed_job import load_prepared

    preparer = getattr(emb, "emb", emb)
    t0 = time.perf_counter()
    with ThreadPoolExecutor(max(1, min(8, os.cpu_count() or 2))) as pool:
        chunks = [files[i:i + batch] for i in range(0, len(files), batch)]
        queue = deque([pool.submit(load_prepared, preparer, f) for f in c] for c in chunks[:3])
        for i in range(len(chunks)):
            futures = queue.popleft()
            if i + 3 < len(chunks):
                queue.append([pool.submit(load_prepared, preparer, f) for f in chunks[i + 3]])
            emb.embed_prepared([f.result() for f in futures])
    return len(files) / (time.perf_counter() - t0)


def model_only(emb, prepared: list[np.ndarray], batch: int) -> float:  # noqa: ANN001
    t0 = time.perf_counter()
    for i in range(0, len(prepared), batch):
        emb.embed_prepared(prepared[i:i + batch])
    return len(prepared) / (time.perf_counter() - t0)


def paths_side_by_side(args: argparse.Namespace) -> None:
    import os
    import statistics

    from iiif_visual_search.embed import cpu_paths as cp
    from iiif_visual_search.embed.models import HFEmbedder

    ims = images(args.images)
    load0 = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("IVS_CACHE_DIR", str(Path(tmp) / "cache"))  # cold: conversions are measured
        path = build(args.arch, Path(tmp))
        files = []
        for i, im in enumerate(ims):
            files.append(Path(tmp) / f"crop{i}.jpg")
            im.convert("RGB").save(files[-1], quality=90)
        fp32 = HFEmbedder(str(path), str(path), device="cpu", precision="fp32", cpu_path="torch")
        gflop = gflop_per_image(fp32)
        prepared = [fp32.prepare(im) for im in ims]
        reference = np.concatenate([fp32.embed_prepared(prepared[i:i + args.batch])
                                    for i in range(0, len(prepared), args.batch)])
        del fp32
        paths: dict[str, object] = {}
        start: dict[str, float] = {}
        for name in args.paths:
            t0 = time.perf_counter()
            if name == "int8":
                paths[name] = Int8Path(HFEmbedder(str(path), str(path), device="cpu", precision="fp32",
                                                  cpu_path="torch"))
            else:
                emb = HFEmbedder(str(path), str(path), device="cpu", precision=args.precision,
                                 cpu_path="torch" if name == "today" else name)
                paths[name] = emb
            paths[name].embed_prepared(prepared[:args.batch])  # build and first batch: what starting costs
            start[name] = time.perf_counter() - t0
        fid = {name: cp.fidelity(reference, np.concatenate([p.embed_prepared(prepared[i:i + args.batch])
                                                            for i in range(0, len(prepared), args.batch)]))
               for name, p in paths.items()}
        peaks: dict[str, list[float]] = {"fp32": [], "bf16": []}
        rates: dict[str, list[float]] = {n: [] for n in ["naive", *paths]}
        e2e: dict[str, list[float]] = {n: [] for n in paths}
        frac: dict[str, list[float]] = {n: [] for n in paths}
        naive_vectors = None
        order = list(paths)
        for r in range(args.rounds):
            peaks["fp32"].append(matmul_tflops(torch.float32))
            peaks["bf16"].append(matmul_tflops(torch.bfloat16))
            ips, naive_vectors = naive(path, args.arch, ims[:args.naive])
            rates["naive"].append(ips)
            for name in order[r % len(order):] + order[:r % len(order)]:
                rates[name].append(model_only(paths[name], prepared, args.batch))
                e2e[name].append(end_to_end(paths[name], files, args.batch))
                # Against a peak taken right beside it: the load on a shared machine changes by the second.
                frac[name].append(e2e[name][-1] * gflop / 1e3 / matmul_tflops(torch.bfloat16))
            print(f"round {r + 1}/{args.rounds}: load {os.getloadavg()[0]:.1f}, bf16 peak "
                  f"{peaks['bf16'][-1]:.3f} TFLOP/s, " + ", ".join(f"{n} {e2e[n][-1]:.2f}" for n in order)
                  + " img/s end to end", flush=True)
        med = {k: statistics.median(v) for k, v in {**rates, **{f"e2e-{k}": v for k, v in e2e.items()}}.items()}
        trials = [cp.Trial("torch" if n == "today" else n, med[f"e2e-{n}"], start[n], *fid[n]) for n in paths]
        best = cp.choose(trials, allow_int8=False)
        best_name = "today" if best == "torch" else best
        naive_cos = float((reference[:args.naive] * naive_vectors).sum(1).min())
    bf16, fp32_peak = statistics.median(peaks["bf16"]), statistics.median(peaks["fp32"])
    print(f"\n{args.arch}, {os.cpu_count()} CPUs ({' '.join(cp.cpu_flags())}), torch {torch.__version__} with "
          f"{torch.get_num_threads()} threads, openvino {cp.openvino_version() or 'absent'}; load average "
          f"{load0[0]:.1f} at the start, {os.getloadavg()[0]:.1f} at the end; {args.rounds} round(s) of "
          f"{len(ims)} images, batch {args.batch}")
    print(f"matmul 2048²: fp32 {fp32_peak:.3f} TFLOP/s, bf16 {bf16:.3f} TFLOP/s ({bf16 / fp32_peak:.1f}×); "
          f"{gflop:.1f} GFLOP per image: the bf16 limit is {bf16 * 1e3 / gflop:.1f} images/s")
    print(f"{'path':<10} {'start s':>8} {'model img/s':>12} {'e2e img/s':>10} {'× today':>8} {'of bf16 peak':>13} "
          f"{'cos min':>9} {'top-5':>6}  gate")
    print(f"{'naive':<10} {'':>8} {med['naive']:>12.2f} {'':>10} {med['naive'] / med['e2e-today']:>8.2f} "
          f"{med['naive'] * gflop / 1e3 / bf16:>13.0%} {naive_cos:>9.6f} {'':>6}")
    for t, n in zip(trials, paths):
        print(f"{n:<10} {start[n]:>8.1f} {med[n]:>12.2f} {med[f'e2e-{n}']:>10.2f} "
              f"{med[f'e2e-{n}'] / med['e2e-today']:>8.2f} {statistics.median(frac[n]):>13.0%} "
              f"{t.min_cosine:>9.6f} {t.overlap:>6.2f}  {'pass' if t.passed else 'FAIL'}")
    print(f"best (what a calibration picks, int8 not allowed): {best_name}: {med[f'e2e-{best_name}']:.2f} img/s "
          f"end to end, {statistics.median(frac[best_name]):.0%} of the bf16 peak, "
          f"{med[f'e2e-{best_name}'] / med['naive']:.2f}× naive; model alone "
          f"{med[best_name] * gflop / 1e3 / bf16:.0%}")


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
    ap.add_argument("--images", type=int, default=32)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--naive", type=int, default=6, help="images per round for the naive loop (it is slow)")
    ap.add_argument("--paths", nargs="+", default=["today", "openvino", "compile", "int8"],
                    choices=["today", "openvino", "compile", "int8"])
    ap.add_argument("--precision", default=None, help="auto (default), fp32, bf16, fp16")
    ap.add_argument("--ray", default=None, help="local, auto or ray://HOST:PORT: the Ray path against the local one")
    args = ap.parse_args()
    torch.manual_seed(0)
    if args.ray:
        ray_vs_local(args)
        return
    if "today" not in args.paths:
        args.paths.insert(0, "today")
    paths_side_by_side(args)


if __name__ == "__main__":
    main()
