"""The wheel that ``python -m build`` makes carries the built viewer, so ``pip install`` gives a working /viewer."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BUNDLE = "mirador-find-similar.viewer.js"
MAP_BUNDLE = "ivs-map.js"  # the /map page's script (map-page/), shipped the same way


def test_the_wheel_contains_the_viewer_bundle(tmp_path: Path) -> None:
    pytest.importorskip("build")
    built = ROOT / "viewer-plugin" / "dist" / BUNDLE
    if not built.is_file() and shutil.which("npm") is None:
        pytest.skip("neither a built viewer bundle nor npm to build one")
    # Build from a copy of the tracked files: what a fresh clone holds, without this checkout's build/.
    source = tmp_path / "src"
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, files):
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    if built.is_file():  # a bundle built here already: reuse it rather than run npm again
        (source / "viewer-plugin" / "dist").mkdir(parents=True, exist_ok=True)
        shutil.copy2(built, source / "viewer-plugin" / "dist" / BUNDLE)
    else:
        (source / "viewer-plugin" / "node_modules").symlink_to(ROOT / "viewer-plugin" / "node_modules") \
            if (ROOT / "viewer-plugin" / "node_modules").is_dir() else None
    map_built = ROOT / "map-page" / "dist" / MAP_BUNDLE
    if map_built.is_file():
        (source / "map-page" / "dist").mkdir(parents=True, exist_ok=True)
        shutil.copy2(map_built, source / "map-page" / "dist" / MAP_BUNDLE)
    result = subprocess.run([sys.executable, "-m", "build", "--outdir", str(tmp_path / "dist"), str(source)],
                            capture_output=True, text=True, timeout=900, env={**os.environ, "PIP_NO_INPUT": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    wheel = next((tmp_path / "dist").glob("*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        inside = f"iiif_visual_search/web/static/{BUNDLE}"
        assert inside in names, [n for n in names if "static" in n]
        assert archive.getinfo(inside).file_size > 100_000
        assert archive.read(inside)[:2000].decode("utf-8", "replace").strip()
        if map_built.is_file() or shutil.which("npm"):
            assert f"iiif_visual_search/web/static/{MAP_BUNDLE}" in names
