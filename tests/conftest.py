"""Shared test fixtures."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from datapaths import SHARED_DATA, shared

P3_SCHEMA = SHARED_DATA.parent / "reference" / "schemas" / "iiif_3_0.json"


@pytest.fixture
def shared_data() -> Path:
    return shared()


@pytest.fixture(scope="session")
def p3() -> Callable[[dict[str, Any]], None]:
    """Asserts that a document is valid against the IIIF Presentation 3 JSON Schema in ../shared/reference."""
    jsonschema = pytest.importorskip("jsonschema")
    if not P3_SCHEMA.is_file():
        pytest.skip(f"P3 JSON Schema not found at {P3_SCHEMA}")
    validator = jsonschema.Draft7Validator(json.loads(P3_SCHEMA.read_text()))

    def check(doc: dict[str, Any]) -> None:
        errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.path))
        assert not errors, [f"{list(e.path)}: {e.message[:200]}" for e in errors[:5]]

    return check


# Long commands lower their own CPU priority (IVS_NICE); run in-process by the tests, that would renice pytest.
os.environ.setdefault("IVS_NICE", "0")
