"""The weight-free fingerprint under the paper's exact-retrieval protocol on the real crops of ../shared/data.

Measured (fp1, 174 crops, exact inner-product search, seeds 42 and 7): top-1 0.59/0.59, top-5 0.70/0.71,
top-10 0.75/0.75, top-50 0.86/0.90. A 16×16 grey thumbnail gives top-1 0.48/0.49 on the same crops.
The thresholds below sit a little under the measurement so that a regression fails; the issue's 90 % top-1
is NOT reached yet (needs local features with geometric re-ranking).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from iiif_visual_search.embed.fingerprint import DIM, fingerprint
from iiif_visual_search.embed.models import get_embedder
from iiif_visual_search.embed.protocol import Augmentation, augment_all, exact_retrieval, ranks_from_scores

from real_crops import real_crops


def _thumb(images: list[Image.Image]) -> np.ndarray:
    x = np.stack([np.asarray(im.convert("L").resize((16, 16), Image.Resampling.BOX), np.float32).ravel()
                  for im in images])
    x -= x.mean(1, keepdims=True)
    return x / (np.linalg.norm(x, axis=1, keepdims=True) + 1e-9)


def test_fingerprint_exact_retrieval_protocol_on_real_crops() -> None:
    crops = [im for _, im in real_crops()]
    assert len(crops) >= 150
    emb = get_embedder("fingerprint")
    result = exact_retrieval(crops, emb.embed_images, seed=42)
    s = result.summary()
    print("fingerprint", len(crops), s)
    baseline = exact_retrieval(crops, _thumb, seed=42).summary()
    assert s["top1"] >= 0.55 and s["top10"] >= 0.70 and s["top50"] >= 0.82
    assert s["top1"] > baseline["top1"] + 0.05


def test_fingerprint_is_normalised_deterministic_and_white_fill_invariant() -> None:
    im = real_crops()[10][1]
    a, b = fingerprint(im), fingerprint(im.copy())
    assert a.shape == (DIM,) and a.dtype == np.float32
    assert np.array_equal(a, b) and abs(np.linalg.norm(a) - 1) < 1e-5
    padded = Image.new("RGB", (im.width + 40, im.height + 40), "white")
    padded.paste(im, (20, 20))
    assert float(fingerprint(padded) @ a) > 0.95  # white margins are trimmed away


def test_protocol_crops_all_four_sides() -> None:
    im = Image.new("RGB", (200, 100), "black")
    out = Augmentation(0.0, 0.1, 0.0, 0.0, 0.1, 1.0, 1.0).apply(im)
    assert out.size == (180, 90)  # the paper's code would have ignored crop_bottom
    assert ranks_from_scores(np.eye(3)).tolist() == [0, 0, 0]
    assert len(augment_all([im, im], seed=1)) == 2
