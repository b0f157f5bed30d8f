"""Layout-reading throughput: our ``read_layout`` against a bare ``lxml.etree.parse`` of the same bytes.

Usage: ``python bench/ingest.py [FOLDER] [--rounds N]`` (default folder: ../shared/data next to the repo).

Every ALTO/PAGE file under the folder is read into memory once; then N rounds run, each timing the bare
parse and our reader on every file, alternating which goes first, so that both see the same caches and
machine load. Prints pages/s of each, and the ratio ours/bare (target: at most 1.5).
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from pathlib import Path

from lxml import etree

from iiif_visual_search.records import LayoutError
from iiif_visual_search.sources.layout import read_layout

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def layout_files(folder: Path) -> list[tuple[str, bytes]]:
    """(name, bytes) of every file that our reader accepts as ALTO or PAGE."""
    found: list[tuple[str, bytes]] = []
    for path in sorted(folder.rglob("*")):
        if not path.is_file() or path.suffix.lower() != ".xml":
            continue
        data = path.read_bytes()
        try:
            read_layout(data)
        except LayoutError:
            continue  # not a layout file (METS, XSD, GallicaPix output) or a refused one
        try:
            bare(data)
        except etree.XMLSyntaxError as exc:
            # No bare baseline to compare with (e.g. whitespace before the XML declaration).
            print(f"skipped, bare lxml cannot parse it: {path.relative_to(folder)} ({exc})")
            continue
        found.append((str(path.relative_to(folder)), data))
    return found


def bare(data: bytes) -> None:
    etree.parse(io.BytesIO(data))


def ours(data: bytes) -> None:
    read_layout(data)


def time_all(func, files: list[tuple[str, bytes]]) -> float:
    start = time.perf_counter()
    for _, data in files:
        func(data)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args(argv)
    if not args.folder.is_dir():
        print(f"no data folder at {args.folder}", file=sys.stderr)
        return 2
    files = layout_files(args.folder)
    if not files:
        print(f"no ALTO/PAGE files under {args.folder}", file=sys.stderr)
        return 2
    size = sum(len(d) for _, d in files)
    print(f"{len(files)} layout files, {size / 1e6:.1f} MB, {args.rounds} rounds")

    time_all(bare, files)  # warm-up: imports, allocator, page cache
    time_all(ours, files)
    bare_times: list[float] = []
    our_times: list[float] = []
    for i in range(args.rounds):
        if i % 2:
            our_times.append(time_all(ours, files))
            bare_times.append(time_all(bare, files))
        else:
            bare_times.append(time_all(bare, files))
            our_times.append(time_all(ours, files))

    b = statistics.median(bare_times)
    o = statistics.median(our_times)
    print(f"bare lxml.etree.parse : {len(files) / b:8.1f} pages/s  ({b * 1000:.1f} ms per round, median)")
    print(f"read_layout           : {len(files) / o:8.1f} pages/s  ({o * 1000:.1f} ms per round, median)")
    print(f"ratio ours/bare       : {o / b:.2f}  (target <= 1.5)")

    # The slowest files relative to their bare parse show where the reader spends its time.
    rows = []
    for name, data in files:
        tb = min(time_all(bare, [(name, data)]) for _ in range(3))
        to = min(time_all(ours, [(name, data)]) for _ in range(3))
        rows.append((to / tb if tb else 0.0, name, tb, to))
    rows.sort(reverse=True)
    print("worst files (ours/bare, bare ms, ours ms):")
    for ratio, name, tb, to in rows[:5]:
        print(f"  {ratio:5.2f}  {tb * 1000:7.2f}  {to * 1000:7.2f}  {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
