"""Harvest paging at 120,000 regions: the last ``/annotations`` page by keyset (``region.seq`` range, what the
service does) against the offset scan over live rows it replaced, in the same process on the same catalogue.

    .venv/bin/python bench/harvest.py [--regions 120000] [--size 100]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from iiif_visual_search.catalogue import Catalogue
from iiif_visual_search.web.store import _REGION_SELECT, Store


def best_ms(fn: Callable[[], object], repeat: int = 5) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--regions", type=int, default=120_000)
    parser.add_argument("--size", type=int, default=100)
    args = parser.parse_args()
    n, size = args.regions, args.size
    with tempfile.TemporaryDirectory() as tmp, Catalogue(Path(tmp) / "catalogue.sqlite") as cat:
        with cat.transaction() as conn:
            conn.execute("INSERT INTO manifest(id, uri, url, version, fetched_at, raw) "
                         "VALUES ('m', 'u', 'u', 3, 0, '{\"label\": {\"de\": [\"Buch\"]}}')")
            conn.execute("INSERT INTO canvas(id, manifest_id, uri, position, width, height) "
                         "VALUES ('c', 'm', 'https://example.org/c', 0, 9, 9)")
            conn.executemany("INSERT INTO region(id, canvas_id, manifest_id, x, y, w, h, created_at, updated_at) "
                             "VALUES (?, 'c', 'm', 0, 0, 1, 1, 0, 0)", [(f"r{i:07d}",) for i in range(n)])
        store = Store(cat)
        offset = best_ms(lambda: cat.query(_REGION_SELECT + " WHERE r.deleted=0 ORDER BY r.rowid LIMIT ? OFFSET ?",
                                           (size, n - size))) + best_ms(store.count_regions)
        keyset_last = best_ms(lambda: store.regions_in_seq(n - size, n)) + best_ms(store.last_region_seq)
        keyset_first = best_ms(lambda: store.regions_in_seq(0, size)) + best_ms(store.last_region_seq)
        print(f"{n} regions, pages of {size}")
        print(f"last page, offset over live rows + count: {offset:7.1f} ms")
        print(f"last page, keyset (seq range) + max:      {keyset_last:7.1f} ms   ({offset / keyset_last:.0f}x faster)")
        print(f"first page, keyset:                       {keyset_first:7.1f} ms   (last/first {keyset_last / keyset_first:.2f})")


if __name__ == "__main__":
    main()
