"""``ivs demo``, the README's main job: offline it says so, builds the local sample and runs the pipeline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from datapaths import shared


def test_demo_offline_falls_back_to_the_local_sample_and_indexes_it(tmp_path: Path) -> None:
    shared_data = shared()
    # A collection whose manifests live on a host that cannot be reached: what "no network" looks like.
    collection = tmp_path / "collection.json"
    collection.write_text(json.dumps({
        "@context": "http://iiif.io/api/presentation/3/context.json",
        "id": "https://example.org/demo.json", "type": "Collection", "label": {"en": ["demo"]},
        "items": [{"id": "http://127.0.0.1:9/unreachable/manifest.json", "type": "Manifest"}],
    }))
    data = tmp_path / "data"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "IVS_DATA_DIR": str(data)}
    result = subprocess.run(
        [sys.executable, "-c", "from iiif_visual_search.cli import main; main()", "demo", "--no-serve", "-q",
         "--source", str(collection), "--shared-data", str(shared_data)],
        env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "No network: cannot reach 127.0.0.1" in result.stderr
    assert "Using the local sample instead" in result.stderr
    # siglip cannot be loaded here: skipped with a reason that says how to point at a local copy.
    assert "skipping siglip" in result.stderr and "--model /path/to/dir" in result.stderr
    assert "embeddings: fingerprint" in result.stdout
    # The unreachable demo manifests are reported once, above, not left behind as broken documents.
    assert "quarantine: empty" in result.stdout, result.stdout[-1000:]
    assert (data / "vectors" / "fingerprint" / "index.faiss").exists()
    # Every step resumes: a second run has nothing left to do.
    again = subprocess.run(
        [sys.executable, "-c", "from iiif_visual_search.cli import main; main()", "demo", "--no-serve", "-q",
         "--source", str(collection), "--shared-data", str(shared_data)],
        env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "fetched 0 region image(s)" in again.stderr and "0 embedded" in again.stderr
    # The index summary is JSON, as 'ivs index' prints it (it was a Python dict repr).
    line = next(x for x in again.stderr.splitlines() if x.startswith("fingerprint: 0 embedded"))
    assert json.loads(line.split("; index ", 1)[1])["live"] > 0


def test_setup_shows_progress_on_the_first_install(tmp_path: Path) -> None:
    # The demo's first run showed three minutes of pip warnings and nothing else.
    import shutil

    root = Path(__file__).resolve().parents[1]
    (tmp_path / "scripts").mkdir()
    shutil.copy(root / "scripts" / "setup.sh", tmp_path / "scripts" / "setup.sh")
    (tmp_path / "pyproject.toml").write_text("")
    venv_python = tmp_path / ".venv" / "bin" / "python"
    venv_python.parent.mkdir(parents=True)
    venv_python.write_text('#!/bin/sh\necho "pip $*" >> "$(dirname "$0")/calls"\n'
                           '[ "$4" = "--progress-bar" ] && echo "Collecting torch==2.13.0"\nexit 0\n')
    venv_python.chmod(0o755)
    result = subprocess.run(["bash", str(tmp_path / "scripts" / "setup.sh")], capture_output=True, text=True,
                            env={**os.environ, "PYTHON": str(venv_python)}, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "setup: installing iiif-visual-search" in result.stderr and "setup: done" in result.stderr
    assert "Collecting torch" in result.stdout  # pip's own progress, not silenced
    calls = (venv_python.parent / "calls").read_text().splitlines()
    assert any("install --progress-bar on -e ." in c for c in calls), calls
