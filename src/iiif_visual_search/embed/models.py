"""One ``Embedder`` interface and the registry of models.

Every embedder turns pictures into L2-normalised float32 rows and says exactly what produced them in a
``ModelDescriptor`` that is stored beside the vectors, so vectors of two models are never mixed and a stored
index can always be queried with the embedder that wrote it.

The work is split in two so that callers can batch and parallelise: ``prepare`` (one image → array; pure CPU,
thread-safe; runs in worker threads) and ``embed_prepared`` (a list of those arrays → rows; runs the model).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import re
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
from PIL import Image

DEFAULT_MODEL = "siglip"

# The paper's checkpoints (CHR 2024, ../shared/research/chr24.md §2).
HUB_IDS: dict[str, str] = {
    "siglip": "google/siglip-base-patch16-256-multilingual",
    "clip": "openai/clip-vit-base-patch32",
    "vit": "google/vit-base-patch16-224",
}
MODEL_NAMES = (*HUB_IDS, "fingerprint")


class EmbedderUnavailable(RuntimeError):
    """A model that cannot be loaded here; the message says what to do about it."""


@dataclass(frozen=True)
class ModelDescriptor:
    """What produced a vector set. Stored as ``descriptor.json`` next to the vectors and the index."""

    name: str            # registry name or the source given by the user
    key: str             # file-system safe name of the vector directory: data_dir/vectors/<key>/
    architecture: str    # siglip | clip | vit | fingerprint
    source: str          # hub id or absolute local directory ('' for fingerprint)
    revision: str        # hub commit hash, or sha256 of the weight files of a local directory, or algorithm version
    dim: int
    output: str          # which tensor the vector is
    preprocessing: dict[str, Any] = field(default_factory=dict)
    normalisation: str = "l2"

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ModelDescriptor:
        return cls(**json.loads(text))

    def compatible_with(self, other: ModelDescriptor) -> bool:
        """Same vectors: same architecture, weights, output, dimension and preprocessing."""
        return (self.architecture, self.revision, self.dim, self.output, self.preprocessing) == (
            other.architecture, other.revision, other.dim, other.output, other.preprocessing)


@runtime_checkable
class Embedder(Protocol):
    descriptor: ModelDescriptor

    @property
    def name(self) -> str: ...

    @property
    def supports_text(self) -> bool: ...

    def prepare(self, image: Image.Image) -> np.ndarray:
        """One decoded image → the array ``embed_prepared`` takes. Thread-safe, CPU only."""
        ...

    def embed_prepared(self, batch: list[np.ndarray]) -> np.ndarray:
        """Prepared arrays → (N, dim) float32, rows L2-normalised."""
        ...

    def embed_images(self, images: list[Image.Image]) -> np.ndarray: ...

    def embed_texts(self, texts: list[str]) -> np.ndarray: ...


def l2_normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)


def model_key(name: str) -> str:
    """Directory name for a model: the registry name itself, else a readable slug plus a short hash."""
    if name in MODEL_NAMES:
        return name
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", name.strip("/").split("/")[-1]).strip("-")[:48] or "model"
    return f"{slug}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"


# --- device and precision ----------------------------------------------------------------------


def pick_device(device: str | None = None) -> str:
    """``device`` if given (or IVS_DEVICE), else CUDA, then Apple MPS, then CPU."""
    import torch

    device = device or os.environ.get("IVS_DEVICE") or None
    if device:
        return device
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


@functools.cache
def cpu_has_fast_bf16() -> bool:
    """True where oneDNN runs bf16 matmuls natively (AVX512-BF16 or AMX); elsewhere bf16 is emulated, slower."""
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except Exception:  # older torch or no oneDNN
        return False


def pick_dtype(device: str, precision: str | None = None) -> Any:
    """``precision`` in {None/'auto', 'fp32', 'bf16', 'fp16'} (env IVS_PRECISION)."""
    import torch

    precision = (precision or os.environ.get("IVS_PRECISION") or "auto").lower()
    table = {"fp32": torch.float32, "float32": torch.float32, "bf16": torch.bfloat16,
             "bfloat16": torch.bfloat16, "fp16": torch.float16, "float16": torch.float16}
    if precision in table:
        return table[precision]
    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device == "mps":
        return torch.float16
    return torch.bfloat16 if cpu_has_fast_bf16() else torch.float32


# --- Hugging Face models -----------------------------------------------------------------------

_OUTPUTS = {
    "siglip": "get_image_features (vision tower attention-pool head)",
    "clip": "get_image_features (post-LayerNorm CLS -> visual_projection)",
    # The paper (chr24.md §2) took hidden_states[-1][:, 0]: the CLS token of the last encoder layer
    # *before* ViTModel's final LayerNorm. We do the same so our vectors are the paper's.
    "vit": "hidden_states[-1][:, 0] (CLS of the last encoder layer, before the final LayerNorm)",
}


def _offline_message(source: str, error: Exception) -> str:
    return (
        f"model {source!r} is not available here ({type(error).__name__}: {str(error).splitlines()[0][:200]}). "
        f"Download it where there is network access (e.g. `hf download {source} --local-dir /path/to/dir`) "
        f"and pass that directory: `ivs embed --model /path/to/dir`, or point HF_HOME at a Hugging Face cache "
        f"that holds it (set HF_HUB_OFFLINE=1 to never try the network)."
    )


def _weights_hash(path: Path) -> str:
    h = hashlib.sha256()
    files = sorted(p for p in path.iterdir() if p.suffix in (".safetensors", ".bin") and p.is_file())
    for p in files:
        h.update(p.name.encode())
        with p.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 22), b""):
                h.update(chunk)
    return "sha256:" + h.hexdigest()[:16] if files else ""


class HFEmbedder:
    """SigLIP, CLIP or ViT from a hub id or a local directory, batched, on the best device available."""

    def __init__(self, name: str, source: str, *, device: str | None = None, precision: str | None = None,
                 allow_download: bool | None = None, cpu_path: str | None = None) -> None:
        import torch
        from transformers import AutoConfig

        from .preprocess import CLIP_SPEC, SIGLIP_SPEC, VIT_SPEC, PreprocessSpec

        local = Path(source).expanduser()
        is_local = local.is_dir()
        # A path is never a hub id: telling the user to `hf download /their/path` would send them astray.
        if not is_local and (source.startswith(("/", "./", "../", "~")) or local.exists()):
            raise EmbedderUnavailable(f"no model folder at {local}: give a checkpoint directory (with "
                                      f"config.json), a hub id or one of siglip, clip, vit, fingerprint")
        if allow_download is None:
            allow_download = os.environ.get("HF_HUB_OFFLINE", "") in ("", "0")
        load_kw: dict[str, Any] = {} if is_local else {"local_files_only": not allow_download}
        src = str(local.resolve()) if is_local else source
        try:
            config = AutoConfig.from_pretrained(src, **load_kw)
        except (OSError, ValueError) as e:
            raise EmbedderUnavailable(_offline_message(source, e)) from e
        arch = {"siglip": "siglip", "clip": "clip", "vit": "vit"}.get(config.model_type)
        if arch is None:
            raise EmbedderUnavailable(
                f"{source!r} is a {config.model_type!r} checkpoint; supported architectures: siglip, clip, vit")
        self.architecture = arch
        self.device = pick_device(device)
        self.dtype = pick_dtype(self.device, precision)
        self._src, self._load_kw = src, load_kw
        try:
            model = self._load(self.dtype)
        except (OSError, ValueError) as e:
            raise EmbedderUnavailable(_offline_message(source, e)) from e
        self.model = model.to(self.device).eval()
        from .cpu_paths import ImageTower
        self._tower = ImageTower(self.model, arch)
        try:
            from transformers import AutoImageProcessor
            self.spec = PreprocessSpec.from_hf(AutoImageProcessor.from_pretrained(src, **load_kw))
        except (OSError, ValueError):
            self.spec = {"siglip": SIGLIP_SPEC, "clip": CLIP_SPEC, "vit": VIT_SPEC}[arch]
        self.tokenizer = None
        if arch in ("siglip", "clip"):
            try:
                from transformers import AutoTokenizer
                self.tokenizer = AutoTokenizer.from_pretrained(src, **load_kw)
            except (OSError, ValueError, ImportError):
                self.tokenizer = None  # image-only copy of the checkpoint: text search unavailable
        revision = getattr(config, "_commit_hash", None) or (_weights_hash(local) if is_local else "")
        with torch.inference_mode():
            dim = int(self._forward(torch.zeros((1, 3, self.spec.height, self.spec.width),
                                                dtype=self.dtype, device=self.device)).shape[1])
        self.descriptor = ModelDescriptor(
            name=name, key=model_key(name), architecture=arch, source=src, revision=revision or "unknown",
            dim=dim, output=_OUTPUTS[arch], preprocessing=self.spec.to_dict(),
        )
        self._lock = threading.Lock()  # one forward at a time: the model is shared by the service's threads
        # How the image tower runs on the CPU (embed/cpu_paths.py): forced by ``cpu_path`` or IVS_CPU_PATH,
        # else today's torch path until a calibration (cached per model and machine) says otherwise.
        self._path_mode = (cpu_path or os.environ.get("IVS_CPU_PATH") or "auto").lower()
        self.cpu_path = "torch"
        self._runner: Any = None
        self.calibration: Any = None  # the cpu_paths.Calibration this embedder made, if it made one

    @property
    def name(self) -> str:
        return self.descriptor.name

    @property
    def supports_text(self) -> bool:
        return self.tokenizer is not None

    def _load(self, dtype: Any) -> Any:
        import transformers

        model_cls = {"siglip": transformers.SiglipModel, "clip": transformers.CLIPModel,
                     "vit": transformers.ViTModel}[self.architecture]
        extra: dict[str, Any] = {"add_pooling_layer": False} if self.architecture == "vit" else {}
        return model_cls.from_pretrained(self._src, dtype=dtype, attn_implementation="sdpa", **extra,
                                         **self._load_kw).eval()

    def _forward(self, pixel_values: Any) -> Any:
        return self._tower(pixel_values)

    # --- the CPU path (embed/cpu_paths.py) ---

    def _model_id(self) -> str | None:
        """The calibration cache's name for these weights at this precision and size; None when the weights
        have no known revision (nothing to tie a cached choice to)."""
        if self.descriptor.revision in ("", "unknown"):
            return None
        return (f"{self.architecture}:{self.descriptor.revision}:{str(self.dtype).removeprefix('torch.')}:"
                f"{self.spec.height}x{self.spec.width}")

    def _fp32_tower(self) -> Any:
        import torch

        from .cpu_paths import ImageTower

        return self._tower if self.dtype == torch.float32 else ImageTower(self._load(torch.float32),
                                                                           self.architecture)

    def _build_path(self, path: str, batch: int | None) -> Any:
        import torch

        from . import cpu_paths as cp

        if path == cp.TORCH:
            return cp.torch_runner(self._tower, self.dtype)
        if path == cp.OPENVINO:
            model_id = self._model_id()
            ir_dir = None
            if model_id is not None:
                digest = hashlib.sha256(f"{model_id}|{cp.openvino_version()}".encode()).hexdigest()[:16]
                ir_dir = cp.cache_dir() / "openvino" / f"{self.architecture}-{digest}"
            return cp.openvino_runner(self._fp32_tower, (self.spec.height, self.spec.width),
                                      bf16=self.dtype == torch.bfloat16, ir_dir=ir_dir)
        if path == cp.COMPILE:
            return cp.compile_runner(self._tower, self.dtype, batch)
        if path == cp.INT8:
            return cp.int8_runner(self._fp32_tower())
        raise ValueError(f"unknown CPU path {path!r}: one of {', '.join(cp.PATHS)}")

    def _start_path(self) -> Any:
        """Today's torch path, or on the CPU the forced one, or the one a calibration chose and cached."""
        from . import cpu_paths as cp

        today = cp.torch_runner(self._tower, self.dtype)
        if self.device != "cpu" or self._path_mode in (cp.TORCH, "calibrate"):
            return today
        if self._path_mode in (cp.OPENVINO, cp.COMPILE):
            runner = self._build_path(self._path_mode, None)
            self.cpu_path = self._path_mode
            return runner
        model_id = self._model_id()
        cached = cp.CalibrationCache().get(model_id) if model_id else None
        if cached is None or cached.chosen == cp.TORCH or (cached.chosen == cp.INT8 and not cp.allow_int8()):
            return today
        try:
            runner = self._build_path(cached.chosen, cached.batch)
        except Exception:  # noqa: BLE001 - e.g. a library gone since: today's path still works
            return today
        self.cpu_path = cached.chosen
        return runner

    def _run_tower(self, pixels: Any) -> Any:
        if self._runner is None:
            self._runner = self._start_path()
        return self._runner(pixels)

    def select_cpu_path(self, sample: list[np.ndarray], images: int | None = None) -> str:
        """Called by an embed job with its first prepared batch and its size: on the CPU, with no cached
        choice for this model and machine, and enough ``images`` to earn it back (or IVS_CPU_PATH=calibrate),
        measure the candidate paths on ``sample`` and keep the best (see embed/cpu_paths.py). Returns the
        path that will run."""
        import torch

        from . import cpu_paths as cp
        from .preprocess import normalise_batch

        with self._lock:
            model_id = self._model_id()
            calibrating = self._path_mode == "calibrate" or (
                self._path_mode == "auto" and images is not None and images >= cp.CALIBRATE_MIN_IMAGES
                and model_id is not None and cp.CalibrationCache().get(model_id) is None)
            if self._runner is not None or self.device != "cpu" or not calibrating or not sample:
                if self._runner is None:
                    self._runner = self._start_path()
                return self.cpu_path
            fp32 = cp.torch_runner(self._fp32_tower(), torch.float32)
            builders = {p: (lambda p=p: self._build_path(p, len(sample))) for p in cp.default_candidates()}
            pixels = normalise_batch(np.stack(sample), self.spec, "cpu", torch.float32)
            calibration, runners = cp.calibrate(builders, fp32, pixels, model=model_id or self.name,
                                                allow_int8=cp.allow_int8())
            del fp32
            if model_id is not None:
                cp.CalibrationCache().put(calibration)
            self.cpu_path = calibration.chosen
            self._runner = runners.get(calibration.chosen) or cp.torch_runner(self._tower, self.dtype)
            self.calibration = calibration
            return self.cpu_path

    def prepare(self, image: Image.Image) -> np.ndarray:
        from .preprocess import resize_crop

        return resize_crop(image, self.spec)

    def embed_prepared(self, batch: list[np.ndarray]) -> np.ndarray:
        import torch

        from .preprocess import normalise_batch

        if not batch:
            return np.zeros((0, self.descriptor.dim), dtype=np.float32)
        with self._lock, torch.inference_mode():
            # float32 here: each path casts to what it runs in (today's torch path to self.dtype, as before).
            pixels = normalise_batch(np.stack(batch), self.spec, self.device, torch.float32)
            feats = torch.nn.functional.normalize(self._run_tower(pixels).float(), dim=1)
            return feats.cpu().numpy().astype(np.float32)

    def embed_images(self, images: list[Image.Image]) -> np.ndarray:
        return self.embed_prepared([self.prepare(im) for im in images])

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        import torch

        if self.tokenizer is None:
            raise EmbedderUnavailable(f"{self.name} has no text tower or tokenizer: text search needs siglip or clip")
        if self.architecture == "siglip":
            # SigLIP was trained on text padded to the full length; shorter padding changes the vectors.
            max_len = int(self.model.config.text_config.max_position_embeddings)
            enc = self.tokenizer(texts, padding="max_length", truncation=True, max_length=max_len,
                                 return_tensors="pt")
        else:
            max_len = int(self.model.config.text_config.max_position_embeddings)
            enc = self.tokenizer(texts, padding=True, truncation=True, max_length=max_len, return_tensors="pt")
        enc = {k: v.to(self.device) for k, v in enc.items() if k in ("input_ids", "attention_mask")}
        if self.architecture == "siglip":
            enc.pop("attention_mask", None)  # SiglipModel as released ignores the mask (pads are attended)
        with self._lock, torch.inference_mode():
            out = self.model.get_text_features(**enc)
            feats = out if hasattr(out, "shape") else out.pooler_output
            return torch.nn.functional.normalize(feats.float(), dim=1).cpu().numpy().astype(np.float32)


# --- registry ----------------------------------------------------------------------------------

_CACHE: dict[tuple[str, str | None, str | None], Embedder] = {}
_CACHE_LOCK = threading.Lock()


def get_embedder(name_or_path: str | None = None, device: str | None = None, *, precision: str | None = None,
                 allow_download: bool | None = None) -> Embedder:
    """An embedder by registry name (siglip, clip, vit, fingerprint), hub id or local checkpoint directory.

    Cached per (name, device, precision): the HTTP service and the CLI share one loaded model.
    ``allow_download`` None means: download from the hub unless HF_HUB_OFFLINE is set.
    """
    name = name_or_path or DEFAULT_MODEL
    key = (name, device, precision)
    with _CACHE_LOCK:
        if key in _CACHE:
            return _CACHE[key]
        embedder: Embedder
        if name == "fingerprint":
            from .fingerprint import FingerprintEmbedder
            embedder = FingerprintEmbedder()
        else:
            embedder = HFEmbedder(name, HUB_IDS.get(name, name), device=device, precision=precision,
                                  allow_download=allow_download)
        _CACHE[key] = embedder
        return embedder


class Preparer(Protocol):
    def prepare(self, image: Image.Image) -> Any: ...


def preparer_for(descriptor: ModelDescriptor) -> Preparer:
    """The ``prepare`` of the embedder that ``descriptor`` names, without loading its weights: the same
    arrays, for workers that decode and preprocess while others run the model."""
    if descriptor.architecture == "fingerprint":
        from .fingerprint import FingerprintEmbedder
        return FingerprintEmbedder()
    from .preprocess import PreprocessSpec, SpecPreparer
    return SpecPreparer(PreprocessSpec.from_dict(descriptor.preprocessing))


_WARNED: set[tuple[str, str]] = set()


def embedder_for(descriptor: ModelDescriptor, device: str | None = None) -> Embedder:
    """The embedder that wrote a stored vector set (for queries against its index). Where this version's
    embedder describes images differently from the one that wrote the set (a newer fingerprint revision, or
    a hub model whose weights moved on), queries still run, but a warning says to re-embed: they compare
    unlike descriptions and rank worse."""
    if descriptor.architecture == "fingerprint":
        emb = get_embedder("fingerprint")
    else:
        emb = get_embedder(descriptor.source if Path(descriptor.source).is_dir() else descriptor.name, device)
    if not emb.descriptor.compatible_with(descriptor) and (descriptor.key, descriptor.revision) not in _WARNED:
        _WARNED.add((descriptor.key, descriptor.revision))  # once per process: it is asked on every query
        logging.getLogger(__name__).warning(
            "the %s vectors were written by revision %s, and this version describes queries with revision %s: "
            "run 'ivs embed --model %s' into a fresh data directory (or delete vectors/%s) for the best results",
            descriptor.name, descriptor.revision, emb.descriptor.revision, descriptor.name, descriptor.key)
    return emb
