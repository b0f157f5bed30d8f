"""The cross-validation report as text and pictures: confusion matrix table and PNG, per-class scores."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from .nested_cv import CVReport


def confusion_table(classes: list[str], matrix: np.ndarray) -> str:
    """Rows = true class, columns = predicted class (numbered to keep the table narrow)."""
    width = max(len(str(int(matrix.max()))) if matrix.size else 1, 3)
    name_w = max(len(c) for c in classes)
    head = " " * (name_w + 4) + " ".join(f"{j + 1:>{width}}" for j in range(len(classes)))
    lines = ["true \\ predicted", head]
    for i, c in enumerate(classes):
        lines.append(f"{i + 1:>2} {c:<{name_w}} " + " ".join(f"{int(v):>{width}}" for v in matrix[i]))
    return "\n".join(lines)


def scores_table(report: CVReport) -> str:
    per = report.per_class()
    name_w = max(len(c) for c in report.classes)
    lines = [f"{'class':<{name_w}}  precision  recall     F1  support"]
    for c, s in per.items():
        lines.append(f"{c:<{name_w}}  {s['precision']:9.3f}  {s['recall']:6.3f}  {s['f1']:5.3f}  {s['support']:7d}")
    lines.append(f"micro-F1 {report.micro_f1:.3f}   macro-F1 {report.macro_f1:.3f}   "
                 f"(n={report.n}, books={report.n_books}, outer={len(report.folds)}, inner={report.inner})")
    return "\n".join(lines)


def text_report(report: CVReport) -> str:
    sel = ", ".join(f"{k} ×{v}" for k, v in report.selected_counts().items())
    parts = [scores_table(report), "", confusion_table(report.classes, report.confusion()), "",
             f"selected per outer fold: {sel}"]
    parts.extend(f"note: {n}" for n in report.notes)
    return "\n".join(parts)


def save_confusion_png(classes: list[str], matrix: np.ndarray, path: Path, title: str = "") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1.1 * len(classes) + 3, 1.0 * len(classes) + 2), dpi=100)
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(classes)), classes, rotation=40, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if title:
        ax.set_title(title)
    top = matrix.max() if matrix.size else 0
    for i in range(matrix.shape[0]):
        for j in range(matrix.shape[1]):
            ax.text(j, i, str(int(matrix[i, j])), ha="center", va="center",
                    color="white" if matrix[i, j] > top / 2 else "black")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def write_report(report: CVReport, out_dir: Path, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """report.json, report.txt, confusion.png under ``out_dir``; returns the JSON written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    data = report.to_json()
    if extra:
        data.update(extra)
    png = save_confusion_png(report.classes, report.confusion(), out_dir / "confusion.png",
                             f"pooled outer folds: micro-F1 {report.micro_f1:.3f}")
    data["confusion_matrix"]["table"] = confusion_table(report.classes, report.confusion())
    data["files"] = {"json": str(out_dir / "report.json"), "text": str(out_dir / "report.txt"),
                     "confusion_png": str(png)}
    (out_dir / "report.txt").write_text(text_report(report) + "\n", encoding="utf-8")
    (out_dir / "report.json").write_text(json.dumps(data, indent=2), encoding="utf-8")
    return data
