"""The files of one model's map, under ``DATA_DIR/maps/<model-key>/``.

Each run of ``ivs map`` writes a new version folder (``v000001/`` …) and then points ``current`` at it in one
atomic rename, so ``ivs serve`` never reads half a map; the version before stays for a reader that is still
on it, older ones are removed. Sheets a run did not touch are hard links to the previous version's.

A version folder holds ``map.json`` (model, parameters, counts, clusters), the per-region arrays as ``.npy``
(``regions`` ids, ``xy`` positions in the unit square, ``cluster`` (-1: none), ``cell`` (atlas cell),
``aspect`` (thumbnail width/height), ``fitted`` (laid out by t-SNE, else placed)), ``transform.npz`` (see
``layout.Transform``) and ``atlas/<n>.jpg``. Arrays are read with ``allow_pickle=False``.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..files import atomic_write_bytes, fsync_dir
from .layout import Transform

ARRAYS = ("regions", "xy", "cluster", "cell", "aspect", "fitted")


def maps_root(data_dir: Path | str) -> Path:
    return Path(data_dir) / "maps"


def map_dir(data_dir: Path | str, key: str) -> Path:
    return maps_root(data_dir) / key


@dataclass
class MapData:
    """One version of a map, in memory."""

    meta: dict[str, Any]
    regions: np.ndarray         # (n,) str
    xy: np.ndarray              # (n, 2) float32
    cluster: np.ndarray         # (n,) int32
    cell: np.ndarray            # (n,) int32
    aspect: np.ndarray          # (n,) float32
    fitted: np.ndarray          # (n,) bool
    transform: Transform | None = None
    folder: Path | None = None
    version: str = ""
    _lookup: dict[str, int] | None = field(default=None, repr=False)

    @property
    def key(self) -> str:
        return str(self.meta["key"])

    def index_of(self) -> dict[str, int]:
        if self._lookup is None:
            self._lookup = {r: i for i, r in enumerate(self.regions.tolist())}
        return self._lookup

    def sheet(self, n: int) -> Path | None:
        path = (self.folder / "atlas" / f"{n}.jpg") if self.folder is not None else None
        return path if path is not None and path.is_file() else None


def current_version(data_dir: Path | str, key: str) -> str | None:
    pointer = map_dir(data_dir, key) / "current"
    try:
        name = pointer.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    return name if name.startswith("v") and name[1:].isdigit() else None


def load(data_dir: Path | str, key: str, *, with_transform: bool = False) -> MapData | None:
    """The current version of a map, or None when ``ivs map`` has not been run for this model."""
    version = current_version(data_dir, key)
    if version is None:
        return None
    folder = map_dir(data_dir, key) / version
    meta = json.loads((folder / "map.json").read_text(encoding="utf-8"))
    arrays = {name: np.load(folder / f"{name}.npy", allow_pickle=False) for name in ARRAYS}
    transform = None
    if with_transform:
        with np.load(folder / "transform.npz", allow_pickle=False) as npz:
            transform = Transform.from_arrays({k: npz[k] for k in npz.files})
    return MapData(meta, arrays["regions"], arrays["xy"], arrays["cluster"], arrays["cell"], arrays["aspect"],
                   arrays["fitted"], transform, folder, version)


def keys(data_dir: Path | str) -> list[str]:
    """Models with a map."""
    root = maps_root(data_dir)
    return sorted(p.name for p in root.iterdir() if current_version(data_dir, p.name)) if root.is_dir() else []


def new_version_folder(data_dir: Path | str, key: str) -> Path:
    """An empty folder for the next version (not visible to readers until ``publish``)."""
    root = map_dir(data_dir, key)
    root.mkdir(parents=True, exist_ok=True)
    numbers = [int(p.name[1:]) for p in root.iterdir() if p.is_dir() and p.name[:1] == "v" and p.name[1:].isdigit()]
    folder = root / f"v{max(numbers, default=0) + 1:06d}"
    folder.mkdir()
    return folder


def write(folder: Path, data: MapData) -> None:
    """The arrays, the transform and ``map.json`` (last: a folder without it is an unfinished run)."""
    for name in ARRAYS:
        np.save(folder / f"{name}.npy", getattr(data, name), allow_pickle=False)
    if data.transform is not None:
        np.savez(folder / "transform.npz", **data.transform.to_arrays())
    for path in folder.glob("*.np[yz]"):
        with path.open("rb+") as handle:
            os.fsync(handle.fileno())
    atomic_write_bytes(folder / "map.json", json.dumps(data.meta, indent=1, ensure_ascii=False).encode("utf-8"))


def link_sheets(previous: Path | None, folder: Path, count: int) -> None:
    """Hard links (copies where links fail) of the previous version's sheets that this version lacks."""
    if previous is None:
        return
    (folder / "atlas").mkdir(exist_ok=True)
    for n in range(count):
        src, dst = previous / "atlas" / f"{n}.jpg", folder / "atlas" / f"{n}.jpg"
        if src.is_file() and not dst.exists():
            try:
                os.link(src, dst)
            except OSError:
                shutil.copyfile(src, dst)


def publish(data_dir: Path | str, key: str, folder: Path) -> None:
    """Point ``current`` at ``folder``; keep the version before it, remove older ones and failed runs."""
    root = map_dir(data_dir, key)
    before = current_version(data_dir, key)
    atomic_write_bytes(root / "current", folder.name.encode())
    fsync_dir(root)
    for path in root.iterdir():
        if path.is_dir() and path.name not in (folder.name, before) and path.name[:1] == "v":
            shutil.rmtree(path, ignore_errors=True)
