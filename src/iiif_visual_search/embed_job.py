"""The ``ivs embed`` job: embed every region image that has no vector of the model yet.

Decoding and preprocessing run in a thread pool (PIL releases the GIL while decoding and resizing) a few
batches ahead of the model; each finished batch is appended to the model's vector file and recorded in the
catalogue before the next one starts, so an interrupted run resumes where it stopped.

The job sits above the two packages it joins: ``embed/`` turns pictures into vectors and knows nothing of
indexes; ``index/`` stores and searches them (and may use ``embed/``'s descriptors and keypoints).
"""

from __future__ import annotations

import os
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .embed.local_features import to_records
from .embed.models import Embedder, Preparer, get_embedder

Image.MAX_IMAGE_PIXELS = 200_000_000  # region crops of large maps are legitimately big


@dataclass
class EmbedReport:
    model: str
    embedded: int = 0
    skipped_existing: int = 0
    failed: int = 0
    seconds: float = 0.0
    # A Ray job's start-up: until its first batch was written (worker processes, model loads), and how many
    # images that batch held; the steady rate is what came after.
    warmup_seconds: float = 0.0
    warmup_images: int = 0
    cpu_path: str = ""  # how the image tower ran on the CPU (embed/cpu_paths.py), for models that have one

    @property
    def images_per_second(self) -> float:
        return self.embedded / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class Todo:
    region_id: str
    path: Path
    image_sha256: str


def pending(catalogue, key: str, data_dir: Path) -> list[Todo]:  # noqa: ANN001 - Catalogue
    """Live regions with a cached image and no vector of this model, or one made from another image."""
    rows = catalogue.query(
        "SELECT r.id, ri.path, ri.sha256 FROM region r JOIN region_image ri ON ri.region_id = r.id "
        "LEFT JOIN embedding e ON e.region_id = r.id AND e.model = ? "
        "WHERE r.deleted = 0 AND (e.region_id IS NULL OR (e.image_sha256 != '' AND e.image_sha256 != ri.sha256)) "
        "ORDER BY r.id", [key])
    out = []
    for r in rows:
        p = Path(r["path"])
        out.append(Todo(r["id"], p if p.is_absolute() else data_dir / p, r["sha256"]))
    return out


def load_prepared(preparer: Preparer, path: Path) -> Any | Exception:
    """The image at ``path`` decoded and prepared, or the exception that stopped it (returned, not raised)."""
    try:
        with Image.open(path) as im:
            im.load()
            return preparer.prepare(im)
    except Exception as e:  # noqa: BLE001 - a bad file is reported and skipped, never stops the run
        return e


def batch_size_for(device: str) -> int:
    return 64 if device.startswith("cuda") else 16


def default_batch_size(embedder: Embedder) -> int:
    return batch_size_for(str(getattr(embedder, "device", "cpu")))


class VectorWriter:
    """Where an embed job puts what it made: vectors (and the fingerprint's keypoint records) appended to the
    model's vector set and recorded in the catalogue, unreadable images quarantined. The local run and the
    Ray job (``embed_ray.py``) both write through it, so their vector sets are made the same way."""

    def __init__(self, catalogue, store) -> None:  # noqa: ANN001 - Catalogue, VectorStore
        self.catalogue = catalogue
        self.store = store
        self.local_store = None
        if store.descriptor.architecture == "fingerprint":
            # The fingerprint's re-ranking keypoints live beside its vectors, one record per vector row.
            from .embed.local_features import LocalFeatureStore
            self.local_store = LocalFeatureStore(store.dir)

    def quarantine(self, region_id: str, path: Path | str, error: object) -> None:
        self.catalogue.quarantine("embed", region_id, f"{self.store.key}: cannot read {path}: {error}")

    def write(self, region_ids: list[str], image_sha256s: list[str], vectors: np.ndarray,
              local: np.ndarray | None = None) -> None:
        """One batch, durably. ``local``: the keypoint records of each vector (``to_records``), for the
        fingerprint."""
        if self.local_store is not None:
            if local is None or len(local) != len(region_ids):
                raise ValueError(f"{self.store.key} needs one keypoint record per vector")
            # Before the vectors: a crash in between leaves records past the vector file's end, which the
            # next write cuts off, never a referenced row without its keypoints.
            self.local_store.write_records_at(len(self.store.file), local)
        self.store.add(region_ids, vectors, image_sha256s)


def update_keypoint_index(store, compact: bool = False) -> dict[str, int | str] | None:  # noqa: ANN001 - VectorStore
    """The fingerprint's descriptor index (``index/keypoints.py``) brought up to date with its keypoint
    records, beside ``store.update_index``; None for models without local features."""
    if store.descriptor.architecture != "fingerprint" or "local" not in store.descriptor.preprocessing:
        return None
    from .index.keypoints import update_keypoint_index as update

    return update(store.dir, store.live_rows() if store.catalogue is not None else None,
                  rows_limit=len(store.file), compact=compact)


def update_indexes(store, compact: bool = False, **vector_index: Any) -> dict[str, Any]:  # noqa: ANN001
    """Every search index of a vector set (a VectorStore) brought up to date: the FAISS vector index (with
    ``vector_index`` options: kind, recall) and, for the fingerprint, its keypoint index. Returns the
    statistics of both."""
    stats: dict[str, Any] = dict(store.update_index(compact=compact, **vector_index))
    if (keypoints := update_keypoint_index(store, compact=compact)) is not None:
        stats["keypoints"] = keypoints
    return stats


def run_embed(catalogue, data_dir: Path | str, model: str | None = None, *,  # noqa: ANN001
              embedder: Embedder | None = None, device: str | None = None, batch_size: int | None = None,
              workers: int | None = None, limit: int | None = None, progress: bool = True) -> EmbedReport:
    from .index.vectors import VectorStore

    data_dir = Path(data_dir)
    embedder = embedder or get_embedder(model, device)
    store = VectorStore(data_dir, embedder.descriptor.name, catalogue, descriptor=embedder.descriptor)
    writer = VectorWriter(catalogue, store)
    todo = pending(catalogue, store.key, data_dir)
    if limit is not None:
        todo = todo[:limit]
    report = EmbedReport(model=store.key)
    batch_size = batch_size or default_batch_size(embedder)
    workers = workers or max(1, min(8, (os.cpu_count() or 2)))
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=len(todo), unit="img", desc=f"embed {store.key}", dynamic_ncols=True)
    start = time.perf_counter()
    batches = [todo[i:i + batch_size] for i in range(0, len(todo), batch_size)]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ivs-prep") as pool:
        queue: deque[tuple[list[tuple[str, Path]], list[Future]]] = deque()
        ahead = 3  # batches being decoded while the model runs: bounded memory, model never waits

        def submit(i: int) -> None:
            if i < len(batches):
                queue.append((batches[i], [pool.submit(load_prepared, embedder, t.path) for t in batches[i]]))

        for i in range(ahead):
            submit(i)
        next_batch = ahead
        while queue:
            items, futures = queue.popleft()
            submit(next_batch)
            next_batch += 1
            ids, shas, arrays = [], [], []
            for todo_item, fut in zip(items, futures):
                result = fut.result()
                if isinstance(result, Exception):
                    report.failed += 1
                    writer.quarantine(todo_item.region_id, todo_item.path, result)
                else:
                    ids.append(todo_item.region_id)
                    shas.append(todo_item.image_sha256)
                    arrays.append(result)
            if ids:
                if report.embedded == 0 and getattr(embedder, "device", "") == "cpu" and hasattr(embedder, "select_cpu_path"):
                    # On the first batch: real pictures, for the calibration's fidelity gate.
                    report.cpu_path = embedder.select_cpu_path(arrays, images=len(todo))
                vectors = embedder.embed_prepared(arrays)
                local = to_records([a.local for a in arrays]) if writer.local_store is not None else None
                writer.write(ids, shas, vectors, local)
                report.embedded += len(ids)
            if bar is not None:
                bar.update(len(items))
                elapsed = time.perf_counter() - start
                bar.set_postfix_str(f"{report.embedded / max(elapsed, 1e-9):.1f} img/s")
    report.seconds = time.perf_counter() - start
    if bar is not None:
        bar.close()
    return report
