"""Long writers yield the CPU to a service on the same machine: the service's readers were slowed 8x by an
``ivs embed``/``ivs index`` at the same priority on two cores."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from iiif_visual_search.cli import main


@pytest.mark.parametrize("verb", [["ingest", "nothing-here.json"], ["fetch"], ["index", "--model", "nothing"]])
def test_long_commands_lower_their_priority_by_default(verb: list[str], tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    steps: list[int] = []
    monkeypatch.setattr(os, "nice", lambda step: steps.append(step) or 0)
    (tmp_path / "catalogue.sqlite").touch()  # fetch, embed and index want one; they may fail after renicing
    CliRunner().invoke(main, ["--data-dir", str(tmp_path), *verb], env={"IVS_NICE": None})
    assert steps == [10]
    steps.clear()
    CliRunner().invoke(main, ["--data-dir", str(tmp_path), *verb], env={"IVS_NICE": "0"})
    assert steps == []
