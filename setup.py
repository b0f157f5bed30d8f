"""One packaging step beyond pyproject.toml: the built viewer (Mirador + the find-similar plugin, one script)
and the map page's script (``map-page/``, built the same way) ship inside the package, so that ``pip install`` +
``ivs serve`` gives a working ``/viewer`` and ``/map`` without npm.

The bundle is built from ``viewer-plugin/`` with npm when it is missing, copied into the sdist's package
folder (``web/static/``) and from there into the wheel; ``web/viewer.py`` finds it there. A build without npm
and without a built bundle still succeeds, with a warning, and ``/viewer`` then says how to build it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist

ROOT = Path(__file__).resolve().parent
BUNDLE = "mirador-find-similar.viewer.js"
STATIC = Path("iiif_visual_search") / "web" / "static"
PLUGIN = ROOT / "viewer-plugin"


def built_bundle(name: str, folder: Path, page: str) -> Path | None:
    """A built script: in the package folder (an unpacked sdist), else built with npm from ``folder``."""
    packaged = ROOT / "src" / STATIC / name
    if packaged.is_file():
        return packaged
    built = folder / "dist" / name
    if not built.is_file() and (folder / "package.json").is_file() and shutil.which("npm") \
            and os.environ.get("IVS_SKIP_VIEWER_BUILD") != "1":
        print(f"building {name} (npm run build in {folder.name}/)", file=sys.stderr)
        if not (folder / "node_modules").is_dir():
            subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=folder, check=True)
        subprocess.run(["npm", "run", "build"], cwd=folder, check=True)
    if built.is_file():
        return built
    print(f"warning: no {name} (npm not found?): {page} will ask for it to be built", file=sys.stderr)
    return None


MAP_BUNDLE = "ivs-map.js"
MAP_PAGE = ROOT / "map-page"


def bundles() -> list[tuple[str, Path]]:
    found = ((BUNDLE, built_bundle(BUNDLE, PLUGIN, "/viewer")),
             (MAP_BUNDLE, built_bundle(MAP_BUNDLE, MAP_PAGE, "/map")))
    return [(name, path) for name, path in found if path is not None]


class BuildPyWithViewer(build_py):
    def run(self) -> None:
        super().run()
        found = bundles()
        if getattr(self, "editable_mode", False):
            return  # an editable install finds viewer-plugin/dist/ and map-page/dist/ in the checkout itself
        for name, bundle in found:
            target = Path(self.build_lib) / STATIC / name
            if not target.is_file():
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(bundle, target)


class SdistWithViewer(sdist):
    def make_release_tree(self, base_dir: str, files: list[str]) -> None:
        super().make_release_tree(base_dir, files)
        for name, bundle in bundles():
            target = Path(base_dir) / "src" / STATIC / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(bundle, target)


setup(cmdclass={"build_py": BuildPyWithViewer, "sdist": SdistWithViewer})
