"""Clusters on the map: HDBSCAN (scikit-learn) over the fitted regions' 2-D positions, and cluster ids that
stay the same from one run of ``ivs map`` to the next.

Clustering the 2-D layout rather than the vectors is what PixPlot does: a cluster is then something a reader
sees as a group on the map. Regions HDBSCAN calls noise get cluster -1 and belong to no published cluster.
HDBSCAN's own numbers start at 0 on every run; a new cluster takes the id of the old one it shares most of
its regions with (a one-to-one assignment, at least half of either side in common), else a fresh id, so
a harvester sees an unchanged cluster as unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np


def auto_min_cluster_size(n: int) -> int:
    """Small collections get small clusters; large ones are not split into thousands of crumbs."""
    return int(max(3, min(500, n // 200)))


def hdbscan(xy: np.ndarray, min_cluster_size: int, seed: int = 0) -> np.ndarray:
    """HDBSCAN labels (-1 = noise) of 2-D points."""
    from sklearn.cluster import HDBSCAN

    n = len(xy)
    if n < max(2, min_cluster_size):
        return np.full(n, -1, dtype=np.int32)
    # Exact ties (duplicates at one spot) are harmless to HDBSCAN; a tiny seeded nudge keeps the result
    # independent of input order anyway.
    rng = np.random.default_rng(seed)
    points = np.asarray(xy, dtype=np.float64) + rng.normal(scale=1e-9, size=(n, 2))
    labels = HDBSCAN(min_cluster_size=min_cluster_size, min_samples=min(min_cluster_size, 10),
                     copy=True).fit_predict(points)
    return labels.astype(np.int32)


@dataclass(frozen=True)
class Change:
    kind: str        # create | update | delete
    cluster: int


def stable_ids(old: Mapping[int, frozenset[str]], labels: np.ndarray, regions: Sequence[str],
               first_free: int = 0) -> tuple[np.ndarray, list[Change]]:
    """Renumber ``labels`` (one per region) so that clusters keep the ids of their old counterparts.

    ``old``: the previous run's clusters (id → region ids); ``first_free``: the lowest id never handed out
    (an id, once deleted, is not given to another cluster). Returns the new labels and what changed:
    ``create`` for a new id, ``update`` for a kept id whose regions differ, ``delete`` for an old id gone.
    """
    from scipy.optimize import linear_sum_assignment

    new_sizes: dict[int, int] = {}
    for label in labels.tolist():
        if label >= 0:
            new_sizes[label] = new_sizes.get(label, 0) + 1
    new_keys, old_keys = sorted(new_sizes), sorted(old)
    mapping: dict[int, int] = {}
    if new_keys and old_keys:
        # Shared regions per (new, old) pair, counted in one pass over the regions.
        old_of = {rid: cid for cid, rids in old.items() for rid in rids}
        row = {k: i for i, k in enumerate(new_keys)}
        col = {k: i for i, k in enumerate(old_keys)}
        overlap = np.zeros((len(new_keys), len(old_keys)))
        for rid, label in zip(regions, labels.tolist()):
            if label >= 0 and rid in old_of:
                overlap[row[label], col[old_of[rid]]] += 1
        rows, cols = linear_sum_assignment(-overlap)
        for r, c in zip(rows, cols):
            shared = overlap[r, c]
            if shared > 0 and shared * 2 >= min(new_sizes[new_keys[r]], len(old[old_keys[c]])):
                mapping[new_keys[r]] = old_keys[c]
    next_id = max([first_free - 1, *old_keys, *mapping.values(), -1]) + 1
    for key in new_keys:  # in HDBSCAN's order, so a first run numbers 0, 1, 2 …
        if key not in mapping:
            mapping[key] = next_id
            next_id += 1
    out = np.array([mapping.get(int(v), -1) for v in labels.tolist()], dtype=np.int32)
    return out, diff(old, members(out, regions))


def diff(old: Mapping[int, frozenset[str]], new: Mapping[int, frozenset[str]]) -> list[Change]:
    """What a harvester is told: clusters created, changed (other regions) and gone."""
    changes = [Change("create" if cid not in old else "update", cid) for cid in new
               if cid not in old or new[cid] != old[cid]]
    changes += [Change("delete", cid) for cid in old if cid not in new]
    return sorted(changes, key=lambda c: c.cluster)


def members(labels: np.ndarray, regions: Sequence[str]) -> dict[int, frozenset[str]]:
    out: dict[int, set[str]] = {}
    for rid, label in zip(regions, labels.tolist()):
        if label >= 0:
            out.setdefault(label, set()).add(rid)
    return {k: frozenset(v) for k, v in out.items()}
