"""A real catalogue for the search-page tests, built the way a user builds one: the ``ivs`` command line.

Pages are the Gallicorpora incunabula scans (woodcuts with their ALTO files) from ``../shared/data``, turned
into local IIIF manifests by ``local_sample.write_sample``, then ``ivs ingest``, ``ivs fetch``, ``ivs embed``
(the weight-free fingerprint, and optionally a tiny random-weight CLIP from ``tests/tiny_models.py``) and
``ivs classify import-labels`` for a few labels.
"""

from __future__ import annotations

import csv
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
IVS = [str(Path(sys.executable).with_name("ivs"))]  # the console script of this environment
WOODCUT_BOOK = "bpt6k1521441j"   # Les quatre filz Aymon: a large woodcut above the text


@dataclass
class SampleCatalogue:
    data_dir: Path
    sample_dir: Path
    clip_key: str              # '' when no tiny CLIP was embedded
    woodcut_region: str        # the big woodcut of WOODCUT_BOOK
    woodcut_scan: Path         # its page scan
    woodcut_box: tuple[int, int, int, int]
    labels: dict[str, str]     # region id → the manual label written


def ivs(data_dir: Path, *args: str) -> str:
    done = subprocess.run([*IVS, "--data-dir", str(data_dir), *args], capture_output=True, text=True, cwd=REPO,
                          timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"ivs {' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done.stdout


def build(shared_data: Path, work: Path, *, tiny_clip: bool = False) -> SampleCatalogue:
    from iiif_visual_search.local_sample import shared_books, write_sample

    books = [b for b in shared_books(shared_data) if b.slug.startswith("incunabula-")]
    if not books:
        raise FileNotFoundError(f"no incunabula scans under {shared_data}")
    sample = work / "sample"
    data = work / "data"
    collection = write_sample(shared_data, sample, books)
    ivs(data, "ingest", "-q", str(collection))
    ivs(data, "fetch", "-q")
    ivs(data, "embed", "--model", "fingerprint")
    clip_key = ""
    if tiny_clip:
        sys.path.insert(0, str(REPO / "tests"))
        from tiny_models import build_clip

        from iiif_visual_search.embed.models import model_key

        checkpoint = build_clip(work)
        ivs(data, "embed", "--model", str(checkpoint))
        clip_key = model_key(str(checkpoint))
    conn = sqlite3.connect(data / "catalogue.sqlite")
    conn.row_factory = sqlite3.Row
    rows = conn.execute(
        """SELECT r.id, r.x, r.y, r.w, r.h, m.label FROM region r JOIN manifest m ON m.id = r.manifest_id
           JOIN region_image ri ON ri.region_id = r.id WHERE r.deleted = 0 ORDER BY r.w * r.h DESC""").fetchall()
    conn.close()
    woodcut = next(r for r in rows if WOODCUT_BOOK in r["label"])
    # A few manual labels: the woodcut is an illustration, the smallest fetched region a "blank page"
    # (hidden by default), one more a map.
    other = next(r for r in rows if r["id"] != woodcut["id"])
    labels = {woodcut["id"]: "Illustration or photograph", rows[-1]["id"]: "Blank page", other["id"]: "Map"}
    label_file = work / "labels.csv"
    with label_file.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["region_id", "label"])
        writer.writerows(labels.items())
    ivs(data, "classify", "import-labels", str(label_file))
    scan = next(p.image for b in books for p in b.pages if WOODCUT_BOOK in p.image.name)
    return SampleCatalogue(data, sample, clip_key, woodcut["id"], scan,
                           (woodcut["x"], woodcut["y"], woodcut["w"], woodcut["h"]), labels)
