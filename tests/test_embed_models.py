"""Embedders: tiny random-weight checkpoints of each architecture loaded through from_pretrained, our batched
preprocessing against the Hugging Face image processors on real crops, text embedding, offline errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from iiif_visual_search.embed.models import (EmbedderUnavailable, HFEmbedder, ModelDescriptor, get_embedder,
                                             model_key)
from iiif_visual_search.embed.preprocess import CLIP_SPEC, SIGLIP_SPEC, VIT_SPEC, PreprocessSpec, preprocess

from real_crops import real_crops
from tiny_models import build_all


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict:
    return build_all(tmp_path_factory.mktemp("models"))


def _processors():
    from transformers import CLIPImageProcessor, SiglipImageProcessor, ViTImageProcessor

    return {
        # The paper's checkpoints' processor settings (their preprocessor_config.json values).
        "siglip": (SiglipImageProcessor(size={"height": 256, "width": 256}, resample=3), SIGLIP_SPEC),
        "clip": (CLIPImageProcessor(), CLIP_SPEC),
        "vit": (ViTImageProcessor(), VIT_SPEC),
    }


@pytest.mark.parametrize("arch", ["siglip", "clip", "vit"])
def test_preprocessing_matches_hf_processor_on_real_crops(arch: str) -> None:
    processor, spec = _processors()[arch]
    assert PreprocessSpec.from_hf(processor) == spec
    crops = [im for _, im in real_crops()][::9]  # ~20 crops of every shape, thin ones included
    crops.append(crops[0].convert("L"))           # greyscale scans must become RGB the same way
    ours = preprocess(crops, spec).numpy()
    for i, im in enumerate(crops):
        # ViTImageProcessor has no RGB conversion and fails on greyscale; we convert (as the paper should have).
        ref_in = im.convert("RGB") if arch == "vit" else im
        ref = processor(images=ref_in, return_tensors="np")["pixel_values"][0]
        assert ref.shape == ours[i].shape
        assert np.abs(ref - ours[i]).max() < 1e-4, f"{arch} crop {i} size {im.size}"


def test_vit_default_resample_is_bilinear() -> None:
    from transformers import ViTImageProcessor

    assert PreprocessSpec.from_hf(ViTImageProcessor()).resample == "bilinear"


@pytest.mark.parametrize("arch", ["siglip", "clip", "vit"])
def test_tiny_checkpoint_loads_and_matches_naive_hf_loop(tiny, arch: str) -> None:
    emb = HFEmbedder(str(tiny[arch]), str(tiny[arch]), device="cpu", precision="fp32")
    assert emb.architecture == arch
    assert emb.descriptor.revision.startswith("sha256:")
    crops = [im for _, im in real_crops()][:5]
    ours = emb.embed_images(crops)
    assert ours.dtype == np.float32 and ours.shape == (5, emb.descriptor.dim)
    assert np.allclose(np.linalg.norm(ours, axis=1), 1, atol=1e-5)
    # The naive loop the paper ran: processor + model, fp32, one image at a time.
    from transformers import AutoImageProcessor, AutoModel

    proc = AutoImageProcessor.from_pretrained(tiny[arch])
    model = AutoModel.from_pretrained(tiny[arch]).eval()
    with torch.inference_mode():
        for i, im in enumerate(crops):
            px = proc(images=im, return_tensors="pt")["pixel_values"]
            if arch == "vit":
                ref = model(pixel_values=px, output_hidden_states=True).hidden_states[-1][:, 0]
            else:
                out = model.get_image_features(pixel_values=px)
                ref = out if torch.is_tensor(out) else out.pooler_output
            ref = torch.nn.functional.normalize(ref, dim=1)[0].numpy()
            assert float(ref @ ours[i]) > 0.99999


def test_vit_vector_is_cls_before_final_layernorm(tiny) -> None:
    emb = HFEmbedder("vit", str(tiny["vit"]), device="cpu", precision="fp32")
    im = real_crops()[0][1]
    pixels = preprocess([im], emb.spec)
    with torch.inference_mode():
        out = emb.model(pixel_values=pixels, output_hidden_states=True)
    pre_ln = torch.nn.functional.normalize(out.hidden_states[-1][:, 0], dim=1)[0].numpy()
    post_ln = torch.nn.functional.normalize(out.last_hidden_state[:, 0], dim=1)[0].numpy()
    v = emb.embed_images([im])[0]
    assert np.allclose(v, pre_ln, atol=1e-5)
    assert not np.allclose(v, post_ln, atol=1e-3)
    assert "before the final LayerNorm" in emb.descriptor.output


@pytest.mark.parametrize("arch", ["siglip", "clip"])
def test_text_embedding(tiny, arch: str) -> None:
    emb = HFEmbedder(arch, str(tiny[arch]), device="cpu", precision="fp32")
    assert emb.supports_text
    t = emb.embed_texts(["a map of the coast", "woodcut ornament", "a map of the coast"])
    assert t.shape == (3, emb.descriptor.dim)
    assert np.allclose(np.linalg.norm(t, axis=1), 1, atol=1e-5)
    assert np.allclose(t[0], t[2]) and not np.allclose(t[0], t[1])


def test_vit_has_no_text(tiny) -> None:
    emb = HFEmbedder("vit", str(tiny["vit"]), device="cpu")
    with pytest.raises(EmbedderUnavailable):
        emb.embed_texts(["map"])


def test_bf16_close_to_fp32(tiny) -> None:
    crops = [im for _, im in real_crops()][:4]
    a = HFEmbedder("s", str(tiny["siglip"]), device="cpu", precision="fp32").embed_images(crops)
    b = HFEmbedder("s", str(tiny["siglip"]), device="cpu", precision="bf16").embed_images(crops)
    assert b.dtype == np.float32
    assert (a * b).sum(1).min() > 0.99


def test_registry_by_directory_detects_architecture(tiny) -> None:
    emb = get_embedder(str(tiny["clip"]), "cpu")
    assert emb.descriptor.architecture == "clip"
    assert emb.descriptor.key == model_key(str(tiny["clip"]))
    assert get_embedder(str(tiny["clip"]), "cpu") is emb  # cached: the service loads a model once
    assert ModelDescriptor.from_json(emb.descriptor.to_json()) == emb.descriptor


def test_missing_hub_model_says_how_to_use_a_local_copy(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(EmbedderUnavailable) as err:
        HFEmbedder("siglip", "google/siglip-base-patch16-256-multilingual", allow_download=False)
    msg = str(err.value)
    assert "--model /path/to/dir" in msg and "HF_HOME" in msg


def test_not_a_supported_architecture(tmp_path) -> None:
    from transformers import BertConfig

    BertConfig(hidden_size=8, num_hidden_layers=1, num_attention_heads=1, intermediate_size=8).save_pretrained(tmp_path)
    with pytest.raises(EmbedderUnavailable, match="supported architectures"):
        HFEmbedder("x", str(tmp_path))


def test_transparent_png_becomes_white_like_hf() -> None:
    from transformers import SiglipImageProcessor

    im = Image.new("RGBA", (40, 30), (0, 0, 0, 0))
    ours = preprocess([im], SIGLIP_SPEC).numpy()[0]
    ref = SiglipImageProcessor(size={"height": 256, "width": 256}, resample=3)(images=im, return_tensors="np")["pixel_values"][0]
    assert np.abs(ours - ref).max() < 1e-4


def test_a_missing_model_folder_is_named_as_a_folder(tmp_path) -> None:
    """A path that is not a folder used to be looked up on the hub and answered with `hf download /the/path`."""
    (tmp_path / "weights.bin").write_bytes(b"x")
    for source in (str(tmp_path / "no-such-dir"), str(tmp_path / "weights.bin")):
        with pytest.raises(EmbedderUnavailable, match="no model folder at") as err:
            HFEmbedder("x", source, allow_download=False)
        assert "hf download" not in str(err.value)
