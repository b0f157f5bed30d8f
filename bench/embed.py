"""Images/s of our batched embedding pipeline against the naive per-image Hugging Face loop, same run.

The naive loop is what the paper ran: AutoImageProcessor + model, fp32, one image at a time.
Random weights at the real architecture size (no download): speed does not depend on the weights.

    .venv/bin/python bench/embed.py --arch siglip --images 48 --batch 8
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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", default="siglip", choices=["siglip", "clip", "vit"])
    ap.add_argument("--images", type=int, default=48)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--precision", default=None, help="auto (default), fp32, bf16, fp16")
    args = ap.parse_args()
    torch.manual_seed(0)
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
