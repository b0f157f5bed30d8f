"""Vectors on disk and one FAISS index per model.

Layout under ``data_dir/vectors/<model-key>/``:
- ``descriptor.json``  the ModelDescriptor of every row in this directory;
- ``vectors.f32``      append-only float32 rows (row r at byte offset r·dim·4); the catalogue's
                       ``embedding(region_id, model, row)`` maps regions to rows. Rows not referenced by the
                       catalogue (a crash between the append and the commit, a re-embedded region) are ignored;
- ``index.faiss``      IndexIDMap2 over one of the kinds of ``index/kinds.py`` (exact, HNSW, HNSW-SQ8, IVF-PQ),
                       chosen by size and memory; FAISS ids are the rows, so a region keeps its id across adds
                       and rebuilds. The quantised kinds re-rank their candidates from ``vectors.f32``;
- ``index.json``       the index descriptor: kind (and whether it was forced), row count, tombstoned rows
                       (deleted regions filtered at query time), and the search effort (efSearch or nprobe)
                       calibrated at build time for a recall@10 target, with the recall measured there.
Index files are written atomically: temp file, fsync, rename, fsync of the directory. Descriptors written
before calibration existed (kind, count, dim, tombstones only) load as they are, at the default efSearch.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import faiss
import numpy as np

from ..embed.models import ModelDescriptor
from ..files import atomic_write, atomic_write_bytes, prefetch
from . import calibrate as cal
from . import kinds
from .kinds import AUTO, HNSW_EF_CONSTRUCTION, HNSW_M, HNSW_THRESHOLD, KINDS  # noqa: F401 - re-exported

HNSW_EF_SEARCH = 64       # efSearch of an index built before calibration, when nothing else names one
RERANK = 10               # quantised kinds: candidates re-scored exactly per hit asked for (at least 100),
                          # raised by calibration where the codes are too coarse for the recall target
ADD_CHUNK = 50_000        # vectors per add() while building
# Per query: search(ef_search=...); per index: VectorIndex(ef_search=...); per process: this variable;
# else the efSearch calibrated when the index was built.
EF_SEARCH_ENV = "IVS_HNSW_EF_SEARCH"


def default_ef_search() -> int:
    """efSearch when neither the index nor the query names one: ``IVS_HNSW_EF_SEARCH`` or ``HNSW_EF_SEARCH``."""
    return _env_ef_search() or HNSW_EF_SEARCH


def _env_ef_search() -> int | None:
    value = os.environ.get(EF_SEARCH_ENV, "").strip()
    if not value:
        return None
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"{EF_SEARCH_ENV} must be a positive integer, got {value!r}")
    return int(value)


class IndexMismatch(RuntimeError):
    """Vectors of another model (or another version of it) would be mixed into a vector set."""


def vectors_dir(data_dir: Path | str, model_key: str) -> Path:
    return Path(data_dir) / "vectors" / model_key


def list_models(data_dir: Path | str) -> list[ModelDescriptor]:
    root = Path(data_dir) / "vectors"
    out = []
    for d in sorted(root.glob("*/descriptor.json")) if root.is_dir() else []:
        out.append(ModelDescriptor.from_json(d.read_text()))
    return out


class VectorFile:
    """The append-only float32 row file of one model, with its descriptor."""

    def __init__(self, directory: Path, descriptor: ModelDescriptor | None = None) -> None:
        self.dir = Path(directory)
        desc_path = self.dir / "descriptor.json"
        stored = ModelDescriptor.from_json(desc_path.read_text()) if desc_path.exists() else None
        if descriptor is not None and stored is not None and not stored.compatible_with(descriptor):
            raise IndexMismatch(
                f"{self.dir} holds vectors of {stored.name} (revision {stored.revision}, dim {stored.dim}); "
                f"refusing to add vectors of {descriptor.name} (revision {descriptor.revision}, dim "
                f"{descriptor.dim}). Use another model name or delete that directory to start over.")
        if stored is None and descriptor is None:
            raise FileNotFoundError(f"no vectors at {self.dir}: run 'ivs embed' first")
        self.descriptor = stored or descriptor  # type: ignore[assignment]
        if stored is None:
            atomic_write_bytes(desc_path, self.descriptor.to_json().encode())
        self.path = self.dir / "vectors.f32"
        self.dim = self.descriptor.dim
        self._lock = threading.Lock()

    def __len__(self) -> int:
        size = self.path.stat().st_size if self.path.exists() else 0
        return size // (4 * self.dim)

    def append(self, rows: np.ndarray) -> range:
        """Append rows durably; returns their row numbers. A torn tail from a crash is cut off first."""
        rows = np.ascontiguousarray(rows, dtype=np.float32)
        if rows.ndim != 2 or rows.shape[1] != self.dim:
            raise ValueError(f"expected (n, {self.dim}) rows, got {rows.shape}")
        with self._lock:
            self.dir.mkdir(parents=True, exist_ok=True)
            with open(self.path, "ab") as f:
                start = f.tell() // (4 * self.dim)
                if f.tell() != start * 4 * self.dim:
                    f.truncate(start * 4 * self.dim)
                    f.seek(start * 4 * self.dim)
                f.write(rows.tobytes())
                f.flush()
                os.fsync(f.fileno())
            return range(start, start + len(rows))

    def read(self, rows: Sequence[int] | np.ndarray) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64)
        if len(rows) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        mm = np.memmap(self.path, dtype=np.float32, mode="r", shape=(len(self), self.dim))
        return np.array(mm[rows])


@dataclass
class IndexMeta:
    kind: str = "flat"          # one of kinds.KINDS
    count: int = 0              # rows in the FAISS index (including tombstoned)
    tombstones: list[int] = field(default_factory=list)
    dim: int = 0
    forced: bool = False        # kind named by ``ivs index --kind``: never changed automatically
    ef_search: int | None = None   # HNSW kinds: efSearch calibrated at build time
    nprobe: int | None = None      # IVF kinds: nprobe calibrated at build time
    recall: float | None = None    # recall@10 measured at that effort on a sample of the index's own vectors
    recall_target: float | None = None
    calibrated_on: int = 0      # rows in the index when it was calibrated
    rerank: int | None = None   # quantised kinds: candidates re-scored exactly per hit asked for

    @classmethod
    def from_dict(cls, m: dict) -> IndexMeta:
        known = {k: m[k] for k in cls.__dataclass_fields__ if k in m}  # older descriptors lack the new keys
        return cls(**{**known, "tombstones": list(m.get("tombstones", []))})

    def to_json(self) -> str:
        out = asdict(self)
        out["tombstones"] = sorted(self.tombstones)
        return json.dumps(out)


@dataclass(frozen=True)
class SearchHit:
    row: int
    score: float


class VectorIndex:
    """One FAISS index of one model's rows, with tombstones. Reads are thread-safe; writers are serialised.

    The kind is chosen by ``kinds.choose_kind`` when the index is (re)built, unless one is named; approximate
    kinds are calibrated then (``index/calibrate.py``) for ``recall`` (default 0.99 recall@10)."""

    def __init__(self, directory: Path, dim: int, *, threshold: int = HNSW_THRESHOLD, mmap: bool = True,
                 ef_search: int | None = None) -> None:
        self.dir = Path(directory)
        self.dim = dim
        self.threshold = threshold
        self._ef_override = ef_search or _env_ef_search()
        self.index_path = self.dir / "index.faiss"
        self.meta_path = self.dir / "index.json"
        self.vectors_path = self.dir / "vectors.f32"
        self._lock = threading.RLock()
        self.meta = IndexMeta(dim=dim)
        self.index: faiss.Index | None = None
        self._mapped = False
        self._rows_map: np.memmap | None = None
        if self.index_path.exists() and self.meta_path.exists():
            self.meta = IndexMeta.from_dict(json.loads(self.meta_path.read_text()))
            self.index = self._read(mmap)
        self._dead = set(self.meta.tombstones)

    @property
    def ef_search(self) -> int:
        """efSearch of plain queries: named for this index or process, else calibrated, else the old default."""
        return self._ef_override or self.meta.ef_search or HNSW_EF_SEARCH

    def _read(self, mmap: bool) -> faiss.Index:
        path = str(self.index_path)
        if mmap:
            index = read_mapped(self.index_path)
            if index is not None:
                self._mapped = True
                return index
        self._mapped = False
        return faiss.read_index(path)

    # --- building -------------------------------------------------------------------------------

    def _writable(self) -> faiss.Index:
        """The index, re-read privately if it is memory-mapped read-only (writes must not touch the map)."""
        if self.index is None:
            self.index = kinds.new_index("flat", self.dim, 0)
            self.meta.kind = "flat"
        elif self._mapped:
            self.index = faiss.read_index(str(self.index_path))
            self._mapped = False
        return self.index

    @property
    def ids(self) -> np.ndarray:
        if self.index is None:
            return np.zeros(0, dtype=np.int64)
        return faiss.vector_to_array(self.index.id_map).astype(np.int64)

    @property
    def live_count(self) -> int:
        return self.meta.count - len(self._dead)

    @property
    def tombstones(self) -> frozenset[int]:
        return frozenset(self._dead)

    def add(self, rows: Sequence[int], vectors: np.ndarray, *, save: bool = True) -> int:
        """Add rows not indexed yet (no rebuild); a tombstoned row that is added again comes back to life.
        Returns how many were added."""
        rows_arr = np.asarray(rows, dtype=np.int64)
        vecs = np.asarray(vectors, dtype=np.float32).reshape(len(rows_arr), self.dim)
        with self._lock:
            have = set(self.ids.tolist())
            mask = np.fromiter((int(r) not in have for r in rows_arr), dtype=bool, count=len(rows_arr))
            self._dead -= {int(r) for r in rows_arr}
            if mask.any():
                self._writable().add_with_ids(np.ascontiguousarray(vecs[mask]), rows_arr[mask])
            self.meta.count = int(self.index.ntotal) if self.index is not None else 0
            self.meta.tombstones = sorted(self._dead)
            if save:
                self.save()
            return int(mask.sum())

    def delete(self, rows: Iterable[int], *, save: bool = True) -> int:
        """Tombstone rows: hidden from every search at once, dropped from the file by ``rebuild``."""
        with self._lock:
            have = set(self.ids.tolist())
            new = {int(r) for r in rows if int(r) in have} - self._dead
            self._dead |= new
            self.meta.tombstones = sorted(self._dead)
            if save and new:
                self.save()
            return len(new)

    def choose_kind(self, n: int) -> str:
        return kinds.choose_kind(n, self.dim, threshold=self.threshold)

    def rebuild(self, rows: Sequence[int], vectors: np.ndarray, *, kind: str | None = None,
                recall: float | None = None) -> None:
        """Compact: a fresh index of exactly these rows, no tombstones, calibrated for ``recall``.

        ``kind`` None or ``auto`` chooses by size and memory (``kinds.choose_kind``), and a kind forced
        earlier stays; any other names one and forces it from now on."""
        rows_arr = np.asarray(rows, dtype=np.int64)
        vecs = np.asarray(vectors, dtype=np.float32).reshape(len(rows_arr), self.dim)
        with self._lock:
            recall = recall or self.meta.recall_target or cal.RECALL_TARGET
            forced = kind not in (None, AUTO) or (kind is None and self.meta.forced)
            chosen = (kind if kind not in (None, AUTO) else
                      self.meta.kind if forced else self.choose_kind(len(rows_arr)))
            if chosen == "ivf-pq" and len(rows_arr) < 256 * 4:
                raise ValueError(f"an ivf-pq index needs at least {256 * 4} vectors to train on, got {len(rows_arr)}")
            index = kinds.new_index(chosen, self.dim, len(rows_arr))
            if n_train := kinds.training_sample(chosen, self.dim, len(rows_arr)):
                pick = np.sort(np.random.default_rng(0).choice(len(rows_arr), n_train, replace=False))
                index.train(np.ascontiguousarray(vecs[pick]))
            out = cal.held_out(len(rows_arr))
            keep = np.ones(len(rows_arr), dtype=bool)
            keep[out] = False
            for c0 in range(0, len(rows_arr), ADD_CHUNK):
                part = slice(c0, c0 + ADD_CHUNK)
                index.add_with_ids(np.ascontiguousarray(vecs[part][keep[part]]), rows_arr[part][keep[part]])
            self.index = index
            self._mapped = False
            self._dead = set()
            self.meta = IndexMeta(kind=chosen, count=int(index.ntotal), tombstones=[], dim=self.dim, forced=forced)
            # Calibration reads from memory here: the vector file need not hold these rows in this order.
            kept = np.flatnonzero(keep)
            position = {int(r): i for i, r in enumerate(rows_arr)}
            self._calibrate(vecs[out], rows_arr[kept], lambda rs: vecs[[position[int(r)] for r in rs]],
                            target=recall)
            if len(out):
                index.add_with_ids(np.ascontiguousarray(vecs[out]), rows_arr[out])
            self.meta.count = int(index.ntotal)
            self.save()

    def _calibrate(self, queries: np.ndarray, rows: np.ndarray, read, *,  # noqa: ANN001 - rows → vectors
                   target: float) -> None:
        """Set the search effort (efSearch, nprobe) to the smallest that reaches ``target`` recall@10 for
        ``queries``, vectors held out of the index whose rows are ``rows`` (``read(rows)``: their vectors)."""
        self.meta.recall_target = target
        if self.index is None or self.meta.kind == "flat":
            return
        if self.meta.kind == "ivf-pq":
            nlist = faiss.extract_index_ivf(self.index).nlist
            steps = tuple(s for s in cal.NPROBE_STEPS if s < nlist) + (nlist,)
        else:
            steps = cal.EF_STEPS

        def search(q: np.ndarray, n: int, effort: int) -> np.ndarray:
            return self._search_ids(q, n, effort, read)[1]

        # Quantised kinds whose codes are too coarse for the target at any effort re-rank deeper.
        for factor in (RERANK, 2 * RERANK, 4 * RERANK, 8 * RERANK) if kinds.reranked(self.meta.kind) else (None,):
            self.meta.rerank = factor
            result = cal.calibrate(queries, rows, read, search, steps, target=target)
            if result.reached():
                break
        if self.meta.kind == "ivf-pq":
            self.meta.nprobe = result.effort
        else:
            self.meta.ef_search = result.effort
        self.meta.recall = round(result.recall, 4)
        self.meta.calibrated_on = len(rows) + len(queries)

    def save(self) -> None:
        with self._lock:
            if self.index is None:
                return
            # Written straight to the temporary file: serialising to memory first costs two extra copies of
            # an index that is gigabytes at a million vectors.
            atomic_write(self.index_path, lambda tmp: faiss.write_index(self.index, str(tmp)))
            atomic_write_bytes(self.meta_path, self.meta.to_json().encode())

    # --- querying -------------------------------------------------------------------------------

    def _file_rows(self, rows: np.ndarray) -> np.ndarray:
        """Float32 rows from ``vectors.f32`` through one memory map, remapped when the file has grown."""
        size = self.vectors_path.stat().st_size // (4 * self.dim)
        if self._rows_map is None or len(self._rows_map) < size:
            self._rows_map = np.memmap(self.vectors_path, dtype=np.float32, mode="r", shape=(size, self.dim))
        return np.asarray(self._rows_map[rows])

    def _search_ids(self, q: np.ndarray, want: int, effort: int | None,
                    read=None) -> tuple[np.ndarray, np.ndarray]:  # noqa: ANN001 - rows → vectors
        """(scores, row ids) of the top ``want`` per query at ``effort``; quantised kinds fetch ``RERANK``
        times as many candidates and re-score them exactly from ``read`` (default: the vector file)."""
        kind = self.meta.kind
        depth = want
        if kinds.reranked(kind):
            read = read or (self._file_rows if self.vectors_path.exists() else None)
            if read is not None:
                depth = min(int(self.index.ntotal), max(100, (self.meta.rerank or RERANK) * want))
        params = None
        if kind in ("hnsw", "hnsw-sq8"):
            params = faiss.SearchParametersHNSW()
            params.efSearch = max(effort or self.ef_search, depth)
        elif kind == "ivf-pq":
            params = faiss.SearchParametersIVF()
            params.nprobe = effort or self.meta.nprobe or 16
        scores, ids = (self.index.search(q, depth, params=params) if params is not None
                       else self.index.search(q, depth))
        if depth == want:
            return scores, ids
        # Exact scores of every candidate: one read of their rows, one batched product per query.
        flat = ids[ids >= 0]
        uniq, inverse = np.unique(flat, return_inverse=True)
        vecs = np.asarray(read(uniq), dtype=np.float32)
        exact = np.full(ids.shape, -np.inf, dtype=np.float32)
        exact[ids >= 0] = np.einsum("ij,ij->i", vecs[inverse], np.repeat(q, (ids >= 0).sum(1), axis=0))
        order = np.argsort(-exact, axis=1, kind="stable")[:, :want]
        return np.take_along_axis(exact, order, 1), np.take_along_axis(ids, order, 1)

    def search(self, queries: np.ndarray, k: int, *, ef_search: int | None = None) -> list[list[SearchHit]]:
        """Top ``k`` live rows per query, best first. Tombstoned rows are skipped, never returned.
        ``ef_search`` overrides the effort for this query (efSearch; nprobe on an IVF index)."""
        q = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        if self.index is None or self.index.ntotal == 0 or k <= 0:
            return [[] for _ in range(len(q))]
        with self._lock:
            dead = self._dead
            want = min(int(self.index.ntotal), k + len(dead))
            # A few queries are faster on one thread: OpenMP's fork/join around IndexIDMap costs ~8 ms per
            # query on a busy 2-core machine (bench/search.py: 8 ms → 0.26 ms p50 at 20k × 768).
            threads = faiss.omp_get_max_threads()
            if len(q) < 16:
                faiss.omp_set_num_threads(1)
            try:
                scores, ids = self._search_ids(q, want, ef_search)
            finally:
                faiss.omp_set_num_threads(threads)
        out: list[list[SearchHit]] = []
        for srow, irow in zip(scores, ids):
            hits = [SearchHit(int(i), float(s)) for s, i in zip(srow, irow) if i >= 0 and int(i) not in dead]
            out.append(hits[:k])
        return out


class VectorStore:
    """A model's vectors, its index and the catalogue's region → row map, together.

    ``model`` is a registry name (siglip, clip, vit, fingerprint) or the key of a stored vector set.
    The catalogue is needed for everything that speaks of regions; the file and index work without it.
    """

    def __init__(self, data_dir: Path | str, model: str, catalogue: object | None = None, *,
                 descriptor: ModelDescriptor | None = None, threshold: int = HNSW_THRESHOLD,
                 ef_search: int | None = None) -> None:
        from ..embed.models import model_key

        self.data_dir = Path(data_dir)
        if descriptor is not None:
            self.key = descriptor.key
        elif (vectors_dir(self.data_dir, model) / "descriptor.json").exists():
            self.key = model  # already a stored key
        else:
            self.key = model_key(model)
        self.dir = vectors_dir(self.data_dir, self.key)
        self.file = VectorFile(self.dir, descriptor)
        self.descriptor = self.file.descriptor
        self.catalogue = catalogue
        self.threshold = threshold
        self.ef_search = ef_search
        self._index: VectorIndex | None = None

    @property
    def index(self) -> VectorIndex:
        if self._index is None:
            self._index = VectorIndex(self.dir, self.descriptor.dim, threshold=self.threshold,
                                      ef_search=self.ef_search)
        return self._index

    def _cat(self):  # noqa: ANN202 - Catalogue, imported lazily to keep this module light
        if self.catalogue is None:
            raise RuntimeError("this VectorStore was opened without a catalogue")
        return self.catalogue

    # --- region ↔ row --------------------------------------------------------------------------

    def rows_for(self, region_ids: Sequence[str]) -> dict[str, int]:
        out: dict[str, int] = {}
        ids = list(region_ids)
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            marks = ",".join("?" * len(chunk))
            for r in self._cat().query(
                    f"SELECT region_id, row FROM embedding WHERE model=? AND region_id IN ({marks})",
                    [self.key, *chunk]):
                out[r["region_id"]] = int(r["row"])
        return out

    def regions_for(self, rows: Sequence[int]) -> dict[int, str]:
        out: dict[int, str] = {}
        rows = [int(r) for r in rows]
        for i in range(0, len(rows), 500):
            chunk = rows[i:i + 500]
            marks = ",".join("?" * len(chunk))
            for r in self._cat().query(
                    f"SELECT region_id, row FROM embedding WHERE model=? AND row IN ({marks})", [self.key, *chunk]):
                out[int(r["row"])] = r["region_id"]
        return out

    def vectors_for(self, region_ids: Sequence[str]) -> np.ndarray:
        """(len(region_ids), dim) float32 in the given order; KeyError naming regions without a vector."""
        rows = self.rows_for(region_ids)
        missing = [r for r in region_ids if r not in rows]
        if missing:
            raise KeyError(f"no {self.key} vector for {len(missing)} region(s), e.g. {missing[:3]}: run 'ivs embed'")
        return self.file.read([rows[r] for r in region_ids])

    def embedded_regions(self) -> set[str]:
        return {r["region_id"] for r in self._cat().query("SELECT region_id FROM embedding WHERE model=?", [self.key])}

    def add(self, region_ids: Sequence[str], vectors: np.ndarray,
            image_sha256s: Sequence[str] | None = None) -> range:
        """Persist one batch: rows appended and fsynced first, then the catalogue rows in one transaction.
        A crash in between leaves unreferenced rows only, so a resumed run simply embeds those regions again.
        ``image_sha256s`` records which image each vector was made from, so a changed image is embedded again."""
        if len(region_ids) != len(vectors):
            raise ValueError("one vector per region")
        shas = list(image_sha256s) if image_sha256s is not None else [""] * len(region_ids)
        rows = self.file.append(vectors)
        with self._cat().transaction() as conn:
            conn.executemany(
                "INSERT INTO embedding(region_id, model, row, image_sha256) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(region_id, model) DO UPDATE SET row=excluded.row, image_sha256=excluded.image_sha256",
                [(rid, self.key, row, sha) for rid, row, sha in zip(region_ids, rows, shas)])
        return rows

    def live_rows(self) -> dict[int, str]:
        """Row → region for every non-deleted region that has a vector of this model."""
        return {int(r["row"]): r["region_id"] for r in self._cat().query(
            "SELECT e.row, e.region_id FROM embedding e JOIN region g ON g.id = e.region_id "
            "WHERE e.model=? AND g.deleted=0", [self.key])}

    # --- index ---------------------------------------------------------------------------------

    def update_index(self, compact: bool = False, *, kind: str | None = None,
                     recall: float | None = None) -> dict[str, int | str | float | None]:
        """Bring the index up to date with the catalogue: add new rows, tombstone rows of deleted or
        re-embedded regions. Rebuild when asked (``compact``), when ``kind`` names another kind than the
        index has (``auto``: the kind size and memory choose), when the collection has grown into a kind
        further down ``kinds.KINDS`` (unless a kind was forced), and, for approximate kinds, when ``recall``
        asks for another target or the index has doubled since it was calibrated: calibration needs vectors
        held out of the index (``index/calibrate.py``), so it comes with a build. Doubling keeps the
        rebuilds' total cost within twice that of one build."""
        live = self.live_rows()
        index = self.index
        m = index.meta
        auto = index.choose_kind(len(live))
        grown = not m.forced and kinds.rank(auto) > kinds.rank(m.kind)
        switch = (kind == AUTO and (m.forced or auto != m.kind)) or \
            (kind not in (None, AUTO) and (kind != m.kind or not m.forced))
        stale = m.kind != "flat" and index.index is not None and (
            (recall is not None and recall != m.recall_target)
            or (m.calibrated_on > 0 and len(live) >= 2 * m.calibrated_on))
        if compact or grown or switch or stale:
            rows = sorted(live)
            index.rebuild(rows, self.file.read(rows), kind=kind, recall=recall or m.recall_target)
            return {**self._index_stats(index), "added": len(rows), "tombstoned": 0, "rebuilt": 1}
        have = set(index.ids.tolist())
        new_rows = sorted(r for r in live if r not in have or r in index.tombstones)
        added = index.add(new_rows, self.file.read(new_rows), save=False)
        tombstoned = index.delete([r for r in have if r not in live], save=False)
        if recall is not None:
            index.meta.recall_target = recall  # the exact kind: kept for when the collection outgrows it
        index.save()
        return {**self._index_stats(index), "added": added, "tombstoned": tombstoned, "rebuilt": 0}

    @staticmethod
    def _index_stats(index: VectorIndex) -> dict[str, int | str | float | None]:
        m = index.meta
        out: dict[str, int | str | float | None] = {"kind": m.kind, "live": index.live_count}
        if m.kind != "flat":
            out.update({"ef_search" if m.kind != "ivf-pq" else "nprobe": m.ef_search or m.nprobe,
                        "recall@10": m.recall, "recall_target": m.recall_target})
        return out

    def search(self, queries: np.ndarray, k: int) -> list[list[tuple[str, float]]]:
        """(region id, score) lists, best first; rows whose region is gone are skipped."""
        hits = self.index.search(queries, k)
        regions = self.regions_for(sorted({h.row for hs in hits for h in hs}))
        return [[(regions[h.row], h.score) for h in hs if h.row in regions] for hs in hits]


# --- a process-wide cache for the service --------------------------------------------------------------------

_Signature = tuple[tuple[int, int, int] | None, ...]


def read_mapped(path: Path) -> faiss.Index | None:
    """The index at ``path`` memory-mapped read-only, and read ahead into the page cache; None where FAISS
    cannot map it. Mapped, server processes share one copy in the page cache. IO_FLAG_MMAP alone maps inverted
    lists but copies an HNSW graph and its vectors (3.4 GB of private memory per process at a million
    regions); IO_FLAG_MMAP_IFC (faiss >= 1.9) maps those too."""
    for flag in (getattr(faiss, "IO_FLAG_MMAP_IFC", None), faiss.IO_FLAG_MMAP):
        if flag is None:
            continue
        try:
            index = faiss.read_index(str(path), flag | faiss.IO_FLAG_READ_ONLY)
        except RuntimeError:
            continue
        prefetch(path)
        return index
    return None


def _stat(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def _signature(data_dir: Path, model: str, key_dir: Path | None) -> _Signature:
    # The index and its metadata are replaced by rename (atomic_write_bytes), so a new inode, mtime or size
    # means another process wrote a new version; the name lookup stats catch a stored key appearing later.
    named = vectors_dir(data_dir, model) / "descriptor.json"
    files = [named] + ([key_dir / "descriptor.json", key_dir / "index.faiss", key_dir / "index.json"]
                       if key_dir is not None else [])
    return tuple(_stat(p) for p in files)


_STORES: dict[tuple[str, str], tuple[_Signature, VectorStore]] = {}
_STORES_LOCK = threading.Lock()


def search_store(data_dir: Path | str, model: str, catalogue: object | None = None) -> VectorStore:
    """A read-only VectorStore for queries, its FAISS index loaded once per process.

    Kept per (data_dir, model) and reloaded when ``ivs index`` (any process) replaced the index files, so
    the service never reads a half-written index and never reloads an unchanged one. The store returned is
    a shallow copy bound to ``catalogue``: it shares the cached index, so never add to or rebuild it.
    """
    import copy

    root = Path(data_dir).resolve()
    cache_key = (str(root), model)
    with _STORES_LOCK:
        cached = _STORES.get(cache_key)
    if cached is not None and _signature(root, model, cached[1].dir) == cached[0]:
        store = cached[1]
    else:
        store = VectorStore(root, model)
        sig = _signature(root, model, store.dir)
        _ = store.index  # load now, outside the lock: readers of the old store go on meanwhile
        with _STORES_LOCK:
            _STORES[cache_key] = (sig, store)
    bound = copy.copy(store)
    bound.catalogue = catalogue
    return bound


def clear_search_cache() -> None:
    with _STORES_LOCK:
        _STORES.clear()
