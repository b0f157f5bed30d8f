"""A layout file's graphical regions as catalogue rows of one canvas, read beside the ingest's event loop.

Ingest is CPU-bound in one process: fetching, the catalogue's writes and reading layouts all want Python's
lock, and reading a layout is about a quarter of a page's time (bench/README, "Ingest"). Once a run has read
``WARM_UP`` layout files it is long enough to pay for starting a worker process, and the rest are read there,
on another core. Shorter runs, and machines with one core, read them on a thread.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
from concurrent.futures import Executor, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

from .catalogue import RegionRow, region_id_for
from .geometry import flags_for, page_scale, to_canvas
from .records import LayoutError
from .sources.layout import read_layout

log = logging.getLogger(__name__)

# Layout files a run reads on a thread before it starts a worker process (about 0.3 s to start and import).
WARM_UP = 64


@dataclass(frozen=True)
class CanvasPlace:
    """What placing a layout's regions needs of their canvas (a catalogue row cannot go to another process)."""

    manifest_id: str
    canvas_id: str
    canvas_uri: str
    width: int
    height: int
    dpi: float | None  # the run's --dpi, else the manifest's physical scale, else None


def region_rows(data: bytes, ref: str, canvas: CanvasPlace, max_bytes: int) -> list[RegionRow]:
    """The regions of one layout file in canvas coordinates, one row per distinct region id."""
    if len(data) > max_bytes:
        raise LayoutError(f"{len(data)} bytes, over the limit of {max_bytes}")
    page = read_layout(data, source=ref)
    width, height = canvas.width, canvas.height
    if width <= 0 or height <= 0:
        raise LayoutError("the canvas has no size, so layout coordinates cannot be placed on it")
    sx, sy = page_scale(page, width, height, canvas.dpi)
    regions: dict[str, RegionRow] = {}
    for index, region in enumerate(page.regions):
        box = to_canvas(region, sx, sy, width, height)
        if box is None:
            continue
        block = region.block_id or f"#{index}"
        rid = region_id_for(canvas.manifest_id, canvas.canvas_uri, block, box.x, box.y, box.w, box.h)
        regions[rid] = RegionRow(
            id=rid, canvas_id=canvas.canvas_id, manifest_id=canvas.manifest_id, x=box.x, y=box.y, w=box.w,
            h=box.h, source_block_id=block, block_type=region.block_type,
            context_before=region.context_before, context_after=region.context_after,
            caption=region.caption, flags=flags_for(box, width, height),
        )
    return list(regions.values())


def worker_count(cpus: int | None = None) -> int:
    """Worker processes for a long run: one per spare core, at most two (the event loop's own process is the
    bottleneck after that), none on one core."""
    cpus = cpus if cpus is not None else (os.cpu_count() or 1)
    return max(0, min(2, cpus - 1))


class LayoutReader:
    """Reads layout files into region rows: on a thread for the first ``warm_up`` of a run, then in
    ``workers`` worker processes. If a worker dies (a document that crashes or exhausts it), the documents
    it held are read again on a thread and the run goes on without workers."""

    def __init__(self, *, workers: int | None = None, warm_up: int = WARM_UP) -> None:
        self.workers = worker_count() if workers is None else workers
        self.warm_up = warm_up
        self._read = 0
        self.read_in_workers = 0
        self._pool: ProcessPoolExecutor | None = None
        self.broken = False  # a worker died: the rest of the run reads on a thread

    async def read(self, data: bytes, ref: str, canvas: CanvasPlace, max_bytes: int) -> list[RegionRow]:
        self._read += 1
        pool = self._worker_pool()
        if pool is not None:
            try:
                rows = await asyncio.get_running_loop().run_in_executor(
                    pool, region_rows, data, ref, canvas, max_bytes)
            except BrokenProcessPool:
                if not self.broken:
                    log.warning("the layout worker process stopped; reading the rest of this run on a thread")
                self.broken = True
            else:
                self.read_in_workers += 1
                return rows
        return await asyncio.to_thread(region_rows, data, ref, canvas, max_bytes)

    def _worker_pool(self) -> Executor | None:
        if self.broken or self.workers <= 0 or self._read <= self.warm_up:
            return None
        if self._pool is None:
            # forkserver: forking the ingest's own process, which runs threads, is unsafe; spawn where there
            # is no forkserver (Windows).
            method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
            self._pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context(method))
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
