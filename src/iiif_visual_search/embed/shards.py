"""Vector shards: a batch of a distributed embed job's results, on disk, before it joins the vector set.

A shard is one ``.npz`` file under ``vectors/<key>/shards/`` (plain arrays, no pickles) holding, for one
batch of regions: their ids, the SHA-256 of the image each vector was made from, the vectors, the descriptor
of the model that made them, the regions whose image could not be read (with the reason) and, for the
fingerprint, the keypoint records of each vector. It is written atomically (temporary file, fsync, rename),
so a shard exists whole or not at all; the job merges it into the vector set and then deletes it. A job
killed at any point leaves only whole shards, which the next run merges before it computes its work list.
"""

from __future__ import annotations

import io
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..files import atomic_write_bytes
from .models import ModelDescriptor

SUFFIX = ".npz"


@dataclass
class Shard:
    descriptor: ModelDescriptor
    region_ids: list[str]
    image_sha256s: list[str]
    vectors: np.ndarray                 # (n, dim) float32
    failed_ids: list[str]
    failed_reasons: list[str]
    local: np.ndarray | None = None     # keypoint records (``local_features.record_dtype``), one per vector

    def __len__(self) -> int:
        return len(self.region_ids) + len(self.failed_ids)


def shards_dir(vector_dir: Path | str) -> Path:
    return Path(vector_dir) / "shards"


def _strings(values: list[str]) -> np.ndarray:
    # An empty list still needs a unicode dtype: np.array([]) is float64, which would not load as text.
    return np.array(values, dtype=str) if values else np.zeros(0, dtype="<U1")


def write_shard(directory: Path, shard: Shard) -> Path:
    """Write ``shard`` atomically; names sort in the order they were written."""
    arrays: dict[str, np.ndarray] = {
        "descriptor": np.array(shard.descriptor.to_json()),
        "region_ids": _strings(shard.region_ids),
        "image_sha256s": _strings(shard.image_sha256s),
        "vectors": np.ascontiguousarray(shard.vectors, dtype=np.float32).reshape(len(shard.region_ids),
                                                                                 shard.descriptor.dim),
        "failed_ids": _strings(shard.failed_ids),
        "failed_reasons": _strings(shard.failed_reasons),
    }
    if shard.local is not None:
        arrays["local"] = shard.local
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    path = directory / f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}{SUFFIX}"
    atomic_write_bytes(path, buf.getvalue())
    return path


def read_shard(path: Path) -> Shard:
    with np.load(path, allow_pickle=False) as z:
        return Shard(
            descriptor=ModelDescriptor.from_json(str(z["descriptor"])),
            region_ids=z["region_ids"].tolist(),
            image_sha256s=z["image_sha256s"].tolist(),
            vectors=np.array(z["vectors"], dtype=np.float32),
            failed_ids=z["failed_ids"].tolist(),
            failed_reasons=z["failed_reasons"].tolist(),
            local=np.array(z["local"]) if "local" in z.files else None,
        )


def list_shards(directory: Path) -> list[Path]:
    """Whole shards, oldest first. Temporary files of a write that a crash interrupted are removed."""
    if not directory.is_dir():
        return []
    for tmp in directory.glob(".tmp-*"):
        tmp.unlink(missing_ok=True)
    return sorted(directory.glob(f"*{SUFFIX}"))
