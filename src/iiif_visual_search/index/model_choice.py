"""Which embedding models are indexed here, which one a query uses when it names none, and what to say
when it names one that does not exist.

The default is the best model that is indexed: SigLIP, then CLIP, then ViT, then any other (a hub id or a
local checkpoint), and the weight-free fingerprint last, as it only finds near-duplicates. With only the
fingerprint indexed (the offline demo), the fingerprint is the default: asking for SigLIP there fails.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path

from .vectors import list_models, vectors_dir

PREFERENCE = ("siglip", "clip", "vit")
TEXT_ARCHITECTURES = ("siglip", "clip")


@dataclass(frozen=True)
class IndexedModel:
    key: str            # the vector set's key (its folder under DATA_DIR/vectors)
    name: str           # the name it was embedded under (a registry name, hub id or folder)
    architecture: str

    @property
    def reads_text(self) -> bool:
        return self.architecture in TEXT_ARCHITECTURES


def indexed_models(data_dir: Path | str) -> list[IndexedModel]:
    """Vector sets with a built index, best first (see the module docstring)."""
    found = [IndexedModel(d.key, d.name, d.architecture) for d in list_models(data_dir)
             if (vectors_dir(data_dir, d.key) / "index.faiss").exists()]

    def rank(m: IndexedModel) -> tuple[int, str]:
        if m.architecture == "fingerprint":
            return (len(PREFERENCE) + 1, m.key)
        return (PREFERENCE.index(m.key) if m.key in PREFERENCE else len(PREFERENCE), m.key)

    return sorted(found, key=rank)


def default_model(data_dir: Path | str, fallback: str = "siglip") -> str:
    """The best indexed model's key, or ``fallback`` when nothing is indexed yet (its error says so)."""
    models = indexed_models(data_dir)
    return models[0].key if models else fallback


def known_names(data_dir: Path | str) -> list[str]:
    from ..embed.models import MODEL_NAMES

    return sorted({*MODEL_NAMES, *(n for m in indexed_models(data_dir) for n in (m.key, m.name))})


def unknown_model_message(name: str, data_dir: Path | str) -> str:
    """"unknown model 'fingerprnt'; did you mean fingerprint? indexed here: fingerprint"."""
    names = known_names(data_dir)
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
    indexed = ", ".join(m.key for m in indexed_models(data_dir)) or "none yet (run 'ivs embed')"
    hint = f"; did you mean {close[0]}?" if close else f"; known names: {', '.join(names)}"
    return f"unknown model {name!r}{hint} indexed here: {indexed}"


def looks_like_a_name(name: str) -> bool:
    """A bare word: not a hub id (``owner/model``) nor a path, so it can only be one of our names."""
    return "/" not in name and "\\" not in name and not Path(name).exists()
