"""The CPU paths of the image towers (embed/cpu_paths.py): each gives fp32's vectors on the tiny models, the
choice follows the timings it is given (a fake clock, never the real one) and the fidelity gates, int8 is
never chosen by default, and a calibration is cached per model and machine and used by the next process."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from iiif_visual_search.catalogue import Catalogue
from iiif_visual_search.embed import cpu_paths as cp
from iiif_visual_search.embed.models import HFEmbedder
from iiif_visual_search.embed_job import run_embed

from embed_data import build_data_dir
from real_crops import real_crops
from tiny_models import build_all


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict:
    return build_all(tmp_path_factory.mktemp("models"))


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("IVS_CACHE_DIR", str(tmp_path / "cache"))
    for var in ("IVS_CPU_PATH", "IVS_CPU_PATHS", "IVS_ALLOW_INT8"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path / "cache"


def _crops(n: int = 8) -> list:
    return [im for _, im in real_crops()][:n]


# --- the choice ------------------------------------------------------------------------------------------


def _trial(path: str, rate: float, cosine: float = 0.99999, overlap: float = 1.0, start: float = 0.0,
           error: str = "") -> cp.Trial:
    return cp.Trial(path, rate, start, cosine, overlap, error)


def test_choose_takes_the_fastest_path_that_gives_the_same_vectors() -> None:
    trials = [_trial("torch", 10), _trial("openvino", 18), _trial("compile", 12)]
    assert cp.choose(trials) == "openvino"
    # Faster but not the same vectors (bf16 done badly): not taken.
    assert cp.choose([_trial("torch", 10), _trial("openvino", 18, cosine=0.9990), _trial("compile", 12)]) == "compile"
    # A path that failed to build is ignored.
    assert cp.choose([_trial("torch", 10), _trial("openvino", 0, error="ImportError")]) == "torch"


def test_choose_keeps_todays_path_unless_clearly_faster() -> None:
    assert cp.choose([_trial("torch", 10), _trial("openvino", 10.1)]) == "torch"  # within the noise margin
    assert cp.choose([_trial("torch", 10), _trial("openvino", 10.5), _trial("compile", 10.4)]) == "openvino"
    assert cp.choose([_trial("openvino", 20)]) == "torch"  # today's path unmeasured: nothing to compare


def test_int8_only_when_allowed_and_through_its_gate() -> None:
    trials = [_trial("torch", 10), _trial("openvino", 15), _trial("int8", 30, cosine=0.9995, overlap=0.95)]
    assert cp.choose(trials) == "openvino"                       # the default never picks int8
    assert cp.choose(trials, allow_int8=True) == "int8"
    bad_neighbours = [_trial("torch", 10), _trial("int8", 30, cosine=0.9995, overlap=0.6)]
    assert cp.choose(bad_neighbours, allow_int8=True) == "torch"
    assert cp.default_candidates() == ["torch", "openvino"]


def test_int8_joins_the_candidates_only_when_allowed(monkeypatch) -> None:
    monkeypatch.setenv("IVS_ALLOW_INT8", "1")
    assert "int8" in cp.default_candidates()
    monkeypatch.setenv("IVS_CPU_PATHS", "compile")
    assert cp.default_candidates() == ["torch", "compile", "int8"]


def test_fidelity_sees_changed_neighbours_that_cosine_hides() -> None:
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(12, 16))
    assert cp.fidelity(ref, ref) == pytest.approx((1.0, 1.0))
    shuffled = ref[rng.permutation(12)]
    cosine, overlap = cp.fidelity(ref, shuffled)
    assert cosine < 0.9 and overlap < 1.0
    noisy = ref + rng.normal(scale=1e-3, size=ref.shape)
    cosine, overlap = cp.fidelity(ref, noisy)
    assert 0.999 < cosine < 1.0 and overlap == 1.0


class FakeClock:
    """Time that moves only when a fake path runs: each costs its own seconds per call."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def runner(self, seconds: float, out: torch.Tensor) -> cp.Runner:
        def run(pixels: torch.Tensor) -> torch.Tensor:
            self.now += seconds
            return out
        return run


def test_calibrate_times_each_path_and_chooses_on_fake_timings() -> None:
    clock = FakeClock()
    ref = torch.randn(8, 16)
    sample = torch.zeros(8, 3, 4, 4)

    def broken() -> cp.Runner:
        raise RuntimeError("no such plugin")

    builders = {"torch": lambda: clock.runner(0.8, ref), "openvino": lambda: clock.runner(0.4, ref * 1.0001),
                "compile": lambda: clock.runner(0.2, -ref), "int8": broken}
    calibration, runners = cp.calibrate(builders, lambda x: ref, sample, model="m", clock=clock, rounds=3)
    by = {t.path: t for t in calibration.trials}
    assert by["torch"].images_per_second == pytest.approx(10) and by["openvino"].images_per_second == pytest.approx(20)
    assert by["openvino"].start_seconds == pytest.approx(0.4)  # its build and first batch
    assert by["compile"].min_cosine < 0 and not by["compile"].passed   # fastest, wrong vectors
    assert "no such plugin" in by["int8"].error and "int8" not in runners
    assert calibration.chosen == "openvino" and set(runners) == {"torch", "openvino", "compile"}


def test_calibration_cache_is_per_model_and_machine(own_cache) -> None:
    cache = cp.CalibrationCache()
    cal = cp.Calibration(model="siglip:sha256:1", machine=cp.machine_key(), batch=8, chosen="openvino",
                         trials=[_trial("torch", 10), _trial("openvino", 18)])
    cache.put(cal)
    assert cp.CalibrationCache().get("siglip:sha256:1") == cal
    assert cache.get("siglip:sha256:2") is None
    other = cp.Calibration(model="siglip:sha256:1", machine="another-cpu", batch=8, chosen="torch")
    cache.put(other)
    assert cache.get("siglip:sha256:1") == cal  # another machine's choice is not ours
    assert set(json.loads(cache.path.read_text())) == {cache.key("siglip:sha256:1"),
                                                       cache.key("siglip:sha256:1", "another-cpu")}
    cache.path.write_text("{not json")
    assert cache.get("siglip:sha256:1") is None


# --- the paths on real crops -----------------------------------------------------------------------------


@pytest.mark.parametrize("arch", ["siglip", "clip", "vit"])
def test_openvino_path_gives_fp32_vectors(tiny, arch: str, own_cache) -> None:
    crops = _crops()
    ref = HFEmbedder(arch, str(tiny[arch]), device="cpu", precision="fp32").embed_images(crops)
    fast = HFEmbedder(arch, str(tiny[arch]), device="cpu", cpu_path="openvino")
    got = fast.embed_images(crops)
    assert fast.cpu_path == "openvino" and got.dtype == np.float32 and got.shape == ref.shape
    assert (ref * got).sum(1).min() >= cp.SAME_VECTORS_COSINE
    # The converted model is kept: a second process reads it instead of converting again.
    assert len(list((own_cache / "openvino").glob(f"{arch}-*/model.xml"))) == 1
    again = HFEmbedder(arch, str(tiny[arch]), device="cpu", cpu_path="openvino").embed_images(crops)
    assert np.allclose(again, got, atol=1e-6)


def test_compile_and_int8_paths(tiny) -> None:
    crops = _crops(5)  # 5 with batch 16: the compiled path pads, and must drop the padding again
    ref = HFEmbedder("vit", str(tiny["vit"]), device="cpu", precision="fp32").embed_images(crops)
    compiled = HFEmbedder("vit", str(tiny["vit"]), device="cpu", cpu_path="compile")
    got = compiled.embed_images(crops)
    assert compiled.cpu_path == "compile" and got.shape == ref.shape
    assert (ref * got).sum(1).min() >= cp.SAME_VECTORS_COSINE
    emb = HFEmbedder("vit", str(tiny["vit"]), device="cpu")
    int8 = cp.int8_runner(emb._fp32_tower())
    with torch.inference_mode():
        from iiif_visual_search.embed.preprocess import preprocess
        q = torch.nn.functional.normalize(int8(preprocess(crops, emb.spec)), dim=1).numpy()
    assert (ref * q).sum(1).min() > 0.99  # close, but int8 is gated, not trusted


def test_embed_job_calibrates_caches_and_the_next_process_uses_it(tiny, tmp_path, monkeypatch, own_cache) -> None:
    data = build_data_dir(tmp_path / "data", 10)
    cat = Catalogue(data / "catalogue.sqlite")
    monkeypatch.setenv("IVS_CPU_PATH", "calibrate")  # a job this small would not calibrate by itself
    emb = HFEmbedder("siglip", str(tiny["siglip"]), device="cpu")
    report = run_embed(cat, data, embedder=emb, batch_size=10, progress=False)
    assert report.embedded == 10 and report.cpu_path == emb.cpu_path == emb.calibration.chosen
    assert {t.path for t in emb.calibration.trials} == {"torch", "openvino"}
    assert all(t.passed for t in emb.calibration.trials)
    from iiif_visual_search.index.vectors import VectorStore
    store = VectorStore(data, emb.descriptor.name, cat)
    ids = [r["id"] for r in cat.query("SELECT id FROM region ORDER BY id")]
    ref = HFEmbedder("siglip", str(tiny["siglip"]), device="cpu", precision="fp32")
    from PIL import Image
    paths = {r["region_id"]: r["path"] for r in cat.query("SELECT region_id, path FROM region_image")}
    want = ref.embed_images([Image.open(data / paths[i]) for i in ids])
    assert (want * store.vectors_for(ids)).sum(1).min() >= cp.SAME_VECTORS_COSINE

    monkeypatch.delenv("IVS_CPU_PATH")
    later = HFEmbedder("siglip", str(tiny["siglip"]), device="cpu")
    later.embed_images(_crops(2))
    assert later.cpu_path == emb.calibration.chosen and later.calibration is None  # from the cache


def test_small_jobs_do_not_calibrate_and_cached_int8_needs_permission(tiny, own_cache) -> None:
    emb = HFEmbedder("vit", str(tiny["vit"]), device="cpu")
    sample = [emb.prepare(im) for im in _crops(4)]
    assert emb.select_cpu_path(sample, images=cp.CALIBRATE_MIN_IMAGES - 1) == "torch"
    assert not (own_cache / "cpu-paths.json").exists()
    # A cache that says int8 (written where it was allowed) is not followed where it is not.
    model_id = emb._model_id()
    cp.CalibrationCache().put(cp.Calibration(model=model_id, machine=cp.machine_key(), batch=4, chosen="int8"))
    fresh = HFEmbedder("vit", str(tiny["vit"]), device="cpu")
    fresh.embed_images(_crops(2))
    assert fresh.cpu_path == "torch"
