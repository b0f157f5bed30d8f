"""Vector file and FAISS index: add, delete (tombstones), compact, persist and reload (mmap), HNSW recall."""

from __future__ import annotations

import numpy as np
import pytest

from iiif_visual_search.embed.models import ModelDescriptor
from iiif_visual_search.index.vectors import IndexMismatch, VectorFile, VectorIndex


def _unit(n: int, d: int, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _desc(dim: int = 16, revision: str = "r1") -> ModelDescriptor:
    return ModelDescriptor(name="t", key="t", architecture="fingerprint", source="", revision=revision, dim=dim,
                           output="test")


def test_vector_file_appends_and_reads_back(tmp_path) -> None:
    vf = VectorFile(tmp_path / "t", _desc())
    x = _unit(10, 16)
    assert vf.append(x[:4]) == range(0, 4)
    assert vf.append(x[4:]) == range(4, 10)
    assert len(VectorFile(tmp_path / "t")) == 10
    assert np.array_equal(vf.read([7, 1]), x[[7, 1]])


def test_vector_file_cuts_a_torn_tail(tmp_path) -> None:
    vf = VectorFile(tmp_path / "t", _desc())
    vf.append(_unit(3, 16))
    with open(vf.path, "ab") as f:
        f.write(b"\0" * 10)  # a crash in the middle of a row
    assert vf.append(_unit(1, 16, 5)) == range(3, 4)
    assert vf.path.stat().st_size == 4 * 16 * 4


def test_vector_file_refuses_another_model(tmp_path) -> None:
    VectorFile(tmp_path / "t", _desc())
    with pytest.raises(IndexMismatch):
        VectorFile(tmp_path / "t", _desc(revision="r2"))
    with pytest.raises(IndexMismatch):
        VectorFile(tmp_path / "t", _desc(dim=8))


def test_add_delete_persist_reload_compact(tmp_path) -> None:
    x = _unit(50, 16)
    ix = VectorIndex(tmp_path, 16)
    assert ix.add(range(30), x[:30]) == 30
    assert ix.add(range(25, 40), x[25:40]) == 10          # already-indexed rows are not added twice
    assert ix.search(x[5], 1)[0][0].row == 5
    assert ix.delete([5, 6]) == 2
    hits = ix.search(x[5], 40)[0]
    assert 5 not in {h.row for h in hits} and 6 not in {h.row for h in hits}
    assert len(hits) == 38

    again = VectorIndex(tmp_path, 16)                     # reload: tombstones persist
    assert again.live_count == 38 and again.tombstones == {5, 6}
    assert 5 not in {h.row for h in again.search(x[5], 10)[0]}
    assert again.add([40], x[40:41]) == 1                 # incremental add into a loaded (mapped) index
    assert again.search(x[40], 1)[0][0].row == 40
    assert again.add([5], x[5:6]) == 0 and 5 not in again.tombstones  # a re-added row comes back
    assert again.search(x[5], 1)[0][0].row == 5

    live = [r for r in range(41) if r != 6]
    again.rebuild(live, x[live])
    final = VectorIndex(tmp_path, 16)
    assert final.meta.count == 40 and not final.tombstones
    assert sorted(final.ids.tolist()) == live
    assert final.search(x[33], 1)[0][0].score == pytest.approx(1.0, abs=1e-5)


def test_reload_is_memory_mapped_where_faiss_allows(tmp_path) -> None:
    x = _unit(20, 16)
    VectorIndex(tmp_path, 16).add(range(20), x)
    ix = VectorIndex(tmp_path, 16)
    assert ix._mapped
    assert [hits[0].row for hits in ix.search(x[:3], 1)] == [0, 1, 2]


def test_atomic_write_leaves_no_temp_files(tmp_path) -> None:
    ix = VectorIndex(tmp_path, 16)
    ix.add(range(5), _unit(5, 16))
    ix.delete([1])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index.faiss", "index.json"]


def test_hnsw_above_threshold_and_recall_against_exact(tmp_path) -> None:
    import faiss

    rng = np.random.default_rng(1)
    centres = _unit(50, 64, 2)
    x = centres[rng.integers(0, 50, 6000)] + 0.15 * rng.standard_normal((6000, 64)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    ix = VectorIndex(tmp_path, 64, threshold=1000)
    ix.rebuild(list(range(6000)), x)
    assert ix.meta.kind == "hnsw"
    exact = faiss.IndexFlatIP(64)
    exact.add(x)
    q = x[rng.choice(6000, 200, replace=False)] + 0.05 * rng.standard_normal((200, 64)).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    _, truth = exact.search(q, 10)
    got = VectorIndex(tmp_path, 64, threshold=1000).search(q, 10)
    recall = np.mean([len(set(t) & {h.row for h in g}) / 10 for t, g in zip(truth, got)])
    assert recall >= 0.95, recall


def test_ef_search_is_configurable_per_index_and_by_environment(tmp_path, monkeypatch) -> None:
    """Hard data (uniform in 32-d): efSearch 10 misses neighbours that efSearch 400 finds."""
    import faiss

    from iiif_visual_search.index import vectors

    x = _unit(4000, 32, 5)
    q = _unit(100, 32, 6)
    VectorIndex(tmp_path, 32, threshold=100).rebuild(list(range(len(x))), x)
    exact = faiss.IndexFlatIP(32)
    exact.add(x)
    _, truth = exact.search(q, 10)

    def recall(ix: VectorIndex) -> float:
        return float(np.mean([len(set(t) & {h.row for h in g}) / 10 for t, g in zip(truth, ix.search(q, 10))]))

    low, high = recall(VectorIndex(tmp_path, 32, ef_search=10)), recall(VectorIndex(tmp_path, 32, ef_search=400))
    assert high >= 0.99 and low < high - 0.02, (low, high)
    monkeypatch.setenv(vectors.EF_SEARCH_ENV, "400")
    assert VectorIndex(tmp_path, 32).ef_search == 400 and recall(VectorIndex(tmp_path, 32)) == high
    monkeypatch.setenv(vectors.EF_SEARCH_ENV, "lots")
    with pytest.raises(ValueError, match="IVS_HNSW_EF_SEARCH"):
        VectorIndex(tmp_path, 32)
