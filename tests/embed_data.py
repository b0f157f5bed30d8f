"""A data dir of real region crops, catalogued and cached as if fetched: what the embed tests start from."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from iiif_visual_search.catalogue import Catalogue, RegionRow, canvas_id_for, region_id_for
from iiif_visual_search.records import CanvasRecord, ManifestRecord

from real_crops import real_crops


def build_data_dir(root: Path, n: int, copies: int = 1, images: list[Image.Image] | None = None) -> Path:
    """``n`` crops (or ``images``) on ``n`` canvases of one manifest, each cached under ``root/images``;
    ``copies`` regions per canvas share its image (as the content-addressed cache shares a picture that recurs)."""
    crops = [(str(i), im) for i, im in enumerate(images[:n])] if images is not None else real_crops()[:n]
    cat = Catalogue(root / "catalogue.sqlite")
    record = ManifestRecord(id="https://example.org/m1", url="https://example.org/m1", version=3, label="Book",
                            canvases=[CanvasRecord(id=f"https://example.org/c{i}", position=i, width=1000,
                                                   height=1000) for i in range(n)])
    mid, _ = cat.upsert_manifest(record, "h1")
    (root / "images").mkdir(exist_ok=True)
    for i, (_, im) in enumerate(crops):
        cid = canvas_id_for(mid, f"https://example.org/c{i}")
        rows = [RegionRow(region_id_for(mid, f"https://example.org/c{i}", f"b{c + 1}", 10 + c, 20, im.width,
                                        im.height), cid, mid, 10 + c, 20, im.width, im.height, f"b{c + 1}",
                          "Illustration") for c in range(copies)]
        cat.replace_canvas_regions(cid, rows, "x")
        rel = f"images/{rows[0].id}.png"
        im.save(root / rel)
        with cat.transaction() as conn:
            conn.executemany("INSERT INTO region_image(region_id, path, width, height, sha256, fetched_at) "
                             "VALUES (?, ?, ?, ?, '', 0)", [(r.id, rel, im.width, im.height) for r in rows])
    cat.close()
    return root
