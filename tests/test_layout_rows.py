"""Layout files read into region rows on a thread or, once a run is long enough, in a worker process: the
rows must not depend on where they were read, and a worker that dies must not lose a document."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest

from datapaths import shared
from iiif_visual_search.layout_rows import CanvasPlace, LayoutReader, region_rows, worker_count
from iiif_visual_search.records import LayoutError
from iiif_visual_search.sources.layout import read_layout


def _real_layouts(count: int) -> list[tuple[bytes, CanvasPlace]]:
    """ALTO and PAGE files of ../shared/data that hold regions, each placed on a canvas of its page's size."""
    found = []
    for path in sorted(shared().rglob("*.xml")):
        if path.stat().st_size > 2_000_000:
            continue
        data = path.read_bytes()
        try:
            page = read_layout(data)
        except Exception:  # noqa: BLE001 - METS, schemas and the like are not layout files
            continue
        if page.regions and page.width > 0 and page.height > 0:
            found.append((data, CanvasPlace("m", f"c{len(found)}", f"https://example.org/c{len(found)}",
                                            int(page.width), int(page.height), None)))
            if len(found) == count:
                break
    if len(found) < count:
        pytest.skip(f"only {len(found)} layout files with regions in ../shared/data")
    return found


def _read_all(reader: LayoutReader, layouts: list[tuple[bytes, CanvasPlace]]) -> list[list]:
    async def run() -> list[list]:
        return list(await asyncio.gather(*(reader.read(data, f"doc{i}", place, 10_000_000)
                                           for i, (data, place) in enumerate(layouts))))
    return asyncio.run(run())


def test_a_long_run_reads_layouts_in_a_worker_process_with_the_rows_a_thread_gives() -> None:
    layouts = _real_layouts(12)
    on_thread = [region_rows(data, f"doc{i}", place, 10_000_000) for i, (data, place) in enumerate(layouts)]
    reader = LayoutReader(workers=1, warm_up=4)
    try:
        assert _read_all(reader, layouts) == on_thread
        assert reader.read_in_workers == 8  # all but the warm-up
    finally:
        reader.close()
    assert sum(len(rows) for rows in on_thread) > 12


def test_a_layout_refused_in_the_worker_process_is_refused_with_its_reason() -> None:
    place = CanvasPlace("m", "c", "https://example.org/c", 1000, 1000, None)
    reader = LayoutReader(workers=1, warm_up=0)
    try:
        with pytest.raises(LayoutError, match="over the limit of 10"):
            asyncio.run(reader.read(b"<alto>" + b" " * 100 + b"</alto>", "big.xml", place, 10))
        assert not reader.broken
    finally:
        reader.close()


def test_a_worker_process_that_dies_loses_no_document() -> None:
    layouts = _real_layouts(6)
    expected = [region_rows(data, f"doc{i}", place, 10_000_000) for i, (data, place) in enumerate(layouts)]
    reader = LayoutReader(workers=1, warm_up=0)
    try:
        assert _read_all(reader, layouts[:1]) == expected[:1]
        # The executor's own table of its processes: the only way to reach the worker from outside.
        for pid in list(reader._pool._processes):  # type: ignore[union-attr]
            os.kill(pid, signal.SIGKILL)
        assert _read_all(reader, layouts) == expected
        assert reader.broken
    finally:
        reader.close()


def test_worker_count_leaves_the_event_loop_its_core() -> None:
    assert [worker_count(n) for n in (1, 2, 3, 16)] == [0, 1, 2, 2]


def test_closing_the_reader_stops_its_worker_process() -> None:
    """``LayoutReader.close`` leaves no worker running after a run (CI would collect them as zombies)."""
    layouts = _real_layouts(3)
    reader = LayoutReader(workers=1, warm_up=0)
    _read_all(reader, layouts)
    processes = list(reader._pool._processes.values())  # type: ignore[union-attr]
    reader.close()
    for process in processes:
        process.join(timeout=10)
        assert not process.is_alive()
