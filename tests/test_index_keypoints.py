"""The fingerprint's descriptor index: votes, incremental adds, IVF, persistence and crash recovery."""

from __future__ import annotations

import functools

import numpy as np
from real_crops import real_crops

from iiif_visual_search.embed import local_features as lf
from iiif_visual_search.evaluate.protocol import augment_all
from iiif_visual_search.index import keypoints as kpi
from iiif_visual_search.index.keypoints import (
    KeypointIndex,
    records_of,
    search_keypoints,
    update_keypoint_index,
)

N = 16


@functools.cache
def _data() -> tuple[np.ndarray, list[lf.LocalFeatures]]:
    crops = [im for _, im in real_crops()[::10][:N]]  # spread over the collections
    return records_of([lf.extract(im) for im in crops]), [lf.extract(q) for q in augment_all(crops, seed=11)]


def _write(tmp_path, records: np.ndarray) -> lf.LocalFeatureStore:  # noqa: ANN001
    store = lf.LocalFeatureStore(tmp_path)
    store.write_at(len(store), [lf.features_of(r) for r in records])
    return store


def _found(kp: KeypointIndex, queries: list[lf.LocalFeatures]) -> int:
    """Queries whose original is among the 5 regions with most votes (the candidates that get verified)."""
    return sum(i in kp.votes(q, 5)[0] for i, q in enumerate(queries))


def test_votes_name_the_original_and_skip_excluded_rows() -> None:
    records, queries = _data()
    kp = KeypointIndex(None)
    assert kp.add(0, records, save=False) == int(records["count"].sum())
    assert _found(kp, queries) >= N - 1
    rows, votes = kp.votes(queries[0], 5)
    assert np.all(np.diff(votes) <= 0) and len(set(rows.tolist())) == len(rows)
    assert 0 not in kp.votes(queries[0], 5, exclude=[0])[0]
    batched = kp.votes_many(queries[:3], 5)
    assert all(np.array_equal(a[0], kp.votes(q, 5)[0]) for a, q in zip(batched, queries[:3]))
    empty = lf.LocalFeatures(queries[0].points, queries[0].descriptors, 0)
    assert len(kp.votes(empty, 5)[0]) == 0 and len(KeypointIndex(None).votes(queries[0], 5)[0]) == 0


def test_incremental_updates_follow_the_records_and_survive_a_torn_write(tmp_path) -> None:  # noqa: ANN001
    records, queries = _data()
    _write(tmp_path, records[:6])
    first = update_keypoint_index(tmp_path, rows_limit=6)
    assert first["rebuilt"] == 1 and first["rows"] == 6
    _write(tmp_path, records[6:])
    # The vector file has only 12 rows yet: records past it may still be rewritten, so they wait.
    assert update_keypoint_index(tmp_path, rows_limit=12)["rows"] == 12
    second = update_keypoint_index(tmp_path, rows_limit=N)
    assert second["rebuilt"] == 0 and second["added"] == int(records["count"][12:].sum())
    assert update_keypoint_index(tmp_path, rows_limit=N)["added"] == 0  # nothing twice
    kp = search_keypoints(tmp_path)
    assert kp is not None and kp.meta.descriptors == int(records["count"].sum())
    assert _found(kp, queries) >= N - 1
    # A crash between the index and its metadata: the count disagrees, the next update starts over.
    meta = kp.meta_path.read_text()
    kp.meta_path.write_text(meta.replace(f'"descriptors": {kp.meta.descriptors}', '"descriptors": 1'))
    assert KeypointIndex(kp.dir).index is None
    assert update_keypoint_index(tmp_path, rows_limit=N)["rebuilt"] == 1
    # Compaction keeps only the live rows.
    update_keypoint_index(tmp_path, range(1, N), rows_limit=N, compact=True)
    assert 0 not in search_keypoints(tmp_path).votes(queries[0], N)[0]


def test_ivf_index_past_the_threshold_and_retrained_as_it_grows(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    records, queries = _data()
    monkeypatch.setattr(kpi, "IVF_THRESHOLD", 2_000)
    _write(tmp_path, records[:10])
    assert update_keypoint_index(tmp_path, rows_limit=10)["kind"] == "ivf"
    kp = KeypointIndex(tmp_path / "local", threshold=2_000)
    trained = kp.meta.trained_on
    assert kp.meta.nlist >= 64 and not kp.stale
    _write(tmp_path, records[10:])
    monkeypatch.setattr(kpi, "RETRAIN_GROWTH", 1.2)
    update_keypoint_index(tmp_path, rows_limit=N)
    kp = search_keypoints(tmp_path)
    assert kp.meta.kind == "ivf" and kp.meta.trained_on > trained
    assert _found(kp, queries) >= N - 1


def test_queries_read_the_index_memory_mapped_with_the_same_votes(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    """The service's copy (``search_keypoints``) maps the file instead of reading it into memory, flat or
    IVF, and votes exactly as a private copy does; adding to a mapped index works on a private copy."""
    records, queries = _data()
    monkeypatch.setattr(kpi, "IVF_THRESHOLD", 2_000)
    _write(tmp_path, records)
    update_keypoint_index(tmp_path, rows_limit=10)
    mapped, private = search_keypoints(tmp_path), KeypointIndex(tmp_path / "local", threshold=2_000)
    assert mapped.mapped and not private.mapped and mapped.meta.kind == "ivf"
    assert all(np.array_equal(mapped.votes(q, 5)[0], private.votes(q, 5)[0]) for q in queries)
    kp = KeypointIndex(tmp_path / "local", threshold=2_000, mmap=True)
    assert kp.add(10, records[10:], save=True) == int(records["count"][10:].sum())
    assert not kp.mapped and _found(search_keypoints(tmp_path), queries) >= N - 1


def test_rebuild_reads_chunks_and_builds_the_index_a_single_pass_builds(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    """A rebuild never holds every descriptor (at 100k regions that is ~22M, 11 GB as float32): it reads
    the records a chunk at a time, trains on the same sample a one-shot build draws, and ends with the same
    index (same votes, same lists)."""
    records, queries = _data()
    monkeypatch.setattr(kpi, "IVF_THRESHOLD", 2_000)
    monkeypatch.setattr(kpi, "ADD_CHUNK", 3)
    store = _write(tmp_path, records)
    largest = []

    def read(rows: np.ndarray) -> np.ndarray:
        largest.append(len(rows))
        return store.read(rows)

    chunked = KeypointIndex(tmp_path / "local", threshold=2_000)
    chunked.rebuild(np.arange(N), read)
    assert max(largest) == 3 and chunked.meta.kind == "ivf"
    one_shot = KeypointIndex(None, threshold=2_000)
    one_shot.add(0, records, save=False)
    assert chunked.meta.descriptors == one_shot.meta.descriptors == int(records["count"].sum())
    assert chunked.meta.nlist == one_shot.meta.nlist
    for q in queries:
        a, b = chunked.votes(q, 8), one_shot.votes(q, 8)
        assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


def test_an_original_among_many_copies_still_collects_votes(monkeypatch) -> None:  # noqa: ANN001
    """Among many near-copies of one picture (a reprinted woodcut, regions that overlap), a query keypoint's
    nearest stored descriptors are all copies; against the 10th of them the ratio test fails for the
    original too (8 % of originals got no vote among 100k windows of their own pages). A large index looks
    deeper, past the copies, and the original's keypoints vote again."""
    records, queries = _data()
    i = 2  # its original collects the most votes among the 16 (203)
    rng = np.random.default_rng(0)
    copies = np.repeat(records[i:i + 1], 40)
    noisy = copies["descriptors"].astype(np.int16) + rng.integers(-4, 5, copies["descriptors"].shape)
    copies["descriptors"] = np.clip(noisy, 0, 255).astype(np.uint8)
    kp = KeypointIndex(None)
    kp.add(0, np.concatenate([records, copies]), save=False)
    monkeypatch.setattr(kpi, "DESCRIPTORS_PER_NEIGHBOUR", 10**9)  # 10 neighbours: what a small index looks up
    shallow = dict(zip(*kp.votes(queries[i], 100), strict=True))
    monkeypatch.setattr(kpi, "DESCRIPTORS_PER_NEIGHBOUR", 1)      # 256: what 20M descriptors look up
    deep = dict(zip(*kp.votes(queries[i], 100), strict=True))
    assert kpi.neighbours(10**9) == kpi.KNN_MAX and kpi.neighbours(50) == 50
    assert deep[i] >= 4 * shallow.get(i, 0) and deep[i] >= 50
    assert deep[i] >= 0.9 * max(deep.get(r, 0) for r in range(N, N + len(copies)))  # as many as its copies
