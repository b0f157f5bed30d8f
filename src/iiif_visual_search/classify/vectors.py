"""Stored region vectors for classification: the catalogue's ``embedding`` rows read from the vector files."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..catalogue import Catalogue


def stored_vectors(catalogue: Catalogue, data_dir: Path, model: str,
                   region_ids: Sequence[str] | None = None) -> tuple[list[str], np.ndarray, dict[str, Any]]:
    """(region ids that have a vector, (n, dim) float32 array in that order, the model descriptor).

    ``region_ids`` None means every live region with a vector of ``model``.
    """
    from ..embed.models import model_key
    from ..index.vectors import VectorFile, vectors_dir

    key = model_key(model)
    vf = VectorFile(vectors_dir(data_dir, key))
    rows = {r["region_id"]: r["row"] for r in catalogue.query(
        "SELECT e.region_id, e.row FROM embedding e JOIN region r ON r.id = e.region_id "
        "WHERE e.model IN (?, ?) AND r.deleted=0", (key, model))}
    ids = [rid for rid in (region_ids if region_ids is not None else sorted(rows)) if rid in rows]
    X = vf.read([rows[rid] for rid in ids])
    desc = vf.descriptor
    return ids, X, json.loads(desc.to_json()) if hasattr(desc, "to_json") else (
        asdict(desc) if is_dataclass(desc) else {"name": model})


def aligned_vectors(catalogue: Catalogue, data_dir: Path, models: Sequence[str],
                    region_ids: Sequence[str] | None = None
                    ) -> tuple[list[str], dict[str, np.ndarray], dict[str, Any]]:
    """Regions that have vectors of every model, with one array per model in the same row order."""
    per_model: dict[str, tuple[list[str], np.ndarray]] = {}
    descriptors: dict[str, Any] = {}
    for model in models:
        ids, X, desc = stored_vectors(catalogue, data_dir, model, region_ids)
        per_model[model] = (ids, X)
        descriptors[model] = desc
    common = set.intersection(*(set(ids) for ids, _ in per_model.values())) if per_model else set()
    order = [rid for rid in per_model[models[0]][0] if rid in common] if models else []
    features: dict[str, np.ndarray] = {}
    for model, (ids, X) in per_model.items():
        pos = {rid: i for i, rid in enumerate(ids)}
        features[model] = X[[pos[rid] for rid in order]] if order else X[:0]
    return order, features, descriptors
