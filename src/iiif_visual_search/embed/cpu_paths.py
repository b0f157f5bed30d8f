"""How an image tower runs on this CPU: the candidate paths, the fidelity gate, a short self-calibration and
the cache that keeps its choice per model and machine.

A *path* turns normalised float32 pixels (N, 3, H, W) into float32 features (N, D), before normalisation:

- ``torch``: PyTorch eager in the embedder's dtype (bf16 where the CPU has native bf16): what ran before.
- ``openvino``: the tower converted once to OpenVINO IR (cached on disk) and run by its CPU plugin in bf16
  where the CPU has it, else fp32. Its fused kernels take the layer norms, GELU and attention along with the
  matrix products, which PyTorch eager runs as separate passes over memory (a third of SigLIP's time).
- ``compile``: ``torch.compile`` (inductor) with frozen weights; a candidate only where OpenVINO is missing,
  since it was slower here and costs tens of seconds to compile in every process.
- ``int8``: dynamic int8 quantisation of the linear layers (VNNI). Never by default: only when allowed
  (``IVS_ALLOW_INT8=1``) and only if it passes its own fidelity gate (cosine and top-k overlap to fp32).

Which is fastest depends on the CPU and the model, so an embed job of enough images measures the candidates
on its own first batch (real images, so the fidelity gate sees real pictures), against the fp32 tower, and
keeps the fastest that gives the same vectors (cosine ≥ 0.9999 to fp32) and beats today's path. The choice is
cached (``cache_dir()/cpu-paths.json``) under a key of the model's weights and the machine (CPU flags, cores,
library versions), and every later process on that machine uses it without measuring again.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

Runner = Callable[[torch.Tensor], torch.Tensor]

TORCH, OPENVINO, COMPILE, INT8 = "torch", "openvino", "compile", "int8"
PATHS = (TORCH, OPENVINO, COMPILE, INT8)

SAME_VECTORS_COSINE = 0.9999   # every default path: the vectors fp32 gives
INT8_COSINE = 0.999            # int8's gate, with the overlap of each image's nearest neighbours
INT8_OVERLAP = 0.9
TOP_K = 5
CALIBRATE_MIN_IMAGES = 1000    # below this a job would not earn back the calibration (~30 s on 2 cores)
MARGIN = 1.03                  # a path must beat today's by this much: timings on a busy machine are noisy

# The CPU features that decide which kernels the libraries pick.
_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "avx_vnni", "amx_bf16", "amx_int8", "amx_tile")


def cache_dir() -> Path:
    """IVS_CACHE_DIR, else $XDG_CACHE_HOME/iiif-visual-search, else ~/.cache/iiif-visual-search."""
    if env := os.environ.get("IVS_CACHE_DIR"):
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "iiif-visual-search"


def openvino_version() -> str:
    try:
        import openvino
    except ImportError:
        return ""
    return str(openvino.__version__).split("-")[0]


@functools.cache
def cpu_flags() -> tuple[str, ...]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return ()
    for line in text.splitlines():
        if line.startswith("flags"):
            have = set(line.split(":", 1)[1].split())
            return tuple(f for f in _FLAGS if f in have)
    return ()


@functools.cache
def machine_key() -> str:
    """What a timing depends on besides the model: CPU model and flags, cores, threads, library versions."""
    model = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    parts = [model, " ".join(cpu_flags()), f"cpus={os.cpu_count()}", f"threads={torch.get_num_threads()}",
             f"torch={torch.__version__}", f"openvino={openvino_version() or 'none'}"]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


# --- fidelity --------------------------------------------------------------------------------------------


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def fidelity(reference: np.ndarray, got: np.ndarray, k: int = TOP_K) -> tuple[float, float]:
    """(smallest cosine between matching rows, mean share of each row's k nearest other rows that both agree
    on). The overlap says whether search results stay the same, which a high mean cosine can hide."""
    a, b = _unit(reference), _unit(got)
    cosine = float((a * b).sum(1).min())
    n = len(a)
    k = min(k, n - 1)
    if k < 1:
        return cosine, 1.0
    overlaps = []
    for sims_a, sims_b, i in zip(a @ a.T, b @ b.T, range(n)):
        sims_a[i] = sims_b[i] = -np.inf
        near_a = set(np.argsort(-sims_a, kind="stable")[:k].tolist())
        near_b = set(np.argsort(-sims_b, kind="stable")[:k].tolist())
        overlaps.append(len(near_a & near_b) / k)
    return cosine, float(np.mean(overlaps))


# --- trials and the choice -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Trial:
    """One path measured: its steady rate, what it cost to start (build and first batch), its fidelity."""

    path: str
    images_per_second: float = 0.0
    start_seconds: float = 0.0
    min_cosine: float = 0.0
    overlap: float = 0.0
    error: str = ""

    @property
    def passed(self) -> bool:
        if self.error or self.images_per_second <= 0:
            return False
        if self.path == INT8:
            return self.min_cosine >= INT8_COSINE and self.overlap >= INT8_OVERLAP
        return self.min_cosine >= SAME_VECTORS_COSINE


def choose(trials: list[Trial], *, today: str = TORCH, allow_int8: bool = False, margin: float = MARGIN) -> str:
    """The fastest path that passes its fidelity gate; today's path unless another beats it by ``margin``.
    int8 only when allowed. The start cost is not weighed: a calibrating job has paid it already, and later
    processes mostly read the converted model from the cache."""
    by_path = {t.path: t for t in trials}
    base = by_path.get(today)
    if base is None or base.images_per_second <= 0:
        return today
    best, best_rate = today, base.images_per_second * margin
    for t in trials:
        if t.path == today or not t.passed or (t.path == INT8 and not allow_int8):
            continue
        if t.images_per_second >= best_rate:
            best, best_rate = t.path, t.images_per_second
    return best


@dataclass
class Calibration:
    model: str
    machine: str
    batch: int
    chosen: str
    trials: list[Trial] = field(default_factory=list)
    load: float = 0.0
    at: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Calibration:
        d = dict(d)
        d["trials"] = [Trial(**t) for t in d.get("trials", [])]
        return cls(**d)


def calibrate(builders: dict[str, Callable[[], Runner]], reference: Runner, sample: torch.Tensor, *,
              model: str, today: str = TORCH, rounds: int = 3, allow_int8: bool = False, clock: Callable[[], float] = time.perf_counter,
              ) -> tuple[Calibration, dict[str, Runner]]:
    """Build every path, check it against the fp32 ``reference`` on ``sample``, time them in interleaved
    rounds (each round in another order, so a burst of load elsewhere hits them all alike) and choose.
    Returns the calibration and the runners that were built, so the chosen one need not be built again."""
    with torch.inference_mode():
        ref = reference(sample).float().numpy()
    runners: dict[str, Runner] = {}
    partial: dict[str, Trial] = {}
    for path, build in builders.items():
        t0 = clock()
        try:
            runner = build()
            with torch.inference_mode():
                out = runner(sample).float().numpy()
        except Exception as e:  # noqa: BLE001 - a path that cannot run here is reported and left out
            partial[path] = Trial(path, error=f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}")
            continue
        cosine, overlap = fidelity(ref, out)
        runners[path] = runner
        partial[path] = Trial(path, start_seconds=clock() - t0, min_cosine=cosine, overlap=overlap)
    seconds: dict[str, list[float]] = {p: [] for p in runners}
    order = list(runners)
    with torch.inference_mode():
        for r in range(rounds if order else 0):
            for path in order[r % len(order):] + order[:r % len(order)]:
                t0 = clock()
                runners[path](sample)
                seconds[path].append(clock() - t0)
    trials = []
    for path, t in partial.items():
        if seconds.get(path):
            t = Trial(path, len(sample) / statistics.median(seconds[path]), t.start_seconds, t.min_cosine,
                      t.overlap)
        trials.append(t)
    chosen = choose(trials, today=today, allow_int8=allow_int8)
    calibration = Calibration(model=model, machine=machine_key(), batch=len(sample), chosen=chosen,
                              trials=trials, load=os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0,
                              at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    return calibration, runners


class CalibrationCache:
    """Calibrations by model and machine, in one JSON file; written whole through a temporary file, so a
    reader never sees half of it."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or cache_dir() / "cpu-paths.json"

    @staticmethod
    def key(model: str, machine: str | None = None) -> str:
        return f"{model}@{machine or machine_key()}"

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def get(self, model: str) -> Calibration | None:
        entry = self._read().get(self.key(model))
        try:
            return Calibration.from_dict(entry) if entry else None
        except TypeError:  # written by another version
            return None

    def put(self, calibration: Calibration) -> None:
        data = self._read()
        data[self.key(calibration.model, calibration.machine)] = calibration.to_dict()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=self.path.parent, prefix=".cpu-paths-", suffix=".json",
                                         delete=False) as f:
            json.dump(data, f, indent=1, sort_keys=True)
        os.replace(f.name, self.path)


# --- the paths -------------------------------------------------------------------------------------------


class ImageTower(torch.nn.Module):
    """Pixels → the tensor that is the vector (``models._OUTPUTS``), as one module: what every path runs and
    what OpenVINO and torch.compile trace."""

    def __init__(self, model: torch.nn.Module, architecture: str) -> None:
        super().__init__()
        self.model = model
        self.architecture = architecture

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        if self.architecture == "vit":
            out = self.model(pixel_values=pixel_values, output_hidden_states=True)
            return out.hidden_states[-1][:, 0, :]
        out = self.model.get_image_features(pixel_values=pixel_values)
        return out if isinstance(out, torch.Tensor) else out.pooler_output


def torch_runner(tower: torch.nn.Module, dtype: torch.dtype) -> Runner:
    def run(pixels: torch.Tensor) -> torch.Tensor:
        return tower(pixels.to(dtype)).float()
    return run


def openvino_runner(make_fp32_tower: Callable[[], torch.nn.Module], size: tuple[int, int], *, bf16: bool,
                    ir_dir: Path | None) -> Runner:
    """The tower converted to OpenVINO IR (kept in ``ir_dir``: converting takes longer than compiling) and
    compiled for this CPU. Converted from the fp32 weights, so the fp32 path is exact and bf16 rounds once."""
    import openvino as ov

    core = ov.Core()
    xml = ir_dir / "model.xml" if ir_dir is not None else None
    if xml is not None and xml.exists():
        model = core.read_model(xml)
    else:
        import warnings

        h, w = size
        # Tracing warns about every shape check it freezes; the input shape is fixed but for the batch.
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = ov.convert_model(make_fp32_tower(), example_input=torch.zeros((1, 3, h, w)),
                                     input=[(ov.PartialShape([-1, 3, h, w]), ov.Type.f32)])
        if ir_dir is not None:
            _save_ir(ov, model, ir_dir)
    # As many threads as torch was given: a Ray actor's share of the cores (OMP_NUM_THREADS), not the machine.
    compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "bf16" if bf16 else "f32",
                                                 "PERFORMANCE_HINT": "LATENCY",
                                                 "INFERENCE_NUM_THREADS": torch.get_num_threads()})
    request = compiled.create_infer_request()

    def run(pixels: torch.Tensor) -> torch.Tensor:
        out = request.infer({0: pixels.float().contiguous().numpy()})
        return torch.from_numpy(np.array(out[0], dtype=np.float32))  # a copy: the request reuses its buffer
    return run


def _save_ir(ov: Any, model: Any, ir_dir: Path) -> None:
    """Into a fresh folder renamed into place: two processes converting at once never mix their files."""
    ir_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=ir_dir.parent, prefix=f".{ir_dir.name}-"))
    ov.save_model(model, str(tmp / "model.xml"), compress_to_fp16=False)
    try:
        os.replace(tmp, ir_dir)
    except OSError:  # another process got there first: theirs is the same model
        for p in tmp.iterdir():
            p.unlink()
        tmp.rmdir()


def compile_runner(tower: torch.nn.Module, dtype: torch.dtype, batch: int | None = None) -> Runner:
    """torch.compile with frozen weights (constant folding, oneDNN weight prepacking). Batches are padded
    or split to ``batch`` rows (None: the first batch's size): every other shape would compile again, for
    tens of seconds."""
    compiled = torch.compile(tower, options={"freezing": True})
    size: list[int] = [batch] if batch else []

    def run(pixels: torch.Tensor) -> torch.Tensor:
        if not size:
            size.append(len(pixels))
        batch = size[0]
        outs = []
        for i in range(0, len(pixels), batch):
            chunk = pixels[i:i + batch].to(dtype)
            n = len(chunk)
            if n < batch:
                chunk = torch.cat([chunk, chunk.new_zeros((batch - n, *chunk.shape[1:]))])
            with torch.no_grad():
                outs.append(compiled(chunk)[:n].float())
        return torch.cat(outs)
    return run


def int8_runner(fp32_tower: torch.nn.Module) -> Runner:
    import warnings

    with warnings.catch_warnings():  # torch.ao's eager quantisation announces its move to torchao
        warnings.simplefilter("ignore")
        quantised = torch.ao.quantization.quantize_dynamic(fp32_tower, {torch.nn.Linear}, dtype=torch.qint8)

    def run(pixels: torch.Tensor) -> torch.Tensor:
        return quantised(pixels.float()).float()
    return run


def default_candidates() -> list[str]:
    """What an automatic calibration tries: today's path and OpenVINO, or torch.compile where OpenVINO is
    missing (IVS_CPU_PATHS, comma-separated, overrides; int8 joins only with IVS_ALLOW_INT8=1)."""
    if env := os.environ.get("IVS_CPU_PATHS"):
        paths = [p.strip() for p in env.split(",") if p.strip() in PATHS]
    else:
        paths = [TORCH, OPENVINO if openvino_version() else COMPILE]
    if allow_int8() and INT8 not in paths:
        paths.append(INT8)
    if TORCH not in paths:
        paths.insert(0, TORCH)
    return paths


def allow_int8() -> bool:
    return os.environ.get("IVS_ALLOW_INT8", "") not in ("", "0")
