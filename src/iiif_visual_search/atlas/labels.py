"""Names for clusters: the words that set a cluster's context text apart, and, with a model that reads
text (SigLIP, CLIP), the prompt its pictures match best.

Context words are a class-based TF-IDF: term counts summed over a cluster's regions, weighted by the inverse
document frequency over all regions, so that words every page has (articles, running heads) rank low
whatever the language. A word must occur around at least two of the cluster's regions: one region's OCR
noise does not name a cluster. The zero-shot label compares the cluster's mean image vector with each
prompt's text vector (the same model), the way ``classify/zeroshot`` labels single regions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

TOKEN = r"(?u)\b[^\W\d_]{3,}\b"   # words of three letters or more, any script, no digits
TERMS = 3

# What pictures in digitised books and newspapers show; one line per prompt in ``--prompts FILE`` replaces it.
PROMPTS: tuple[str, ...] = (
    "a portrait of a person", "a group of people", "a crowd", "a religious scene", "a battle scene",
    "a landscape", "a city view", "a building", "a church", "a castle", "a ship", "a harbour", "the sea",
    "a horse", "an animal", "a bird", "a plant or flower", "a tree", "a map", "sheet music", "a diagram",
    "a mathematical chart", "a table of numbers", "a technical drawing of a machine", "a coat of arms",
    "a decorative initial letter", "an ornament or vignette", "a printed border", "a title page",
    "a page of printed text", "handwriting", "a library stamp", "a blank page", "an advertisement",
    "a fashion illustration", "a photograph", "a woodcut", "an engraving", "a cartoon", "a signature",
)


def read_prompts(path: Path) -> list[str]:
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    prompts = [line for line in lines if line and not line.startswith("#")]
    if not prompts:
        raise ValueError(f"{path} names no prompt (one per line)")
    return prompts


def context_terms(texts: Sequence[str], labels: np.ndarray, top: int = TERMS) -> dict[int, list[str]]:
    """The ``top`` distinctive context words of each cluster (labels ≥ 0), best first."""
    from scipy import sparse
    from sklearn.feature_extraction.text import CountVectorizer

    clusters = sorted({int(v) for v in labels.tolist() if v >= 0})
    out: dict[int, list[str]] = {c: [] for c in clusters}
    if not clusters or not any(texts):
        return out
    vectorizer = CountVectorizer(token_pattern=TOKEN, lowercase=True, min_df=2, max_df=0.5, max_features=100_000)
    try:
        counts = vectorizer.fit_transform(texts).tocsr()
    except ValueError:  # no word left (tiny or empty corpus)
        return out
    n = counts.shape[0]
    df = np.asarray((counts > 0).sum(axis=0)).ravel()
    idf = np.log((1 + n) / (1 + df)) + 1.0
    words = vectorizer.get_feature_names_out()
    row_of = {c: i for i, c in enumerate(clusters)}
    member = np.array([row_of.get(int(v), -1) for v in labels.tolist()])
    keep = member >= 0
    indicator = sparse.csr_matrix((np.ones(int(keep.sum())), (member[keep], np.flatnonzero(keep))),
                                  shape=(len(clusters), n))
    tf = (indicator @ counts).toarray().astype(np.float64)          # term counts per cluster
    support = (indicator @ (counts > 0).astype(np.float64)).toarray()  # regions per cluster with the term
    totals = tf.sum(axis=1, keepdims=True)
    score = np.where(support >= 2, tf / np.maximum(totals, 1) * idf, 0.0)
    for cluster, row in zip(clusters, score):
        best = np.argsort(-row, kind="stable")[:top]
        out[cluster] = [str(words[i]) for i in best if row[i] > 0]
    return out


def prompt_labels(centroids: Mapping[int, np.ndarray], embedder: Any, prompts: Sequence[str],
                  ) -> dict[int, tuple[str, float]]:
    """Per cluster, the prompt whose text vector is closest to the cluster's mean image vector, and the cosine."""
    if not centroids:
        return {}
    text = np.asarray(embedder.embed_texts(list(prompts)), dtype=np.float32)
    text /= np.maximum(np.linalg.norm(text, axis=1, keepdims=True), 1e-12)
    keys = sorted(centroids)
    means = np.stack([centroids[k] for k in keys]).astype(np.float32)
    means /= np.maximum(np.linalg.norm(means, axis=1, keepdims=True), 1e-12)
    sims = means @ text.T
    best = sims.argmax(axis=1)
    return {k: (prompts[int(b)], float(sims[i, b])) for i, (k, b) in enumerate(zip(keys, best))}


def display_label(cluster: int, terms: Sequence[str], prompt: str) -> str:
    """"a map · kart, fylke, amt": the prompt, then the words; ``Cluster 7`` when neither is known."""
    words = ", ".join(terms)
    if prompt and words:
        return f"{prompt} · {words}"
    return prompt or words or f"Cluster {cluster}"
