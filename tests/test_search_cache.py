"""The service's vector-store cache: loaded once per process, reloaded when `ivs index` replaces the files,
and region-id queries read the stored vector instead of embedding anything."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from iiif_visual_search import similar
from iiif_visual_search.catalogue import Catalogue
from iiif_visual_search.config import load_settings
from iiif_visual_search.embed.models import ModelDescriptor
from iiif_visual_search.index import vectors
from iiif_visual_search.index.vectors import VectorStore, clear_search_cache, search_store

DIM = 16


def _descriptor() -> ModelDescriptor:
    return ModelDescriptor(name="testvec", key="testvec", architecture="fingerprint", source="", revision="1",
                           dim=DIM, output="test vectors")


def _catalogue(data_dir: Path, n: int) -> tuple[Catalogue, list[str]]:
    cat = Catalogue(data_dir / "catalogue.sqlite")
    now = time.time()
    ids = [f"r{i:04d}" for i in range(n)]
    with cat.transaction() as conn:
        conn.execute("INSERT INTO manifest(id, uri, url, version, label, fetched_at) VALUES "
                     "('m1', 'https://example.org/m1', 'https://example.org/m1', 3, 'Book', ?)", (now,))
        conn.execute("INSERT INTO canvas(id, manifest_id, uri, position, width, height) VALUES "
                     "('c1', 'm1', 'https://example.org/m1/c1', 1, 1000, 1000)")
        conn.executemany("INSERT INTO region(id, canvas_id, manifest_id, x, y, w, h, created_at, updated_at) "
                         "VALUES (?, 'c1', 'm1', ?, 10, 50, 50, ?, ?)", [(r, i, now, now) for i, r in enumerate(ids)])
    return cat, ids


def _vectors(n: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture()
def data(tmp_path: Path):
    clear_search_cache()
    cat, ids = _catalogue(tmp_path, 40)
    store = VectorStore(tmp_path, "testvec", cat, descriptor=_descriptor())
    store.add(ids[:30], _vectors(30, 0))
    store.update_index()
    yield tmp_path, cat, ids
    cat.close()
    clear_search_cache()


def test_index_is_read_once_and_reloaded_after_a_rewrite(data, monkeypatch) -> None:
    data_dir, cat, ids = data
    reads = []
    real_read = vectors.VectorIndex._read
    monkeypatch.setattr(vectors.VectorIndex, "_read", lambda self, mmap: reads.append(1) or real_read(self, mmap))

    first = search_store(data_dir, "testvec", cat)
    assert first.index.live_count == 30
    for _ in range(5):
        again = search_store(data_dir, "testvec", cat)
        assert again.index is first.index
    assert len(reads) == 1

    # Another writer (as `ivs index` in another process) adds rows: the files are replaced by rename.
    writer = VectorStore(data_dir, "testvec", cat)
    writer.add(ids[30:], _vectors(10, 1))
    writer.update_index()
    reads.clear()
    fresh = search_store(data_dir, "testvec", cat)
    assert fresh.index is not first.index
    assert fresh.index.live_count == 40
    assert search_store(data_dir, "testvec", cat).index is fresh.index
    assert len(reads) == 1
    # The old index object still answers for a request that took it before the reload.
    assert len(first.index.search(_vectors(1, 2), 5)[0]) == 5


def test_bound_copy_uses_the_callers_catalogue(data) -> None:
    data_dir, cat, _ = data
    assert search_store(data_dir, "testvec", None).catalogue is None
    assert search_store(data_dir, "testvec", cat).catalogue is cat


def test_missing_vector_set_is_not_cached(tmp_path: Path) -> None:
    clear_search_cache()
    with pytest.raises(FileNotFoundError):
        search_store(tmp_path, "nothing-here")
    assert not vectors._STORES


def test_region_query_reads_the_stored_vector_and_embeds_nothing(data, monkeypatch) -> None:
    data_dir, cat, ids = data

    def no_embedding(*args, **kwargs):
        raise AssertionError("a region-id query must not load or run an embedder")

    monkeypatch.setattr(similar, "embedder_for", no_embedding)
    settings = load_settings(data_dir=data_dir)
    hits = similar.find_similar(cat, settings, model="testvec", region_id=ids[3], k=5)
    assert len(hits) == 5
    assert ids[3] not in {h.region for h in hits}
    stored = VectorStore(data_dir, "testvec", cat).vectors_for([ids[3], hits[0].region])
    assert hits[0].score == pytest.approx(float(stored[0] @ stored[1]), abs=1e-5)
