"""One run of ``ivs map``: lay out (or update) one model's map and publish it.

A first run, ``--refit``, or a model whose vectors changed (another revision) fits: PCA and t-SNE on a
sample, HDBSCAN on the sample's positions, every other region placed by the transform. Any other run is
incremental: regions still live keep their place and cluster, regions embedded since are placed by the
stored transform and join the cluster most of their neighbours are in, deleted regions leave. Either way the
clusters are named again, the clusters that changed are written to the catalogue's change log (so they
appear in ``/activity``), and the new version is published in one step (``store.publish``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..catalogue import Catalogue
from ..index.vectors import VectorStore
from . import clusters as cl
from . import labels as lb
from . import layout, store, thumbs

TEXT_ARCHITECTURES = ("siglip", "clip")
CHUNK = 50_000


@dataclass
class MapOptions:
    refit: bool = False
    params: layout.LayoutParams = field(default_factory=layout.LayoutParams)
    min_cluster_size: int | None = None      # None: ``clusters.auto_min_cluster_size`` of the fitted sample
    zero_shot: bool = True                   # name clusters with prompts when the model reads text
    prompts: Sequence[str] = lb.PROMPTS
    workers: int = 4                         # threads decoding thumbnails


@dataclass
class MapSummary:
    key: str
    version: str
    regions: int
    fitted: int
    placed: int
    removed: int
    clusters: int
    noise: int
    changes: list[cl.Change]
    refit: bool
    seconds: dict[str, float]
    notes: list[str]


class _Clock:
    """Seconds per stage."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._t = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.seconds[name] = round(self.seconds.get(name, 0.0) + now - self._t, 3)
        self._t = now


def build_map(catalogue: Catalogue, data_dir: Path, model: str, options: MapOptions | None = None,
              say: Callable[[str], None] = lambda _msg: None) -> MapSummary:
    """Lay out every live region embedded with ``model`` and publish the map; see the module docstring."""
    opts = options or MapOptions()
    clock = _Clock()
    vectors = VectorStore(data_dir, model, catalogue)  # FileNotFoundError: nothing embedded with it
    desc = vectors.descriptor
    live = vectors.live_rows()
    rows = np.array(sorted(live), dtype=np.int64)
    ids = [live[int(r)] for r in rows]
    previous = store.load(data_dir, vectors.key, with_transform=True)
    compatible = previous is not None and previous.transform is not None and \
        (previous.meta.get("revision"), previous.meta.get("dim")) == (desc.revision, desc.dim)
    refit = opts.refit or not compatible
    notes: list[str] = []
    if previous is not None and not compatible and not opts.refit:
        notes.append("the model's vectors changed since the last map: laid out again")
    old_members = cl.members(previous.cluster, previous.regions.tolist()) if previous is not None else {}
    first_free = int(previous.meta.get("next_cluster", 0)) if previous is not None else 0
    clock.lap("read")

    if refit:
        data = _fit(vectors, rows, ids, opts, old_members, first_free, clock, say)
        removed = len(set(previous.regions.tolist()) - set(ids)) if previous is not None else 0
    else:
        assert previous is not None and previous.transform is not None
        data, removed = _update(vectors, previous, ids, opts, clock, say)
    new_members = cl.members(data.cluster, data.regions.tolist())
    changes = cl.diff(old_members, new_members)
    if not refit and not changes and removed == 0 and len(data.regions) == len(previous.regions):  # type: ignore[union-attr]
        say("the map is up to date")
        return MapSummary(vectors.key, previous.version, len(data.regions), int(data.fitted.sum()),  # type: ignore[union-attr]
                          int((~data.fitted).sum()), 0, len(new_members), int((data.cluster < 0).sum()), [],
                          False, clock.seconds, notes)

    folder = store.new_version_folder(data_dir, vectors.key)
    # Thumbnails: a refit draws every sheet anew, an update only the cells of new regions.
    drawn = np.arange(len(data.regions)) if refit else np.flatnonzero(data.aspect < 0)
    paths = _image_paths(catalogue, [data.regions[i] for i in drawn.tolist()])
    cell = int(data.meta["atlas"]["cell"])
    data.aspect[drawn] = thumbs.write_sheets(folder / "atlas", paths, data.cell[drawn], cell,
                                             previous=None if refit or previous is None else previous.folder / "atlas",
                                             workers=opts.workers)
    sheets = thumbs.sheet_count(data.cell, cell)
    if not refit and previous is not None and previous.folder is not None:
        store.link_sheets(previous.folder, folder, sheets)
    data.meta["atlas"]["sheets"] = sheets
    clock.lap("thumbnails")
    say(f"thumbnails: {len(drawn)} drawn into {sheets} sheet(s) of {cell} px cells")

    changed = {c.cluster for c in changes if c.kind != "delete"}
    kept_names = {c["id"]: c for c in previous.meta.get("clusters", [])} if previous is not None and not refit else {}
    data.meta["clusters"] = _name_clusters(catalogue, vectors, data, new_members, changed, kept_names, opts,
                                           notes, say)
    data.meta["next_cluster"] = max([first_free, *(k + 1 for k in new_members)])
    clock.lap("labels")

    now = time.time()
    data.meta.update(updated_at=now, counts={"regions": len(data.regions), "fitted": int(data.fitted.sum()),
                                             "placed": int((~data.fitted).sum()),
                                             "noise": int((data.cluster < 0).sum())})
    store.write(folder, data)
    store.publish(data_dir, vectors.key, folder)
    catalogue.log_changes("cluster", [(c.kind, f"{vectors.key}/{c.cluster}") for c in changes])
    clock.lap("write")
    return MapSummary(vectors.key, folder.name, len(data.regions), int(data.fitted.sum()),
                      int((~data.fitted).sum()), removed, len(new_members), int((data.cluster < 0).sum()),
                      changes, refit, clock.seconds, notes)


def _read(vectors: VectorStore, rows: np.ndarray) -> np.ndarray:
    return vectors.file.read(rows)


@dataclass
class Layout:
    """Every region's place and cluster from one fit (before cluster ids are made stable)."""

    transform: layout.Transform
    xy: np.ndarray
    cluster: np.ndarray
    fitted: np.ndarray
    sample: np.ndarray
    used: dict[str, Any]
    min_cluster_size: int


def lay_out(read: Callable[[np.ndarray], np.ndarray], ids: Sequence[str], params: layout.LayoutParams,
            min_cluster_size: int | None = None, clock: _Clock | None = None,
            say: Callable[[str], None] = lambda _msg: None) -> Layout:
    """Fit on a sample and place the rest. ``read(positions)`` gives the vectors of ``ids[positions]``
    (positions sorted). No catalogue: ``bench/map.py`` runs this on synthetic vectors."""
    clock = clock or _Clock()
    n = len(ids)
    sample = layout.sample_rows(n, params.fit_sample, params.seed)
    say(f"fitting {params.method} on {len(sample)} of {n} regions")
    transform, _, used = layout.fit(read(sample), params)
    clock.lap("layout")
    min_size = min_cluster_size or cl.auto_min_cluster_size(len(sample))
    raw = cl.hdbscan(transform.reference_xy, min_size, params.seed)
    clock.lap("clusters")
    xy = np.zeros((n, 2), dtype=np.float32)
    cluster = np.full(n, -1, dtype=np.int32)
    fitted = np.zeros(n, dtype=bool)
    xy[sample], cluster[sample], fitted[sample] = transform.reference_xy, raw, True
    transform.reference_cluster = raw
    rest = np.flatnonzero(~fitted)
    for start in range(0, len(rest), CHUNK):
        part = rest[start:start + CHUNK]
        reduced = transform.reduce(read(part))
        xy[part], cluster[part] = transform.place(reduced, [ids[i] for i in part.tolist()], params.neighbours)
    if len(rest):
        say(f"placed {len(rest)} regions with the fitted transform")
    clock.lap("place")
    return Layout(transform, xy, cluster, fitted, sample, used, min_size)


def _fit(vectors: VectorStore, rows: np.ndarray, ids: list[str], opts: MapOptions,
         old_members: dict[int, frozenset[str]], first_free: int, clock: _Clock,
         say: Callable[[str], None]) -> store.MapData:
    params = opts.params
    done = lay_out(lambda positions: _read(vectors, rows[positions]), ids, params, opts.min_cluster_size, clock, say)
    cluster, _ = cl.stable_ids(old_members, done.cluster, ids, first_free)
    transform = done.transform
    transform.reference_cluster = cluster[done.sample]
    n = len(ids)
    cell = thumbs.cell_size(n)
    meta: dict[str, Any] = {
        "model": vectors.descriptor.name, "key": vectors.key, "architecture": vectors.descriptor.architecture,
        "revision": vectors.descriptor.revision, "dim": vectors.descriptor.dim,
        "params": {**params.to_dict(), **done.used, "min_cluster_size": done.min_cluster_size,
                   "clustering": "HDBSCAN (scikit-learn)",
                   "placement": f"median of {params.neighbours} nearest fitted regions (PCA space)"},
        "fitted_at": time.time(), "atlas": {"cell": cell, "sheet": thumbs.SHEET},
    }
    return store.MapData(meta, np.array(ids), done.xy, cluster, thumbs.spatial_cells(done.xy),
                         np.full(n, -1.0, dtype=np.float32), done.fitted, transform)


def _update(vectors: VectorStore, previous: store.MapData, ids: list[str], opts: MapOptions, clock: _Clock,
            say: Callable[[str], None]) -> tuple[store.MapData, int]:
    transform = previous.transform
    assert transform is not None
    live = set(ids)
    keep = np.array([i for i, rid in enumerate(previous.regions.tolist()) if rid in live], dtype=np.int64)
    known = set(previous.regions.tolist())
    new_ids = [rid for rid in ids if rid not in known]
    rows_of = vectors.rows_for(new_ids)
    xy_new = np.zeros((0, 2), dtype=np.float32)
    cl_new = np.zeros(0, dtype=np.int32)
    parts_xy, parts_cl = [], []
    for start in range(0, len(new_ids), CHUNK):
        chunk = new_ids[start:start + CHUNK]
        reduced = transform.reduce(_read(vectors, np.array([rows_of[r] for r in chunk], dtype=np.int64)))
        a, b = transform.place(reduced, chunk, int(previous.meta["params"].get("neighbours", 10)))
        parts_xy.append(a)
        parts_cl.append(b)
    if parts_xy:
        xy_new, cl_new = np.concatenate(parts_xy), np.concatenate(parts_cl)
    clock.lap("place")
    if new_ids:
        say(f"placed {len(new_ids)} new regions with the fitted transform (ivs map --refit lays out all again)")
    first_cell = int(previous.cell.max()) + 1 if len(previous.cell) else 0
    data = store.MapData(
        dict(previous.meta),
        np.array([*previous.regions[keep].tolist(), *new_ids], dtype=str),
        np.concatenate([previous.xy[keep], xy_new]).astype(np.float32),
        np.concatenate([previous.cluster[keep], cl_new]).astype(np.int32),
        np.concatenate([previous.cell[keep], np.arange(first_cell, first_cell + len(new_ids), dtype=np.int32)]),
        np.concatenate([previous.aspect[keep], np.full(len(new_ids), -1.0, dtype=np.float32)]),
        np.concatenate([previous.fitted[keep], np.zeros(len(new_ids), dtype=bool)]),
        transform)
    data.meta["atlas"] = dict(previous.meta["atlas"])
    return data, len(previous.regions) - len(keep)


def _image_paths(catalogue: Catalogue, region_ids: Sequence[str]) -> list[str | None]:
    found: dict[str, str] = {}
    for start in range(0, len(region_ids), 500):
        chunk = list(region_ids[start:start + 500])
        for row in catalogue.query(f"SELECT region_id, path FROM region_image WHERE region_id IN "
                                   f"({','.join('?' * len(chunk))})", chunk):
            found[row["region_id"]] = row["path"]
    return [found.get(r) for r in region_ids]


def _texts(catalogue: Catalogue, region_ids: Sequence[str]) -> list[str]:
    found: dict[str, str] = {}
    for start in range(0, len(region_ids), 500):
        chunk = list(region_ids[start:start + 500])
        for row in catalogue.query(
                "SELECT id, context_before, caption, context_after FROM region WHERE id IN "
                f"({','.join('?' * len(chunk))})", chunk):
            found[row["id"]] = " ".join(t for t in (row["context_before"], row["caption"], row["context_after"]) if t)
    return [found.get(r, "") for r in region_ids]


def _name_clusters(catalogue: Catalogue, vectors: VectorStore, data: store.MapData,
                   members: dict[int, frozenset[str]], changed: set[int], kept: dict[int, dict[str, Any]],
                   opts: MapOptions, notes: list[str], say: Callable[[str], None]) -> list[dict[str, Any]]:
    """Each cluster's size, place (its member nearest the members' mean position), words and prompt."""
    regions = data.regions.tolist()
    terms = lb.context_terms(_texts(catalogue, regions), data.cluster)
    prompts: dict[int, tuple[str, float]] = {}
    todo = sorted(k for k in members if k in changed or k not in kept)
    if opts.zero_shot and vectors.descriptor.architecture in TEXT_ARCHITECTURES and todo:
        prompts = _zero_shot(vectors, {k: members[k] for k in todo}, list(opts.prompts), notes, say)
    out = []
    for cid in sorted(members):
        where = np.flatnonzero(data.cluster == cid)
        centre = data.xy[where].mean(axis=0)
        medoid = where[np.argmin(((data.xy[where] - centre) ** 2).sum(axis=1))]
        prompt, score = prompts.get(cid) or (kept.get(cid, {}).get("prompt", ""), kept.get(cid, {}).get("prompt_score"))
        words = terms.get(cid, [])
        out.append({"id": cid, "label": lb.display_label(cid, words, prompt), "size": int(len(where)),
                    "x": float(data.xy[medoid, 0]), "y": float(data.xy[medoid, 1]), "terms": words,
                    "prompt": prompt, "prompt_score": score})
    return out


def _zero_shot(vectors: VectorStore, members: dict[int, frozenset[str]], prompts: list[str], notes: list[str],
               say: Callable[[str], None]) -> dict[int, tuple[str, float]]:
    from ..embed.models import EmbedderUnavailable, embedder_for

    try:
        embedder = embedder_for(vectors.descriptor, device="cpu")
    except (EmbedderUnavailable, OSError, ValueError) as exc:
        notes.append(f"no zero-shot cluster names: the model's text tower could not be loaded ({exc})")
        return {}
    centroids = {k: vectors.vectors_for(sorted(v)).mean(axis=0) for k, v in members.items()}
    say(f"naming {len(centroids)} cluster(s) with {len(prompts)} prompts")
    return lb.prompt_labels(centroids, embedder, prompts)
