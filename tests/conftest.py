"""Shared test fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from datapaths import shared


@pytest.fixture
def shared_data() -> Path:
    return shared()


# Long commands lower their own CPU priority (IVS_NICE); run in-process by the tests, that would renice pytest.
os.environ.setdefault("IVS_NICE", "0")
