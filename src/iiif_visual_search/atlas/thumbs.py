"""Atlas textures: every region's thumbnail in a cell of a grid of square JPEG sheets, so that the map page
draws a hundred thousand pictures from a few dozen textures (one draw call each) instead of as many images.

A thumbnail keeps its aspect ratio inside its square cell, centred; the page cuts the bars off with the
aspect ratio stored per region. Cells smaller for larger collections keep the download and the texture
memory near 400 MB at most: 64 px up to 10,000 regions, 32 px up to 150,000, 16 px beyond. A fit hands cells
out in Z-order of the map positions, so that one sheet is one patch of the map (``spatial_cells``); cells are
then kept: a region placed by a later run gets the next free cell and only the last sheet is written again.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

SHEET = 2048              # pixels on a side: a texture size every WebGL implementation accepts
BACKGROUND = (233, 230, 222)  # the page's paper colour, behind regions without an image
QUALITY = 82


def cell_size(n: int) -> int:
    return 64 if n <= 10_000 else 32 if n <= 150_000 else 16


def per_sheet(cell: int) -> int:
    return (SHEET // cell) ** 2


def thumbnail(path: str | None, cell: int) -> tuple[Image.Image | None, float]:
    """The image shrunk to fit ``cell``, and its aspect ratio (w/h); (None, 1.0) when it cannot be read."""
    if not path:
        return None, 1.0
    try:
        with Image.open(path) as image:
            image.draft("RGB", (cell * 2, cell * 2))  # JPEG: decode at a fraction of the size, far faster
            aspect = image.width / max(1, image.height)
            image = image.convert("RGB")
            image.thumbnail((cell, cell), Image.Resampling.LANCZOS)
            return image, aspect
    except (OSError, ValueError, Image.DecompressionBombError):
        return None, 1.0


def write_sheets(folder: Path, paths: Sequence[str | None], cells: np.ndarray, cell: int,
                 previous: Path | None = None, workers: int = 4) -> np.ndarray:
    """Draw ``paths[i]`` into cell ``cells[i]`` of the sheets in ``folder``; returns each one's aspect ratio.

    Sheets touched are started from the same sheet in ``previous`` (the last version of the map) when it has
    one, so cells drawn by an earlier run are kept; untouched sheets are not written here at all."""
    folder.mkdir(parents=True, exist_ok=True)
    grid = SHEET // cell
    count = per_sheet(cell)
    aspects = np.ones(len(paths), dtype=np.float32)
    by_sheet: dict[int, list[int]] = {}
    for i, c in enumerate(cells.tolist()):
        by_sheet.setdefault(int(c) // count, []).append(i)
    with ThreadPoolExecutor(max_workers=workers) as pool:  # PIL decodes with the GIL released
        for sheet_no, members in sorted(by_sheet.items()):
            old = previous / f"{sheet_no}.jpg" if previous is not None else None
            if old is not None and old.is_file():
                with Image.open(old) as img:
                    sheet = img.convert("RGB")
            else:
                sheet = Image.new("RGB", (SHEET, SHEET), BACKGROUND)
            for i, (thumb, aspect) in zip(members, pool.map(lambda j: thumbnail(paths[j], cell), members)):
                aspects[i] = aspect
                slot = int(cells[i]) % count
                left, top = (slot % grid) * cell, (slot // grid) * cell
                sheet.paste(Image.new("RGB", (cell, cell), BACKGROUND), (left, top))
                if thumb is not None:
                    sheet.paste(thumb, (left + (cell - thumb.width) // 2, top + (cell - thumb.height) // 2))
            buf = io.BytesIO()
            sheet.save(buf, "JPEG", quality=QUALITY, optimize=True)
            (folder / f"{sheet_no}.jpg").write_bytes(buf.getvalue())
    return aspects


def spatial_cells(xy: np.ndarray) -> np.ndarray:
    """Cells in Z-order of the regions' positions: each sheet then holds one compact patch of the map, so the
    page skips every sheet outside the view (a sheet is one draw call)."""
    if len(xy) == 0:
        return np.zeros(0, dtype=np.int32)
    q = np.clip((np.asarray(xy, dtype=np.float64) * 65535).round(), 0, 65535).astype(np.uint64)

    def spread(v: np.ndarray) -> np.ndarray:  # 16 bits to every other bit of 32
        v = (v | (v << np.uint64(8))) & np.uint64(0x00FF00FF)
        v = (v | (v << np.uint64(4))) & np.uint64(0x0F0F0F0F)
        v = (v | (v << np.uint64(2))) & np.uint64(0x33333333)
        return (v | (v << np.uint64(1))) & np.uint64(0x55555555)

    order = np.argsort(spread(q[:, 0]) | (spread(q[:, 1]) << np.uint64(1)), kind="stable")
    cells = np.empty(len(xy), dtype=np.int32)
    cells[order] = np.arange(len(xy), dtype=np.int32)
    return cells


def sheet_count(cells: np.ndarray, cell: int) -> int:
    return int(cells.max()) // per_sheet(cell) + 1 if len(cells) else 0
