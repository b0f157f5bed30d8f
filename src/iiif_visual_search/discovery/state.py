"""What ``ivs sync`` remembers per stream, in two tables of the catalogue.

``stream``: one row per followed stream, with its high-water mark: the newest activity time up to which the
stream has been read through without a gap. The next run stops at activities older than that (§3.5.2).

``stream_object``: per stream, the newest activity applied for each object and how that went (present,
removed, failed, ignored). It makes runs idempotent where timestamps alone cannot: activities that share a
second, a run that stopped at a broken page and reads the same pages again, objects to retry.

The tables are created on first use (``CREATE TABLE IF NOT EXISTS``), so catalogues written before ``ivs
sync`` existed gain them the first time it runs; nothing else in the catalogue changes.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

from ..catalogue import Catalogue

TABLES = """
CREATE TABLE IF NOT EXISTS stream (
    url TEXT PRIMARY KEY,                  -- as given to ivs sync
    stream_id TEXT NOT NULL DEFAULT '',    -- the OrderedCollection's own id
    high_water REAL,                       -- read through, without a gap, down to activities of this time
    newest REAL,                           -- the newest activity time read
    last_run REAL,
    pages INTEGER NOT NULL DEFAULT 0,      -- pages read by the last run
    activities INTEGER NOT NULL DEFAULT 0, -- activities read by the last run
    problem TEXT NOT NULL DEFAULT ''       -- why the last run did not read the stream through ('' = it did)
);

CREATE TABLE IF NOT EXISTS stream_object (
    stream_url TEXT NOT NULL,
    object_id TEXT NOT NULL,
    object_type TEXT NOT NULL,
    activity TEXT NOT NULL,                -- type of the newest activity applied
    activity_id TEXT NOT NULL DEFAULT '',
    at REAL,                               -- its time (NULL: it had none)
    state TEXT NOT NULL,                   -- present | removed | failed | ignored
    reason TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (stream_url, object_id)
);
CREATE INDEX IF NOT EXISTS stream_object_state ON stream_object(stream_url, state);
"""

STATES = ("present", "removed", "failed", "ignored")


@dataclass(frozen=True)
class Applied:
    """The newest activity applied for one object of one stream."""

    object_id: str
    object_type: str
    activity: str
    activity_id: str
    at: float | None
    state: str
    reason: str = ""


@dataclass(frozen=True)
class StreamRow:
    url: str
    stream_id: str
    high_water: float | None
    newest: float | None
    last_run: float | None
    pages: int
    activities: int
    problem: str
    counts: dict[str, int]


class StreamState:
    def __init__(self, catalogue: Catalogue, *, create: bool = True) -> None:
        self.catalogue = catalogue
        if create and not self.exists():
            with catalogue.transaction() as conn:
                for statement in filter(str.strip, TABLES.split(";")):
                    conn.execute(statement)

    def exists(self) -> bool:
        row = self.catalogue.query_one(
            "SELECT COUNT(*) FROM sqlite_master WHERE type='table' AND name IN ('stream', 'stream_object')")
        return row is not None and row[0] == 2

    def applied(self, url: str) -> dict[str, Applied]:
        return {r["object_id"]: Applied(r["object_id"], r["object_type"], r["activity"], r["activity_id"],
                                        r["at"], r["state"], r["reason"])
                for r in self.catalogue.query("SELECT * FROM stream_object WHERE stream_url=?", (url,))}

    def high_water(self, url: str) -> float | None:
        row = self.catalogue.query_one("SELECT high_water FROM stream WHERE url=?", (url,))
        return None if row is None else row["high_water"]

    def record(self, url: str, entries: Iterable[Applied]) -> None:
        with self.catalogue.transaction() as conn:
            conn.executemany(
                """INSERT INTO stream_object(stream_url, object_id, object_type, activity, activity_id, at, state,
                       reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                   ON CONFLICT(stream_url, object_id) DO UPDATE SET object_type=excluded.object_type,
                       activity=excluded.activity, activity_id=excluded.activity_id, at=excluded.at,
                       state=excluded.state, reason=excluded.reason""",
                [(url, e.object_id, e.object_type, e.activity, e.activity_id, e.at, e.state, e.reason)
                 for e in entries])

    def finish_run(self, url: str, *, stream_id: str, high_water: float | None, newest: float | None,
                   pages: int, activities: int, problem: str) -> None:
        with self.catalogue.transaction() as conn:
            conn.execute(
                """INSERT INTO stream(url, stream_id, high_water, newest, last_run, pages, activities, problem)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                   ON CONFLICT(url) DO UPDATE SET stream_id=excluded.stream_id, high_water=excluded.high_water,
                       newest=MAX(COALESCE(stream.newest, excluded.newest), COALESCE(excluded.newest, stream.newest)),
                       last_run=excluded.last_run, pages=excluded.pages, activities=excluded.activities,
                       problem=excluded.problem""",
                (url, stream_id, high_water, newest, time.time(), pages, activities, problem))

    def streams(self) -> list[StreamRow]:
        if not self.exists():
            return []
        counts: dict[str, dict[str, int]] = {}
        for r in self.catalogue.query(
                "SELECT stream_url, state, COUNT(*) AS n FROM stream_object GROUP BY stream_url, state"):
            counts.setdefault(r["stream_url"], dict.fromkeys(STATES, 0))[r["state"]] = r["n"]
        return [StreamRow(r["url"], r["stream_id"], r["high_water"], r["newest"], r["last_run"], r["pages"],
                          r["activities"], r["problem"], counts.get(r["url"], dict.fromkeys(STATES, 0)))
                for r in self.catalogue.query("SELECT * FROM stream ORDER BY url")]

    def urls(self) -> list[str]:
        return [s.url for s in self.streams()]
