"""Where the third-party test data lives (``../shared/data`` beside the checkout, or $IVS_SHARED_DATA)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED_DATA = Path(os.environ.get("IVS_SHARED_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))


def shared(*parts: str) -> Path:
    """A path under ../shared/data; skips the test with the reason when that data is not here."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"needs the shared test data at {path} (the ../shared folder beside the checkout)")
    return path
