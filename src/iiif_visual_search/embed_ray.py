"""``ivs embed --ray``: the embed job on a Ray cluster, for collections one machine cannot embed in time.

The same work as a local run (``embed_job.py``), spread over the cluster with Ray Data:

    work list (``pending``: new or changed images)  → blocks of (region id, image path, image sha256)
    → CPU tasks: decode and ``prepare`` (``preparer_for``: the model's preprocessing, without its weights)
    → an actor pool holding the model: one actor per GPU (``num_gpus=1``, bf16/fp16 by ``pick_dtype``), or
      on CPU-only clusters most cores in actors with the precision rules of a local run (``plan``)
    → each batch of vectors streamed back to this process (the driver), written as a shard
      (``embed/shards.py``), merged into the vector set by the local run's ``VectorWriter``, then deleted.

Only the driver writes (the catalogue is single-writer SQLite); workers read the cached images by their
absolute path, so every node needs the package, the data dir at the same path (shared storage) and the model
(a hub cache, or a checkpoint folder at the same path). A driver killed at any point leaves whole shards and
a consistent vector set; the next run merges the shards first and embeds only what is still missing. A
driver connected through Ray Client (``ray://``) runs the pipeline from an actor on the cluster
(``ClusterDriver``) and pulls the batches from it.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .embed.local_features import record_dtype, to_records
from .embed.models import EmbedderUnavailable, ModelDescriptor, get_embedder, preparer_for
from .embed.shards import Shard, list_shards, read_shard, shards_dir, write_shard
from .embed_job import EmbedReport, Todo, VectorWriter, batch_size_for, load_prepared, pending

DECODE_MEMORY = 512 * 2**20  # bytes reserved per decode task


class RayUnavailable(EmbedderUnavailable):
    """Ray is not installed, the cluster cannot be reached, or the job failed on a worker (the message says
    which; what was merged before stays, and a new run resumes)."""


def connect(address: str, *, num_cpus: int | None = None, object_store_memory: int | None = None) -> bool:
    """Start or join a Ray cluster: ``local`` starts one on this machine's cores (``num_cpus``, default
    all), ``auto`` joins the one ``RAY_ADDRESS`` names (else one running on this machine), ``ray://HOST:PORT``
    a remote one through Ray Client. Returns True when this call started Ray (the caller shuts it down); a
    process already connected keeps its cluster."""
    try:
        import ray
    except ImportError as e:
        raise RayUnavailable("--ray needs Ray: pip install 'iiif-visual-search[ray]'") from e
    check_address(address)
    if ray.is_initialized():
        return False
    quiet: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.WARNING}
    try:
        if address == "local":
            ray.init(num_cpus=num_cpus or os.cpu_count() or 1, object_store_memory=object_store_memory,
                     include_dashboard=False, **quiet)
        elif address == "auto":
            ray.init(address=os.environ.get("RAY_ADDRESS") or "auto", **quiet)
        else:
            ray.init(address=address, **quiet)
    except (ConnectionError, RuntimeError) as e:
        hint = ""
        if address.startswith("ray://") and "timeout" in str(e).lower():
            # Clusters that recent Ray versions start require a token, and Ray Client sends none unless told to.
            hint = ("; if the cluster uses token authentication, set RAY_AUTH_MODE=token and RAY_AUTH_TOKEN "
                    "(or RAY_AUTH_TOKEN_PATH) here")
        raise RayUnavailable(f"cannot reach the Ray cluster {address!r}: {e}{hint}") from e
    return True


def check_address(address: str) -> None:
    if address not in ("local", "auto") and not address.startswith("ray://"):
        raise ValueError(f"expected local, auto or ray://HOST:PORT, not {address!r}")


@dataclass(frozen=True)
class Placement:
    """How many model actors, what each reserves, and the batch each forward pass takes."""

    actors: int
    cpus_per_actor: float
    gpus_per_actor: float
    batch_size: int
    device: str | None  # None: each actor picks (the GPU Ray gave it)


def plan(resources: dict[str, float], *, device: str | None = None, batch_size: int | None = None,
         actors: int | None = None, weight_free: bool = False) -> Placement:
    """Where the model runs. With GPUs (unless ``device`` says otherwise): one actor per GPU, the CPUs
    decode. On CPUs only: the model's forward pass costs ~20× the decoding of its input, so an eighth of the
    cores decode (at least one) and the rest run actors of up to 8 threads. A ``weight_free`` model (the
    fingerprint, whose work is all in ``prepare``) gets one actor that reserves no CPU."""
    gpus = int(resources.get("GPU", 0))
    if gpus and not weight_free and (device is None or device.startswith("cuda")):
        return Placement(actors or gpus, 1, 1, batch_size or batch_size_for("cuda"), device)
    bs = batch_size or batch_size_for("cpu")
    if weight_free:
        return Placement(actors or 1, 0, 0, bs, "cpu")
    cpus = max(1, int(resources.get("CPU", 1)))
    model_cpus = max(1, cpus - max(1, cpus // 8))
    per_actor = min(8, model_cpus)
    return Placement(actors or max(1, model_cpus // per_actor), per_actor, 0, bs, device or "cpu")


# --- what runs on the workers ------------------------------------------------------------------------------

@functools.cache
def _preparer(descriptor_json: str) -> Any:
    return preparer_for(ModelDescriptor.from_json(descriptor_json))


def _column(values: list[Any]) -> np.ndarray:
    """Arrays of one shape as one tensor column (Ray passes those without pickling), else Python objects."""
    if values and all(isinstance(v, np.ndarray) and v.shape == values[0].shape for v in values):
        return np.stack(values)
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def prepare_batch(batch: dict[str, np.ndarray], descriptor: str) -> dict[str, np.ndarray]:
    """A CPU task: decode and prepare each image; an unreadable one gets its error and a blank input."""
    preparer = _preparer(descriptor)
    results = [load_prepared(preparer, Path(str(p))) for p in batch["path"]]
    blank = next((r for r in results if isinstance(r, np.ndarray)), None)
    errors = [f"{r}" if isinstance(r, Exception) else "" for r in results]
    prepared = [(np.zeros_like(blank) if blank is not None else None) if isinstance(r, Exception) else r
                for r in results]
    return {"region_id": batch["region_id"], "path": batch["path"], "sha256": batch["sha256"],
            "error": np.array(errors, dtype=object), "prepared": _column(prepared)}


class EmbedActor:
    """Holds the model; turns prepared batches into vectors (and, for the fingerprint, keypoint records)."""

    def __init__(self, source: str, descriptor: str, device: str | None, precision: str | None) -> None:
        want = ModelDescriptor.from_json(descriptor)
        self.embedder = get_embedder(source, device, precision=precision)
        got = self.embedder.descriptor
        if not got.compatible_with(want):
            import socket
            raise EmbedderUnavailable(
                f"{source} on worker {socket.gethostname()} is revision {got.revision} (dim {got.dim}); the "
                f"driver's is {want.revision} (dim {want.dim}): give every node the same model files")
        self.dim = got.dim
        self.local = want.architecture == "fingerprint"

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        ok = np.array([not e for e in batch["error"]], dtype=bool)
        items = [batch["prepared"][i] for i in np.flatnonzero(ok)]
        vectors = np.zeros((len(ok), self.dim), dtype=np.float32)
        if items:
            vectors[ok] = self.embedder.embed_prepared(items)
        out = {k: batch[k] for k in ("region_id", "path", "sha256", "error")}
        out["vector"] = vectors
        if self.local:
            records = np.zeros(len(ok), dtype=record_dtype())
            if items:
                records[ok] = to_records([p.local for p in items])
            out["local"] = records.view(np.uint8).reshape(len(ok), -1)  # fixed-size bytes: a tensor column
        return out


# --- the driver --------------------------------------------------------------------------------------------

def shard_of(batch: dict[str, np.ndarray], descriptor: ModelDescriptor) -> Shard:
    ok = np.array([not e for e in batch["error"]], dtype=bool)
    local = None
    if "local" in batch:
        local = np.ascontiguousarray(batch["local"][ok]).view(record_dtype()).reshape(-1)
    bad = np.flatnonzero(~ok)
    return Shard(
        descriptor=descriptor,
        region_ids=[str(v) for v in batch["region_id"][ok]],
        image_sha256s=[str(v) for v in batch["sha256"][ok]],
        vectors=np.asarray(batch["vector"][ok], dtype=np.float32).reshape(int(ok.sum()), descriptor.dim),
        failed_ids=[str(batch["region_id"][i]) for i in bad],
        failed_reasons=[f"cannot read {batch['path'][i]}: {batch['error'][i]}" for i in bad],
        local=local,
    )


def merge_shard(path: Path, writer: VectorWriter) -> tuple[int, int]:
    """Put one shard into the vector set (then delete it): (vectors added, images quarantined)."""
    from .index.vectors import IndexMismatch

    shard = read_shard(path)
    if not shard.descriptor.compatible_with(writer.store.descriptor):
        raise IndexMismatch(f"shard {path} holds vectors of {shard.descriptor.name} (revision "
                            f"{shard.descriptor.revision}), not of {writer.store.descriptor.name}: delete it")
    for region_id, reason in zip(shard.failed_ids, shard.failed_reasons, strict=True):
        writer.catalogue.quarantine("embed", region_id, f"{writer.store.key}: {reason}")
    if shard.region_ids:
        writer.write(shard.region_ids, shard.image_sha256s, shard.vectors, shard.local)
    path.unlink()
    return len(shard.region_ids), len(shard.failed_ids)


def _blocks(todo: list[Todo], rows: int) -> list[Any]:
    import pyarrow as pa

    return [pa.table({"region_id": [t.region_id for t in chunk], "path": [str(t.path) for t in chunk],
                      "sha256": [t.image_sha256 for t in chunk]})
            for chunk in (todo[i:i + rows] for i in range(0, len(todo), rows))]


def run_embed_ray(catalogue, data_dir: Path | str, model: str | None = None, *,  # noqa: ANN001 - Catalogue
                  address: str = "local", device: str | None = None, precision: str | None = None,
                  batch_size: int | None = None, actors: int | None = None, limit: int | None = None,
                  num_cpus: int | None = None, progress: bool = True) -> EmbedReport:
    """``run_embed`` on a Ray cluster (see the module docstring); ``address`` as ``connect`` takes it. Ray is
    started or joined only when there is something to embed."""
    from .index.vectors import VectorStore

    check_address(address)
    data_dir = Path(data_dir)
    # The driver loads the model once, on its CPU, for the descriptor: the key, the dimension, and the
    # revision every worker's copy is checked against.
    descriptor = get_embedder(model, "cpu", precision=precision).descriptor
    store = VectorStore(data_dir, descriptor.name, catalogue, descriptor=descriptor)
    writer = VectorWriter(catalogue, store)
    report = EmbedReport(model=store.key)
    start = time.perf_counter()
    shard_root = shards_dir(store.dir)
    for path in list_shards(shard_root):  # an interrupted run's results: merged, never embedded again
        added, failed = merge_shard(path, writer)
        report.embedded += added
        report.failed += failed
    todo = pending(catalogue, store.key, data_dir)
    if limit is not None:
        todo = todo[:limit]
    if todo:
        started = connect(address, num_cpus=num_cpus)
        try:
            import ray

            placement = plan(ray.cluster_resources(), device=device, batch_size=batch_size, actors=actors,
                             weight_free=descriptor.architecture == "fingerprint")
            _run(ray, todo, descriptor, writer, shard_root, report, start, placement,
                 model_source(descriptor, model), precision, progress)
        except ray.exceptions.RayError as e:  # a worker's error, wrapped: say what failed, not Ray's internals
            raise RayUnavailable(f"the Ray job stopped ({report.embedded} embedded so far; run it again to "
                                 f"resume): {str(e).strip().splitlines()[-1][:500]}") from e
        finally:
            if started:
                ray.shutdown()
    report.seconds = time.perf_counter() - start
    return report


def model_source(descriptor: ModelDescriptor, model: str | None) -> str:
    """What the workers load: a checkpoint folder by its absolute path (their working folder is not ours)."""
    if descriptor.architecture != "fingerprint" and Path(descriptor.source).is_dir():
        return descriptor.source
    return model or descriptor.name


def build_dataset(blocks: list[Any], descriptor: str, placement: Placement, source: str,
                  precision: str | None) -> Any:
    """The pipeline, from work-list blocks to batches of vectors (not started: Ray Data runs it when read)."""
    import ray
    from ray.data import ActorPoolStrategy, DataContext

    DataContext.get_current().enable_progress_bars = False  # the driver's bar counts merged vectors instead
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    bs = placement.batch_size
    ds = ray.data.from_arrow(blocks)
    # Each decode task reserves memory for a batch of decoded images, so a node runs no more of them than
    # its memory holds. Resources unlike the actors' also keep Ray Data from fusing decoding into the actors:
    # decoding scales out with the CPU tasks, the model with the actors.
    ds = ds.map_batches(prepare_batch, fn_kwargs={"descriptor": descriptor}, batch_size=bs,
                        batch_format="numpy", num_cpus=1, memory=DECODE_MEMORY)
    return ds.map_batches(EmbedActor, fn_constructor_kwargs={"source": source, "descriptor": descriptor,
                                                             "device": placement.device, "precision": precision},
                          batch_size=bs, batch_format="numpy", compute=ActorPoolStrategy(size=placement.actors),
                          num_cpus=placement.cpus_per_actor, num_gpus=placement.gpus_per_actor or None)


class ClusterDriver:
    """The pipeline run from inside the cluster, for a driver connected through Ray Client (``ray://``):
    Ray Data needs its driver on a node of the cluster. The client pulls the batches one call at a time while
    Ray Data works ahead, as it does for a local driver."""

    def __init__(self, *args: Any) -> None:
        self._batches = iter(build_dataset(*args).iter_batches(batch_size=None, batch_format="numpy"))

    def next(self) -> dict[str, np.ndarray] | None:
        return next(self._batches, None)


def _batches(ray: Any, *args: Any) -> Any:
    from ray.util.client import ray as client

    if not client.is_connected():
        yield from build_dataset(*args).iter_batches(batch_size=None, batch_format="numpy")
        return
    driver = ray.remote(num_cpus=0)(ClusterDriver).remote(*args)
    try:
        while (batch := ray.get(driver.next.remote())) is not None:
            yield batch
    finally:
        ray.kill(driver)


def _run(ray: Any, todo: list[Todo], descriptor: ModelDescriptor, writer: VectorWriter, shard_root: Path,
         report: EmbedReport, start: float, placement: Placement, source: str, precision: str | None,
         progress: bool) -> None:
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=len(todo), unit="img", desc=f"embed {descriptor.key} (ray, {placement.actors} "
                   f"actor{'s' * (placement.actors != 1)})", dynamic_ncols=True)
    job_start, done = time.perf_counter(), 0
    # A block per batch: decoding and the model overlap, and each batch comes back as one shard.
    blocks = _blocks(todo, placement.batch_size)
    try:
        for batch in _batches(ray, blocks, descriptor.to_json(), placement, source, precision):
            shard = shard_of(batch, descriptor)
            added, failed = merge_shard(write_shard(shard_root, shard), writer)
            report.embedded += added
            report.failed += failed
            done += len(shard)
            if not report.warmup_images:
                report.warmup_seconds, report.warmup_images = time.perf_counter() - start, done
            if bar is not None:
                bar.update(len(shard))
                bar.set_postfix_str(f"{done / max(time.perf_counter() - job_start, 1e-9):.1f} img/s")
    finally:
        if bar is not None:
            bar.close()
