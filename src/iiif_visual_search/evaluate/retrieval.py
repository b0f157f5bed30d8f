"""The paper's exact-retrieval experiment (chr24.md §4a), offline and exact.

Each original gets one random augmentation from a fixed seed (rotation ±10°, independent crops of up
to 15 % from all four sides — the paper's bottom-crop bug fixed — and independent 0.8–1.2 width and
height scaling; see ``protocol.Augmentation``). The augmented image queries the originals by
exact inner product, and the rank of its own original is recorded. Unlike the paper, the gallery is the
evaluated set itself (not a live approximate index), so results do not drift with a server's state.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from PIL import Image
from tqdm import tqdm

from .protocol import Augmentation, search_scores

KS = (1, 5, 10, 50)


class ImageEmbedder(Protocol):
    def embed_images(self, images: list[Image.Image]) -> np.ndarray: ...


@dataclass
class RetrievalItem:
    id: str
    label: str
    load: Callable[[], Image.Image]  # loaded lazily: a collection's crops need not all sit in memory


@dataclass
class ModelResult:
    model: str
    ranks: np.ndarray  # 0-based rank of each query's own original
    top1: list[int]  # index of the best hit per query

    def top(self, k: int, mask: np.ndarray | None = None) -> float:
        r = self.ranks if mask is None else self.ranks[mask]
        return float(np.mean(r < k)) if len(r) else float("nan")


@dataclass
class RetrievalReport:
    items: list[RetrievalItem]
    augmentations: list[Augmentation]
    results: list[ModelResult] = field(default_factory=list)
    seed: int = 42

    def summary(self) -> dict[str, Any]:
        labels = np.array([it.label for it in self.items])
        out: dict[str, Any] = {"n": len(self.items), "seed": self.seed, "gallery": "the evaluated originals (exact)",
                               "models": {}}
        for res in self.results:
            per_class = {}
            for cls in sorted(set(labels.tolist())):
                mask = labels == cls
                per_class[cls] = {"n": int(mask.sum()), **{f"top{k}": res.top(k, mask) for k in KS}}
            out["models"][res.model] = {
                **{f"top{k}": res.top(k) for k in KS},
                "counts": {f"top{k}": int(np.sum(res.ranks < k)) for k in KS},
                "mean_reciprocal_rank": float(np.mean(1.0 / (res.ranks + 1))),
                "by_class": per_class,
            }
        return out

    def rows(self) -> list[dict[str, Any]]:
        """Per query: the augmentation and each model's rank (the paper's results CSV, 0-based ranks)."""
        out = []
        for i, (it, aug) in enumerate(zip(self.items, self.augmentations, strict=True)):
            row: dict[str, Any] = {"id": it.id, "label": it.label, **aug.__dict__}
            for res in self.results:
                row[f"{res.model} rank"] = int(res.ranks[i])
            out.append(row)
        return out


def _embed(embedder: ImageEmbedder, images: Iterable[Image.Image], n: int, batch: int, desc: str) -> np.ndarray:
    rows: list[np.ndarray] = []
    buf: list[Image.Image] = []
    with tqdm(total=n, desc=desc, unit="img", disable=n < 2) as bar:
        for im in images:
            buf.append(im)
            if len(buf) == batch:
                rows.append(np.asarray(embedder.embed_images(buf), dtype=np.float32))
                bar.update(len(buf))
                buf = []
        if buf:
            rows.append(np.asarray(embedder.embed_images(buf), dtype=np.float32))
            bar.update(len(buf))
    X = np.vstack(rows)
    return X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)


def ranks_of_targets(scores: np.ndarray) -> tuple[np.ndarray, list[int]]:
    """scores[i, j]: query i vs original j, target j == i. Ties count against the target (pessimistic)."""
    target = scores[np.arange(len(scores)), np.arange(len(scores))]
    ranks = np.sum(scores > target[:, None], axis=1) + np.sum(
        (scores == target[:, None]) & (np.arange(len(scores))[None, :] != np.arange(len(scores))[:, None]), axis=1)
    return ranks.astype(np.int64), scores.argmax(axis=1).tolist()


def run_retrieval(items: Sequence[RetrievalItem], embedders: dict[str, ImageEmbedder], seed: int = 42,
                  batch: int = 32) -> RetrievalReport:
    if len(items) < 2:
        raise ValueError("the retrieval experiment needs at least two images")
    rng = np.random.default_rng(seed)
    augs = [Augmentation.draw(rng) for _ in items]
    report = RetrievalReport(list(items), augs, seed=seed)
    for name, embedder in embedders.items():
        originals = _embed(embedder, (it.load().convert("RGB") for it in items), len(items), batch,
                           f"{name}: originals")
        queries = _embed(embedder, (a.apply(it.load()) for it, a in zip(items, augs, strict=True)), len(items),
                         batch, f"{name}: augmented queries")
        # The fingerprint re-ranks as its search does (protocol.search_scores): what a user's query gets.
        scores = search_scores(embedder, (a.apply(it.load()) for it, a in zip(items, augs, strict=True)),
                               (it.load().convert("RGB") for it in items), queries @ originals.T)
        ranks, top1 = ranks_of_targets(scores)
        report.results.append(ModelResult(name, ranks, top1))
    return report


# --- pictures ------------------------------------------------------------------------------------

def save_plot(report: RetrievalReport, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(2 + 1.6 * len(KS), 4), dpi=100)
    width = 0.8 / max(1, len(report.results))
    for m, res in enumerate(report.results):
        vals = [res.top(k) for k in KS]
        xs = np.arange(len(KS)) + m * width
        ax.bar(xs, vals, width, label=res.model)
        for x, v in zip(xs, vals, strict=True):
            ax.text(x, v + 0.01, f"{v:.2f}", ha="center", fontsize=8)
    ax.set_xticks(np.arange(len(KS)) + width * (len(report.results) - 1) / 2, [f"top-{k}" for k in KS])
    ax.set_ylim(0, 1.08)
    ax.set_ylabel("share of queries whose original is found")
    ax.set_title(f"exact retrieval of augmented images (n={len(report.items)}, seed={report.seed})")
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def failures(report: RetrievalReport, min_rank: int = 1) -> list[tuple[str, int, int]]:
    """(model, query index, 0-based rank) for every query whose original ranked at ``min_rank`` (0-based) or
    worse: ``min_rank=1`` lists every query whose original was not the first hit."""
    return [(res.model, i, int(r)) for res in report.results for i, r in enumerate(res.ranks) if r >= min_rank]


def save_contact_sheet(report: RetrievalReport, path: Path, min_rank: int = 1, limit: int = 60,
                       cell: int = 160) -> Path | None:
    """One row per failure: augmented query | its original | the top hit; None when nothing failed."""
    from PIL import ImageDraw

    fails = failures(report, min_rank)[:limit]
    if not fails:
        return None
    label_h = 14
    sheet = Image.new("RGB", (3 * cell, len(fails) * (cell + label_h)), "white")
    draw = ImageDraw.Draw(sheet)
    top1 = {res.model: res.top1 for res in report.results}
    for row, (model, i, rank) in enumerate(fails):
        item = report.items[i]
        hit = report.items[top1[model][i]]
        y = row * (cell + label_h)
        draw.text((2, y), f"{model} rank {rank + 1}: {item.id} [{item.label}]  top hit: {hit.id}"[:80], fill="black")
        for col, im in enumerate((report.augmentations[i].apply(item.load()), item.load(), hit.load())):
            im = im.convert("RGB")
            im.thumbnail((cell - 4, cell - 4))
            sheet.paste(im, (col * cell + 2, y + label_h))
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
    return path


def write_outputs(report: RetrievalReport, out_dir: Path, failure_rank: int = 1) -> dict[str, Any]:
    import csv

    out_dir.mkdir(parents=True, exist_ok=True)
    summary = report.summary()
    rows = report.rows()
    with (out_dir / "retrieval_results.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    plot = save_plot(report, out_dir / "retrieval_topk.png")
    sheet = save_contact_sheet(report, out_dir / "retrieval_failures.png", failure_rank)
    summary["failures"] = [{"model": m, "id": report.items[i].id, "label": report.items[i].label, "rank": r + 1}
                           for m, i, r in failures(report, failure_rank)]
    summary["files"] = {"csv": str(out_dir / "retrieval_results.csv"), "plot": str(plot),
                        "failures_contact_sheet": str(sheet) if sheet else None,
                        "json": str(out_dir / "retrieval.json")}
    (out_dir / "retrieval.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    return summary


def text_summary(summary: dict[str, Any]) -> str:
    lines = [f"exact retrieval: {summary['n']} images, seed {summary['seed']}, gallery = {summary['gallery']}"]
    head = f"{'model':<14}{'class':<30}{'n':>5}" + "".join(f"{'top-' + str(k):>8}" for k in KS)
    lines.append(head)
    for model, s in summary["models"].items():
        lines.append(f"{model:<14}{'(all)':<30}{summary['n']:>5}" + "".join(f"{s[f'top{k}']:>8.3f}" for k in KS))
        for cls, c in s["by_class"].items():
            lines.append(f"{'':<14}{cls[:29]:<30}{c['n']:>5}" + "".join(f"{c[f'top{k}']:>8.3f}" for k in KS))
    return "\n".join(lines)
