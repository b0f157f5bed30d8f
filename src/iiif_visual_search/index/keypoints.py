"""A FAISS index of the fingerprint's local descriptors: candidates by descriptor voting.

The global fingerprint vector ranks a near-duplicate outside its top few hundred once a collection holds
many look-alike regions (page windows of the same books: ~15 % of originals among 1.7k such regions), so
geometric verification never sees it. Local descriptors do not blur that way: each query keypoint's nearest
stored descriptors vote for their regions, and the original collects many votes (bench/fingerprint.py).

Layout, beside the vectors' keypoint records (``embed/local_features.LocalFeatureStore``) under
``vectors/<key>/local/``:
- ``keypoints.faiss``  RootSIFT descriptors (128-d, unit norm, inner product): an exact flat index below
  ``IVF_THRESHOLD`` descriptors, else IVF with 8-bit scalar-quantised codes (~136 bytes per descriptor);
  FAISS id = vector row · ``KEYPOINTS`` + keypoint slot, so a descriptor names its region's vector row;
- ``keypoints.json``   kind, rows indexed (feature rows ``0..rows-1``), descriptor count, IVF lists.
Queries read the index memory-mapped (``search_keypoints``): its codes stay on disk, in the page cache, shared
by every serving process and given back under memory pressure, instead of a private copy per process
(~28 KiB per region: 280 MB at 10k regions, 28 GB at 1M). Updates read a private copy and write it whole.
Both written atomically (temp file, fsync, rename), the index first: a crash in between leaves an index
whose count disagrees with its metadata, and the next update rebuilds it rather than adding rows twice.
Updates are incremental (rows past ``rows`` are added); an exact index that outgrows the threshold, or an
IVF index that has grown ``RETRAIN_GROWTH`` times since its lists were trained, is rebuilt. Deleted and
re-embedded regions are not removed: their rows are filtered at query time like the vector index's
tombstones, and ``ivs index --compact`` rebuilds from the live rows.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

from ..embed import fingerprint
from ..embed.local_features import (
    DESC,
    KEYPOINTS,
    LocalFeatures,
    LocalFeatureStore,
    to_records,
    unit_descriptors,
)
from ..files import atomic_write, atomic_write_bytes
from .vectors import _stat, read_mapped

IVF_THRESHOLD = 100_000   # descriptors (~400 regions): exact search of 256 query keypoints stays < ~50 ms
IVF_NPROBE = 16
RETRAIN_GROWTH = 4        # an IVF index grown this many times past its training set gets new lists
# Stored neighbours looked up per query keypoint: one per DESCRIPTORS_PER_NEIGHBOUR stored descriptors,
# between KNN_MIN and KNN_MAX. The deepest of them is the ratio test's reference (the background of
# look-alikes). A picture that recurs in many regions (reprints, regions that overlap) fills a short list
# with its copies, so the test fails against the copies for the original too: with 10 neighbours, 8 % of
# originals got no vote among 100k windows of their own pages (21M descriptors), with 256 none (search
# time +10 %). In a small index the 256th neighbour is no look-alike any more and everything would vote.
KNN_MIN, KNN_MAX = 10, 256
DESCRIPTORS_PER_NEIGHBOUR = 80_000
QUERY_CHUNK = 32          # queries searched at once by votes_many (a result holds knn neighbours per keypoint)
VOTE_RATIO = 0.8          # a neighbour votes when closer than this × the deepest neighbour's distance
ADD_CHUNK = 4096          # feature rows read per step while (re)building


@dataclass
class KeypointMeta:
    kind: str = "flat"    # flat | ivf
    rows: int = 0         # feature rows 0..rows-1 are indexed
    descriptors: int = 0  # FAISS ntotal after those rows
    nlist: int = 0
    trained_on: int = 0   # descriptors present when the IVF lists were trained

    def to_json(self) -> str:
        return json.dumps(self.__dict__)


def records_of(features: Sequence[LocalFeatures], keypoints: int = KEYPOINTS) -> np.ndarray:
    """In-memory keypoint records (the layout ``LocalFeatureStore.read`` returns)."""
    return to_records(features, keypoints)


def _descriptors(rows: np.ndarray, records: np.ndarray, keypoints: int) -> tuple[np.ndarray, np.ndarray]:
    """(unit descriptors, ids) of the real keypoints of ``records``, the records of vector rows ``rows``."""
    counts = records["count"].astype(np.int64)
    valid = (np.arange(keypoints)[None, :] < counts[:, None]).ravel()
    ids = np.asarray(rows, dtype=np.int64)[:, None] * keypoints + np.arange(keypoints)
    desc = records["descriptors"].reshape(-1, DESC)[valid]
    return np.ascontiguousarray(unit_descriptors(desc)), ids.ravel()[valid]


def neighbours(descriptors: int) -> int:
    """How many stored neighbours each query keypoint looks up in an index of ``descriptors``."""
    return min(descriptors, int(np.clip(descriptors // DESCRIPTORS_PER_NEIGHBOUR, KNN_MIN, KNN_MAX)))


def _nlist(n: int) -> int:
    # ~4·sqrt(n) lists, a power of two; at least 39 training points per list (FAISS's own minimum).
    target = min(4 * np.sqrt(max(n, 1)), n / 39)
    return int(2 ** max(6, int(np.floor(np.log2(max(target, 64))))))


class KeypointIndex:
    """Descriptor index of one fingerprint vector set; ``directory`` None keeps it in memory only."""

    def __init__(self, directory: Path | str | None = None, keypoints: int = KEYPOINTS, *,
                 threshold: int | None = None, mmap: bool = False) -> None:
        self.dir = Path(directory) if directory is not None else None
        self.keypoints = keypoints
        self.threshold = threshold or IVF_THRESHOLD
        self.meta = KeypointMeta()
        self.index: faiss.Index | None = None
        self.mapped = False
        self._lock = threading.RLock()
        if self.dir is not None and self.index_path.exists() and self.meta_path.exists():
            self.meta = KeypointMeta(**json.loads(self.meta_path.read_text()))
            self.index = self._read(mmap)
            if self.index.ntotal != self.meta.descriptors:  # crash between the two writes: start over
                self.index, self.meta = None, KeypointMeta()
        self._set_nprobe()

    def _read(self, mmap: bool) -> faiss.Index:
        """The index file, memory-mapped read-only when ``mmap`` (and FAISS can map it), else a private copy."""
        self.mapped = False
        if mmap:
            index = read_mapped(self.index_path)
            if index is not None:
                self.mapped = True
                return index
        return faiss.read_index(str(self.index_path))

    @property
    def index_path(self) -> Path:
        assert self.dir is not None
        return self.dir / "keypoints.faiss"

    @property
    def meta_path(self) -> Path:
        assert self.dir is not None
        return self.dir / "keypoints.json"

    @property
    def rows(self) -> int:
        return self.meta.rows

    def _set_nprobe(self) -> None:
        if self.index is not None and self.meta.kind == "ivf":
            faiss.extract_index_ivf(self.index).nprobe = IVF_NPROBE

    # --- building -------------------------------------------------------------------------------

    def _fresh(self, sample: np.ndarray, total: int) -> None:
        """An empty index for ``total`` descriptors; an IVF one is trained on ``sample`` (``_training_rows``
        of them)."""
        if total < self.threshold:
            self.index = faiss.IndexIDMap2(faiss.IndexFlatIP(DESC))
            self.meta = KeypointMeta(kind="flat")
            return
        nlist = _nlist(total)
        index = faiss.IndexIVFScalarQuantizer(faiss.IndexFlatIP(DESC), DESC, nlist, faiss.ScalarQuantizer.QT_8bit,
                                              faiss.METRIC_INNER_PRODUCT)
        index.train(np.ascontiguousarray(sample))
        self.index = index
        self.meta = KeypointMeta(kind="ivf", nlist=nlist, trained_on=total)
        self._set_nprobe()

    def _training_rows(self, total: int) -> np.ndarray:
        """Which of ``total`` descriptors (in index order) train the IVF lists, sorted; none for a flat index."""
        if total < self.threshold:
            return np.zeros(0, np.int64)
        return np.sort(np.random.default_rng(0).choice(total, min(total, _nlist(total) * 64), replace=False))

    def add(self, start_row: int, records: np.ndarray, *, save: bool = True) -> int:
        """Index the keypoints of rows ``start_row..`` (consecutive); rows below ``rows`` are skipped, so a
        batch seen twice is not added twice. Returns the descriptors added."""
        with self._lock:
            skip = max(0, self.meta.rows - start_row)
            records = records[skip:]
            start_row += skip
            if len(records) == 0:
                return 0
            if start_row > self.meta.rows:
                raise ValueError(f"rows {self.meta.rows}..{start_row - 1} would be skipped")
            x, ids = _descriptors(start_row + np.arange(len(records)), records, self.keypoints)
            if self.index is None:
                self._fresh(x[self._training_rows(len(x))], len(x))
            elif self.mapped:  # a read-only map must not be written to: take a private copy first
                self.index = self._read(False)
                self._set_nprobe()
            self.index.add_with_ids(x, ids)
            self.meta.rows = start_row + len(records)
            self.meta.descriptors = int(self.index.ntotal)
            if save:
                self.save()
            return len(x)

    def rebuild(self, rows: Sequence[int] | np.ndarray, read: Callable[[np.ndarray], np.ndarray]) -> None:
        """A fresh index of exactly ``rows`` (their records from ``read(rows)``), trained on a sample of all
        of them. The records are read in chunks, three times (count, sample, add), so memory holds one chunk
        and the training sample, never every descriptor (100k regions have ~22M: 11 GB as float32)."""
        rows = np.asarray(rows, dtype=np.int64)
        chunks = [rows[i:i + ADD_CHUNK] for i in range(0, len(rows), ADD_CHUNK)]
        with self._lock:
            sizes = [int(read(c)["count"].astype(np.int64).sum()) for c in chunks]
            total = sum(sizes)
            train = self._training_rows(total)
            sample, start = [], 0
            for c, n in zip(chunks, sizes, strict=True):
                pick = train[(train >= start) & (train < start + n)] - start
                if len(pick):
                    sample.append(_descriptors(c, read(c), self.keypoints)[0][pick])
                start += n
            self._fresh(np.concatenate(sample) if sample else np.zeros((0, DESC), np.float32), total)
            del sample
            self.mapped = False
            for c in chunks:
                x, ids = _descriptors(c, read(c), self.keypoints)
                if len(x):
                    self.index.add_with_ids(x, ids)
            self.meta.rows = int(rows.max()) + 1 if len(rows) else 0
            self.meta.descriptors = int(self.index.ntotal)
            self.save()

    @property
    def stale(self) -> bool:
        """Due for a rebuild: the exact index outgrew the threshold, or the IVF lists are too few."""
        if self.meta.kind == "flat":
            return self.meta.descriptors >= self.threshold
        return self.meta.descriptors >= RETRAIN_GROWTH * max(self.meta.trained_on, 1)

    def save(self) -> None:
        if self.dir is None or self.index is None:
            return
        with self._lock:
            # Straight to the temporary file: serialising to memory first would hold two more copies.
            atomic_write(self.index_path, lambda tmp: faiss.write_index(self.index, str(tmp)))
            atomic_write_bytes(self.meta_path, self.meta.to_json().encode())

    # --- querying -------------------------------------------------------------------------------

    def votes(self, query: LocalFeatures, top: int, *, exclude: Iterable[int] = ()) -> tuple[np.ndarray, np.ndarray]:
        """The ``top`` rows with most votes, best first, and their votes (rows with none are left out).

        Each query keypoint looks up its ``neighbours`` nearest stored descriptors; a neighbour closer than
        ``VOTE_RATIO`` × the farthest of them (Lowe's ratio test against the whole collection: a distinctive
        match, not one of many look-alike letters) gives its row one vote, at most one per keypoint and row.
        ``exclude``: rows never returned (tombstones, the query region itself)."""
        return self.votes_many([query], top, exclude=exclude)[0]

    def votes_many(self, queries: Sequence[LocalFeatures], top: int, *,
                   exclude: Iterable[int] = ()) -> list[tuple[np.ndarray, np.ndarray]]:
        """``votes`` of each query, their keypoints looked up ``QUERY_CHUNK`` queries per FAISS search (an
        exact index runs a chunk as one matrix product; the exact-retrieval protocol's query set in a few)."""
        empty = (np.zeros(0, np.int64), np.zeros(0, np.float64))
        if self.index is None or self.index.ntotal == 0 or top <= 0:
            return [empty for _ in queries]
        knn = neighbours(int(self.index.ntotal))
        excluded = np.fromiter((int(r) for r in exclude), np.int64)
        out: list[tuple[np.ndarray, np.ndarray]] = []
        threads = faiss.omp_get_max_threads()
        if len(queries) == 1:
            faiss.omp_set_num_threads(1)  # one query: OpenMP fork/join costs more than it gives on a busy CPU
        try:
            for c in range(0, len(queries), QUERY_CHUNK):
                chunk = queries[c:c + QUERY_CHUNK]
                if not any(q.count for q in chunk):
                    out += [empty for _ in chunk]
                    continue
                x = np.ascontiguousarray(unit_descriptors(np.concatenate([q.descriptors[:q.count] for q in chunk])))
                with self._lock:
                    sims, ids = self.index.search(x, knn)
                start = 0
                for q in chunk:
                    n = q.count
                    out.append(self._tally(sims[start:start + n], ids[start:start + n], top, excluded) if n else empty)
                    start += n
        finally:
            faiss.omp_set_num_threads(threads)
        return out

    def _tally(self, sims: np.ndarray, ids: np.ndarray, top: int,
               excluded: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        dist = np.sqrt(np.maximum(2.0 - 2.0 * sims, 0.0))
        good = (ids >= 0) & (dist < VOTE_RATIO * dist[:, -1:]) if ids.shape[1] > 1 else ids >= 0
        keypoint = np.broadcast_to(np.arange(len(ids))[:, None], ids.shape)[good]
        rows = ids[good] // self.keypoints
        span = int(rows.max(initial=0)) + 1
        pairs = np.unique(keypoint * span + rows)  # one vote per (keypoint, row)
        voted, counts = np.unique(pairs % span, return_counts=True)
        if len(excluded):
            keep = ~np.isin(voted, excluded)
            voted, counts = voted[keep], counts[keep]
        order = np.lexsort((voted, -counts))[:top]
        return voted[order].astype(np.int64), counts[order].astype(np.float64)


def update_keypoint_index(vector_dir: Path | str, live_rows: Iterable[int] | None = None, *, rows_limit: int,
                          compact: bool = False) -> dict[str, int | str]:
    """Bring ``vector_dir``'s keypoint index up to date with its keypoint records ``0..rows_limit-1`` (the
    vector file's length: records past it may still be rewritten by a resumed embed).

    Rebuilds from ``live_rows`` (or all rows) when asked (``compact``), when the index is missing or
    inconsistent, or when it is ``stale``; otherwise adds the new rows only."""
    store = LocalFeatureStore(vector_dir)
    kp = KeypointIndex(store.dir)
    limit = min(rows_limit, len(store))
    if compact or (kp.index is None and limit > 0) or kp.stale or kp.rows > limit:
        rows = sorted(r for r in (live_rows if live_rows is not None else range(limit)) if r < limit)
        kp.rebuild(rows, store.read)
        return {"kind": kp.meta.kind, "rows": kp.rows, "descriptors": kp.meta.descriptors, "rebuilt": 1}
    added = 0
    for start in range(kp.rows, limit, ADD_CHUNK):
        added += kp.add(start, store.read(np.arange(start, min(limit, start + ADD_CHUNK))), save=False)
    if kp.stale:
        rows = sorted(r for r in (live_rows if live_rows is not None else range(limit)) if r < limit)
        kp.rebuild(rows, store.read)
        return {"kind": kp.meta.kind, "rows": kp.rows, "descriptors": kp.meta.descriptors, "rebuilt": 1}
    kp.save()
    return {"kind": kp.meta.kind, "rows": kp.rows, "descriptors": kp.meta.descriptors, "added": added, "rebuilt": 0}


# --- a process-wide cache for queries ---------------------------------------------------------------

_CACHE: dict[str, tuple[tuple, KeypointIndex]] = {}
_CACHE_LOCK = threading.Lock()


def search_keypoints(vector_dir: Path | str) -> KeypointIndex | None:
    """The keypoint index of a vector set for queries, memory-mapped once per process and again when an
    update replaced its files; None where none was built yet (queries then use the global candidates only)."""
    d = Path(vector_dir).resolve() / "local"
    sig = (_stat(d / "keypoints.faiss"), _stat(d / "keypoints.json"))
    if sig[0] is None or sig[1] is None:
        return None
    with _CACHE_LOCK:
        cached = _CACHE.get(str(d))
    if cached is not None and cached[0] == sig:
        return cached[1]
    kp = KeypointIndex(d, mmap=True)
    with _CACHE_LOCK:
        _CACHE[str(d)] = (sig, kp)
    return kp if kp.index is not None else None


def rerank(query: Sequence[LocalFeatures], gallery: Sequence[LocalFeatures], scores: np.ndarray) -> np.ndarray:
    """``scores`` (queries × gallery cosine) with each query's ``shortlist`` (global top and descriptor votes
    over an in-memory keypoint index of ``gallery``) re-scored by ``verify``: the exact-retrieval protocol's
    view of ``find_similar``'s order."""
    out = np.asarray(scores, dtype=np.float64).copy()
    records = records_of(gallery)
    kp = KeypointIndex(None)
    kp.add(0, records, save=False)
    votes = kp.votes_many(query, fingerprint.VOTED_CANDIDATES)
    for i, (q, (voted, _)) in enumerate(zip(query, votes, strict=True)):
        cand = fingerprint.shortlist(np.argsort(-out[i], kind="stable"), voted)
        out[i, cand] = fingerprint.verify(q, records[cand], out[i, cand])[0]
    return out
