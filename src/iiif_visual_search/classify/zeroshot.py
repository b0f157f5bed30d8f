"""Zero-shot labels from SigLIP/CLIP text prompts, for collections with no manual labels yet.

Each class gets a few prompts; a class's text vector is the normalised mean of its prompts' vectors.
Probabilities are a softmax over cosine similarities times ``temperature`` (CLIP's learned logit scale
is about 100); they rank regions, they are not calibrated.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

PROMPTS: dict[str, tuple[str, ...]] = {
    "Blank page": ("a scan of an empty blank book page", "a blank sheet of old paper"),
    "Segmentation anomaly": ("a scan of a page of printed text", "a thin strip cut from the edge of a scanned page",
                             "a block of printed text in an old book"),
    "Illustration or photograph": ("an illustration in an old book", "an engraving", "a photograph in a book"),
    "Musical notation": ("sheet music with musical notes on staves", "musical notation"),
    "Map": ("a map", "an old printed map"),
    "Mathematical chart": ("a mathematical chart or graph", "a diagram with plotted curves and axes"),
    "Graphical element": ("a decorative ornament or initial letter in an old book", "a printed border or vignette",
                          "a library stamp"),
}


def class_prompts(classes: Sequence[str], extra: Mapping[str, Sequence[str]] | None = None) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for cls in classes:
        prompts = list((extra or {}).get(cls, ())) or list(PROMPTS.get(cls, ()))
        out[cls] = prompts or [f"a picture of {cls.lower()}"]
    return out


def text_vectors(embedder: Any, prompts: Mapping[str, Sequence[str]]) -> np.ndarray:
    rows = []
    for texts in prompts.values():
        v = np.asarray(embedder.embed_texts(list(texts)), dtype=np.float32).mean(axis=0)
        rows.append(v / max(float(np.linalg.norm(v)), 1e-12))
    return np.stack(rows)


def zero_shot(image_vectors: np.ndarray, class_vectors: np.ndarray, classes: Sequence[str],
              temperature: float = 100.0) -> tuple[list[str], np.ndarray]:
    """(label, probability) per image vector (rows L2-normalised, same model as the text vectors)."""
    logits = temperature * (np.asarray(image_vectors, dtype=np.float32) @ class_vectors.T)
    logits -= logits.max(axis=1, keepdims=True)
    p = np.exp(logits)
    p /= p.sum(axis=1, keepdims=True)
    idx = p.argmax(axis=1)
    return [classes[i] for i in idx], p[np.arange(len(idx)), idx]
