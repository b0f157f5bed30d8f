"""Shared test fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

from datapaths import shared


@pytest.fixture
def shared_data() -> Path:
    return shared()
