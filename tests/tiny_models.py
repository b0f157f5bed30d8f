"""Tiny random-weight SigLIP, CLIP and ViT checkpoints with tiny tokenizers, built from configs, no downloads.

Each is saved with ``save_pretrained`` (weights, config, image processor, tokenizer) so the code under test
loads it through the same ``from_pretrained`` path as a real checkpoint.
"""

from __future__ import annotations

from pathlib import Path

import torch

WORDS = ["a", "map", "of", "the", "coast", "woodcut", "ornament", "music", "portrait", "lighthouse", "kart"]


def _tokenizer(kind: str):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<unk>", "<s>", "</s>"]
    vocab = {tok: i for i, tok in enumerate(specials + WORDS)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    if kind == "clip":
        from tokenizers import processors
        tok.post_processor = processors.TemplateProcessing(
            single="<s> $A </s>", special_tokens=[("<s>", vocab["<s>"]), ("</s>", vocab["</s>"])])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>", bos_token="<s>", eos_token="</s>",
        model_max_length=16,
    )


def _vision_kwargs(image_size: int, patch: int) -> dict:
    return dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                image_size=image_size, patch_size=patch)


def build_siglip(root: Path) -> Path:
    from transformers import SiglipConfig, SiglipImageProcessor, SiglipModel

    torch.manual_seed(0)
    tok = _tokenizer("siglip")
    config = SiglipConfig(
        text_config=dict(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, max_position_embeddings=16, pad_token_id=0, eos_token_id=3),
        vision_config=_vision_kwargs(32, 8),
    )
    path = root / "tiny-siglip"
    SiglipModel(config).eval().save_pretrained(path)
    SiglipImageProcessor(size={"height": 32, "width": 32}).save_pretrained(path)
    tok.save_pretrained(path)
    return path


def build_clip(root: Path) -> Path:
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    torch.manual_seed(1)
    tok = _tokenizer("clip")
    config = CLIPConfig(
        text_config=dict(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, max_position_embeddings=16, pad_token_id=0, bos_token_id=2,
                         eos_token_id=3),
        vision_config=_vision_kwargs(32, 8),
        projection_dim=24,
    )
    path = root / "tiny-clip"
    CLIPModel(config).eval().save_pretrained(path)
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(path)
    tok.save_pretrained(path)
    return path


def build_vit(root: Path) -> Path:
    from transformers import ViTConfig, ViTImageProcessor, ViTModel

    torch.manual_seed(2)
    config = ViTConfig(**_vision_kwargs(32, 8))
    path = root / "tiny-vit"
    ViTModel(config, add_pooling_layer=False).eval().save_pretrained(path)
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(path)
    return path


def build_all(root: Path) -> dict[str, Path]:
    return {"siglip": build_siglip(root), "clip": build_clip(root), "vit": build_vit(root)}
