"""The class list: the paper's seven classes by default, any other list when configured."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

# Roald, Birkenes & Johnsen (CHR 2024), in the order of their Label Studio template.
PAPER_CLASSES: tuple[str, ...] = (
    "Blank page",
    "Segmentation anomaly",
    "Illustration or photograph",
    "Musical notation",
    "Map",
    "Mathematical chart",
    "Graphical element",
)

# Spellings seen in real exports that mean one of the classes above. The Label Studio template
# calls the last class "Graphical element (other)"; the CHR24 JSON drops the suffix.
_ALIASES = {
    "graphical element (other)": "Graphical element",
    "illustration": "Illustration or photograph",
    "photograph": "Illustration or photograph",
    "blank": "Blank page",
    "music": "Musical notation",
    "chart": "Mathematical chart",
}


def canonical_class(name: str, classes: Sequence[str] = PAPER_CLASSES) -> str | None:
    """The class in ``classes`` that ``name`` means (case and spacing ignored), or None."""
    key = " ".join(name.split()).casefold()
    for cls in classes:
        if cls.casefold() == key:
            return cls
    alias = _ALIASES.get(key)
    if alias is not None and alias in classes:
        return alias
    return None


def load_class_list(spec: str | None) -> tuple[str, ...]:
    """A class list from a flag: None → the paper's seven; a file → one class per line; else comma-separated."""
    if not spec:
        return PAPER_CLASSES
    path = Path(spec)
    if path.is_file():
        names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    else:
        names = [part.strip() for part in spec.split(",")]
    names = [n for n in names if n and not n.startswith("#")]
    if len(names) < 2:
        raise ValueError(f"a class list needs at least two classes, got {names!r}")
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate class names in {names!r}")
    return tuple(names)
