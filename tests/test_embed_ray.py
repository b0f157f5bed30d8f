"""``ivs embed --ray`` on a real local Ray cluster (2 CPUs, started once for the module): the same vectors as
a local run for every architecture, shards merged on resume, a driver killed with SIGKILL resumed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from iiif_visual_search.catalogue import Catalogue
from iiif_visual_search.cli import main
from iiif_visual_search.embed.local_features import LocalFeatureStore
from iiif_visual_search.embed.models import get_embedder, model_key
from iiif_visual_search.embed_ray import Placement, plan
from iiif_visual_search.embed_job import pending, run_embed, update_indexes
from iiif_visual_search.embed.shards import Shard, list_shards, shards_dir, write_shard
from iiif_visual_search.index.vectors import VectorStore

from embed_data import build_data_dir
from tiny_models import build_clip, build_siglip, build_vit

ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install 'iiif-visual-search[ray]'")

N = 12
pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def cluster() -> str:
    """One local cluster for the module (starting Ray takes seconds); its address lets a second driver join."""
    from iiif_visual_search.embed_ray import connect

    assert connect("local", num_cpus=2, object_store_memory=256 * 2**20)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


def _ids(cat: Catalogue) -> list[str]:
    return [r["id"] for r in cat.query("SELECT id FROM region ORDER BY id")]


def _vectors(data_dir: Path, key: str) -> tuple[np.ndarray, np.ndarray | None]:
    """Every region's vector (and keypoint record, for the fingerprint), in region order."""
    cat = Catalogue(data_dir / "catalogue.sqlite")
    store = VectorStore(data_dir, key, cat)
    ids = _ids(cat)
    local = None
    if store.descriptor.architecture == "fingerprint":
        rows = store.rows_for(ids)
        local = LocalFeatureStore(store.dir).read([rows[r] for r in ids])
    return store.vectors_for(ids), local


def test_placement_one_actor_per_gpu_and_most_cores_to_the_model_elsewhere() -> None:
    assert plan({"CPU": 16, "GPU": 2}) == Placement(actors=2, cpus_per_actor=1, gpus_per_actor=1, batch_size=64,
                                                     device=None)
    assert plan({"CPU": 2}) == Placement(1, 1, 0, 16, "cpu")
    assert plan({"CPU": 64}) == Placement(7, 8, 0, 16, "cpu")  # 8 cores decode
    assert plan({"CPU": 8, "GPU": 1}, device="cpu", batch_size=5) == Placement(1, 7, 0, 5, "cpu")
    # The fingerprint's work is all decoding: its one actor reserves nothing, GPUs or not.
    assert plan({"CPU": 8, "GPU": 1}, weight_free=True) == Placement(1, 0, 0, 16, "cpu")


def test_cli_rejects_an_unknown_ray_address(tmp_path) -> None:
    res = CliRunner().invoke(main, ["--data-dir", str(tmp_path), "embed", "--model", "fingerprint", "--ray", "nope"])
    assert res.exit_code == 2 and "local, auto or ray://HOST:PORT" in res.output, res.output


@pytest.mark.parametrize("arch", ["fingerprint", "siglip", "clip", "vit"])
def test_ray_vectors_equal_the_local_runs(cluster, tmp_path, arch) -> None:
    from iiif_visual_search.embed_ray import run_embed_ray

    model = "fingerprint" if arch == "fingerprint" else str(
        {"siglip": build_siglip, "clip": build_clip, "vit": build_vit}[arch](tmp_path / "models"))
    here, there = build_data_dir(tmp_path / "local", N), build_data_dir(tmp_path / "ray", N)
    local = run_embed(Catalogue(here / "catalogue.sqlite"), here, model, device="cpu", batch_size=5, progress=False)
    remote = run_embed_ray(Catalogue(there / "catalogue.sqlite"), there, model, address="local", batch_size=5,
                           progress=False)
    assert local.embedded == remote.embedded == N and remote.failed == 0 and remote.model == model_key(model)
    (a, a_local), (b, b_local) = _vectors(here, local.model), _vectors(there, remote.model)
    assert float(((a * b).sum(axis=1)).min()) >= 0.9999
    if arch == "fingerprint":
        assert np.array_equal(a, b) and np.array_equal(a_local, b_local) and b_local["size"].min() > 0
    assert list_shards(shards_dir(there / "vectors" / remote.model)) == []


def test_cli_ray_merges_leftover_shards_and_quarantines_unreadable_images(cluster, tmp_path) -> None:
    data_dir = build_data_dir(tmp_path, N)
    cat = Catalogue(data_dir / "catalogue.sqlite")
    broken = cat.query_one("SELECT region_id, path FROM region_image ORDER BY region_id")
    (data_dir / broken["path"]).write_bytes(b"not a picture")
    # A killed run left one whole shard (three regions) and a half-written temporary file.
    emb = get_embedder("fingerprint")
    store = VectorStore(data_dir, "fingerprint", cat, descriptor=emb.descriptor)
    todo = pending(cat, "fingerprint", data_dir)[1:4]
    from iiif_visual_search.embed.local_features import to_records
    from iiif_visual_search.embed_job import load_prepared

    prepared = [load_prepared(emb, t.path) for t in todo]
    shard_root = shards_dir(store.dir)
    shard_root.mkdir(parents=True)
    write_shard(shard_root, Shard(emb.descriptor, [t.region_id for t in todo], [t.image_sha256 for t in todo],
                                  emb.embed_prepared(prepared), [], [], to_records([p.local for p in prepared])))
    (shard_root / ".tmp-00000.npz.abc").write_bytes(b"torn")

    res = CliRunner().invoke(main, ["--data-dir", str(data_dir), "embed", "--model", "fingerprint", "--ray", "local",
                                    "--batch-size", "4"])
    assert res.exit_code == 0, res.output
    assert f"fingerprint: embedded {N - 1}, failed 1" in res.output
    assert [q["ref"] for q in cat.quarantined("embed")] == [broken["region_id"]]
    assert not any(shard_root.iterdir())
    # The shard's regions were merged, not embedded again: each has exactly one row.
    rows = cat.query("SELECT region_id, COUNT(*) AS n FROM embedding WHERE model='fingerprint' GROUP BY region_id")
    assert len(rows) == N - 1 and {r["n"] for r in rows} == {1}
    assert len(VectorStore(data_dir, "fingerprint", cat).file) == N - 1
    assert f'"live": {N - 1}' in res.output  # the index followed, as after a local run


def test_a_driver_killed_mid_job_resumes_to_the_same_vector_set(cluster, tmp_path) -> None:
    from iiif_visual_search.embed_ray import run_embed_ray

    copies = 8  # 96 regions in small batches: long enough to be killed half-way
    here, there = build_data_dir(tmp_path / "local", N, copies), build_data_dir(tmp_path / "ray", N, copies)
    total = N * copies
    run_embed(Catalogue(here / "catalogue.sqlite"), here, "fingerprint", progress=False)

    env = {**os.environ, "RAY_ADDRESS": cluster}
    driver = subprocess.Popen(
        [sys.executable, "-c", "from iiif_visual_search.cli import main; main()", "--data-dir", str(there),
         "embed", "--model", "fingerprint", "--ray", "auto", "--batch-size", "2", "--no-index"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    cat = Catalogue(there / "catalogue.sqlite")
    deadline = time.monotonic() + 120
    done = 0
    try:
        while driver.poll() is None and time.monotonic() < deadline:
            done = cat.query_one("SELECT COUNT(*) AS n FROM embedding")["n"]
            if done:
                break
            time.sleep(0.02)
        assert driver.poll() is None, driver.stderr.read().decode()[-3000:]
        os.kill(driver.pid, signal.SIGKILL)
    finally:
        driver.kill()
        driver.wait()
    assert 0 < done < total

    report = run_embed_ray(cat, there, "fingerprint", address="auto", progress=False)
    assert report.embedded + done >= total and report.failed == 0
    assert pending(cat, "fingerprint", there) == []
    (a, a_local), (b, b_local) = _vectors(here, "fingerprint"), _vectors(there, "fingerprint")
    assert np.array_equal(a, b) and np.array_equal(a_local, b_local)
    assert update_indexes(VectorStore(there, "fingerprint", cat))["live"] == total


def test_a_worker_with_other_weights_stops_the_job_and_says_why(cluster, tmp_path) -> None:
    """Every node must load the same model: a worker whose copy differs would mix two models' vectors."""
    from safetensors.torch import load_file, save_file

    from iiif_visual_search.embed_ray import RayUnavailable, run_embed_ray

    model = build_siglip(tmp_path / "models")
    get_embedder(str(model), "cpu")  # the driver's copy (cached in this process)
    weights = model / "model.safetensors"
    tensors = load_file(weights)
    save_file({k: v + 0.01 for k, v in tensors.items()}, weights, metadata={"format": "pt"})
    data_dir = build_data_dir(tmp_path / "data", 4)
    with pytest.raises(RayUnavailable, match="give every node the same model files"):
        run_embed_ray(Catalogue(data_dir / "catalogue.sqlite"), data_dir, str(model), address="local",
                      progress=False)
    assert Catalogue(data_dir / "catalogue.sqlite").query_one("SELECT COUNT(*) AS n FROM embedding")["n"] == 0


def test_a_driver_connected_through_ray_client(cluster, tmp_path) -> None:
    """``--ray ray://HOST:PORT``: Ray Data cannot run its driver through Ray Client, so the pipeline runs in
    an actor on the cluster and the client pulls the batches."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "RAY_AUTH_MODE": "token"}  # clusters that Ray starts use token authentication
    server = subprocess.Popen([sys.executable, "-m", "ray.util.client.server", "--mode", "legacy", "--host",
                               "127.0.0.1", "--port", str(port), "--address", cluster], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        here, there = build_data_dir(tmp_path / "local", N), build_data_dir(tmp_path / "client", N)
        run_embed(Catalogue(here / "catalogue.sqlite"), here, "fingerprint", progress=False)
        res = subprocess.run(
            [sys.executable, "-c", "from iiif_visual_search.cli import main; main()", "--data-dir", str(there),
             "embed", "--model", "fingerprint", "--ray", f"ray://127.0.0.1:{port}", "--batch-size", "4"],
            env=env, capture_output=True, text=True, timeout=240)
        assert res.returncode == 0, res.stderr[-3000:]
        assert f"fingerprint: embedded {N}, failed 0" in res.stderr
    finally:
        server.terminate()
        server.wait(timeout=30)
    (a, a_local), (b, b_local) = _vectors(here, "fingerprint"), _vectors(there, "fingerprint")
    assert np.array_equal(a, b) and np.array_equal(a_local, b_local)
