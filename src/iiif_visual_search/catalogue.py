"""The catalogue: one SQLite file, the single source of truth for everything the pipeline knows.

Every writer goes through this module so that ids, the change log and quarantine stay consistent.
SQLite runs in WAL mode: the service reads while a pipeline step writes, and a killed writer leaves the
last committed transaction intact (each manifest is written in one transaction).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .records import CanvasRecord, ManifestRecord
from .sqlite_read_only import connect_read_only

SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);

CREATE TABLE IF NOT EXISTS manifest (
    id TEXT PRIMARY KEY,            -- short stable id used in our URLs
    uri TEXT NOT NULL UNIQUE,       -- the manifest's own IIIF id
    url TEXT NOT NULL,              -- where it was read from
    version INTEGER NOT NULL,
    label TEXT NOT NULL DEFAULT '',
    metadata TEXT NOT NULL DEFAULT '[]',
    rights TEXT NOT NULL DEFAULT '',
    required_statement TEXT NOT NULL DEFAULT '',
    homepage TEXT NOT NULL DEFAULT '',
    raw TEXT,
    content_hash TEXT NOT NULL DEFAULT '',
    fetched_at REAL NOT NULL,
    status TEXT NOT NULL DEFAULT 'ok', -- ok | deleted
    error TEXT NOT NULL DEFAULT ''
);
-- Manifests are found by our id, their IIIF id or the URL they were read from (find_manifest): each indexed,
-- so a lookup costs the same at any number of manifests.
CREATE INDEX IF NOT EXISTS manifest_url ON manifest(url);

CREATE TABLE IF NOT EXISTS collection (
    uri TEXT PRIMARY KEY,
    url TEXT NOT NULL,
    label TEXT NOT NULL DEFAULT '',
    fetched_at REAL NOT NULL
);

CREATE TABLE IF NOT EXISTS collection_member (
    collection_uri TEXT NOT NULL,
    member_url TEXT NOT NULL,
    kind TEXT NOT NULL,              -- manifest | collection
    position INTEGER NOT NULL,
    PRIMARY KEY (collection_uri, member_url)
);

CREATE TABLE IF NOT EXISTS canvas (
    id TEXT PRIMARY KEY,             -- short stable id
    manifest_id TEXT NOT NULL REFERENCES manifest(id),
    uri TEXT NOT NULL,
    position INTEGER NOT NULL,
    label TEXT NOT NULL DEFAULT '',
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    image_url TEXT NOT NULL DEFAULT '',
    image_width INTEGER,
    image_height INTEGER,
    image_service TEXT NOT NULL DEFAULT '',
    image_service_version INTEGER,
    image_service_profile TEXT NOT NULL DEFAULT '',
    image_service_level INTEGER,
    layout_url TEXT NOT NULL DEFAULT '',
    layout_format TEXT NOT NULL DEFAULT '',
    layout_hash TEXT NOT NULL DEFAULT '',   -- sha256 of the layout bytes last read ('' = not read yet)
    layout_status TEXT NOT NULL DEFAULT '', -- '' (not read) | ok | quarantined | none
    physical_scale REAL,
    UNIQUE (manifest_id, uri)
);
CREATE INDEX IF NOT EXISTS canvas_manifest ON canvas(manifest_id, position);
CREATE INDEX IF NOT EXISTS canvas_uri ON canvas(uri);  -- find-similar names a canvas by its IIIF id

CREATE TABLE IF NOT EXISTS region (
    id TEXT PRIMARY KEY,
    canvas_id TEXT NOT NULL REFERENCES canvas(id),
    manifest_id TEXT NOT NULL REFERENCES manifest(id),
    x INTEGER NOT NULL, y INTEGER NOT NULL, w INTEGER NOT NULL, h INTEGER NOT NULL,
    source_block_id TEXT NOT NULL DEFAULT '',
    block_type TEXT NOT NULL DEFAULT '',
    context_before TEXT NOT NULL DEFAULT '',
    context_after TEXT NOT NULL DEFAULT '',
    caption TEXT NOT NULL DEFAULT '',
    flags TEXT NOT NULL DEFAULT '',          -- comma-separated, sorted
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    deleted INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS region_canvas ON region(canvas_id);
CREATE INDEX IF NOT EXISTS region_manifest ON region(manifest_id);

CREATE TABLE IF NOT EXISTS region_image (
    region_id TEXT PRIMARY KEY REFERENCES region(id),
    path TEXT NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    source_url TEXT NOT NULL DEFAULT '',
    fetched_at REAL NOT NULL
);

CREATE TABLE IF NOT EXISTS embedding (
    region_id TEXT NOT NULL,
    model TEXT NOT NULL,
    row INTEGER NOT NULL,
    image_sha256 TEXT NOT NULL DEFAULT '',  -- the region image the vector was made from ('' = not recorded)
    PRIMARY KEY (region_id, model)
);
CREATE INDEX IF NOT EXISTS embedding_row ON embedding(model, row);

CREATE TABLE IF NOT EXISTS label (
    region_id TEXT NOT NULL,
    label TEXT NOT NULL,
    source TEXT NOT NULL,            -- manual | model
    model_version TEXT NOT NULL DEFAULT '',
    probability REAL,
    PRIMARY KEY (region_id, source)
);

CREATE TABLE IF NOT EXISTS quarantine (
    kind TEXT NOT NULL,              -- manifest | collection | layout | image | ...
    ref TEXT NOT NULL,               -- url or id of what failed
    reason TEXT NOT NULL,
    manifest_id TEXT NOT NULL DEFAULT '',
    at REAL NOT NULL,
    PRIMARY KEY (kind, ref)
);

CREATE TABLE IF NOT EXISTS change (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,              -- create | update | delete
    object_type TEXT NOT NULL,       -- manifest | region | cluster (object_id: <map key>/<cluster id>)
    object_id TEXT NOT NULL,
    at REAL NOT NULL
);
"""


def short_id(*parts: str, prefix: str = "", length: int = 16) -> str:
    """A stable id from the parts: the same inputs give the same id on every machine and every run."""
    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()
    return prefix + digest[:length]


def manifest_id_for(uri: str) -> str:
    return short_id(uri, prefix="m", length=12)


def canvas_id_for(manifest_id: str, canvas_uri: str) -> str:
    return short_id(manifest_id, canvas_uri, prefix="c", length=14)


def region_id_for(manifest_id: str, canvas_uri: str, block_id: str, x: int, y: int, w: int, h: int) -> str:
    # The manifest takes part because a canvas URI is not always unique across manifests in practice
    # (templated or copied manifests reuse them).
    return short_id(manifest_id, canvas_uri, block_id, f"{x},{y},{w},{h}", prefix="r", length=16)


@dataclass
class RegionRow:
    """A region as the pipeline and the service see it: canvas coordinates, never layout units."""

    id: str
    canvas_id: str
    manifest_id: str
    x: int
    y: int
    w: int
    h: int
    source_block_id: str = ""
    block_type: str = ""
    context_before: str = ""
    context_after: str = ""
    caption: str = ""
    flags: tuple[str, ...] = ()

    def content_key(self) -> tuple[Any, ...]:
        return (self.x, self.y, self.w, self.h, self.source_block_id, self.block_type,
                self.context_before, self.context_after, self.caption, ",".join(self.flags))


@dataclass
class CanvasRegions:
    """What a canvas's layout file gave: its regions, the file's hash and where it was read from."""

    canvas_id: str
    regions: list[RegionRow]
    layout_hash: str
    read_from: str = ""


_REGION_UPSERT = """INSERT INTO region(id, canvas_id, manifest_id, x, y, w, h, source_block_id, block_type,
    context_before, context_after, caption, flags, created_at, updated_at, deleted) VALUES {rows}
    ON CONFLICT(id) DO UPDATE SET x=excluded.x, y=excluded.y, w=excluded.w, h=excluded.h,
        source_block_id=excluded.source_block_id, block_type=excluded.block_type,
        context_before=excluded.context_before, context_after=excluded.context_after,
        caption=excluded.caption, flags=excluded.flags, updated_at=excluded.updated_at, deleted=0"""

# Rows a multi-row INSERT carries: SQLite binds at most 32,766 values (3.32 and later).
_ROWS_PER_INSERT = 1000


def _insert_rows(conn: sqlite3.Connection, sql: str, rows: list[tuple[Any, ...]]) -> None:
    """Insert rows with one statement per thousand rather than one each. The sqlite3 module lets go of
    Python's lock around every statement, and during ingest the document threads take it each time: a page's
    six regions and their change rows were 12 of its 21 statements (bench/README, "Ingest").
    ``sql`` holds ``{rows}`` where the VALUES tuples go."""
    for start in range(0, len(rows), _ROWS_PER_INSERT):
        chunk = rows[start:start + _ROWS_PER_INSERT]
        one = "(" + ",".join("?" * len(chunk[0])) + ")"
        conn.execute(sql.format(rows=",".join([one] * len(chunk))), [v for row in chunk for v in row])


class Catalogue:
    """A connection to the catalogue file. Safe to share between threads: writes are serialised."""

    def __init__(self, path: Path | str, *, read_only: bool = False) -> None:
        self.path = Path(path)
        self.read_only = read_only
        self._lock = threading.RLock()
        if read_only:  # a published catalogue on a read-only disk, served by replicas
            if not self.path.is_file():
                raise sqlite3.OperationalError(f"no catalogue at {self.path}")
            self.conn = connect_read_only(self.path)
            self.conn.row_factory = sqlite3.Row
            self._check_version()
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        self.conn.row_factory = sqlite3.Row
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute("PRAGMA foreign_keys=ON")
        self.conn.executescript(SCHEMA)
        self._migrate()

    def _migrate(self) -> None:
        columns = {r[1] for r in self.conn.execute("PRAGMA table_info(embedding)")}
        if "image_sha256" not in columns:  # catalogues written before vectors recorded their image
            self.conn.execute("ALTER TABLE embedding ADD COLUMN image_sha256 TEXT NOT NULL DEFAULT ''")
        self._migrate_region_seq()
        if self._check_version() is None:
            self.conn.execute("INSERT INTO meta(key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))

    def _check_version(self) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        if row is not None and int(row[0]) > SCHEMA_VERSION:
            raise RuntimeError(
                f"{self.path} was written by a newer iiif-visual-search (schema {row[0]}, this one knows "
                f"{SCHEMA_VERSION}); upgrade the package or use another --data-dir"
            )
        return None if row is None else str(row[0])

    def _migrate_region_seq(self) -> None:
        """``region.seq``: creation order, the harvest's page key (keyset pages stay put when rows are deleted).

        Rowids would do until a VACUUM renumbers them (the table has a TEXT primary key), so the order gets a
        column of its own. Existing catalogues number their regions in rowid order, which is insertion order.
        A trigger numbers every new row, whichever statement inserts it; an upsert that revives a deleted
        region keeps its number.
        """
        done = self.conn.execute(
            "SELECT COUNT(*) FROM sqlite_master WHERE name IN ('region_seq', 'region_number')").fetchone()[0] == 2
        if done:  # the usual case: no write lock taken just to open the catalogue
            return
        with self.transaction() as conn:
            if "seq" not in {r[1] for r in conn.execute("PRAGMA table_info(region)")}:
                conn.execute("ALTER TABLE region ADD COLUMN seq INTEGER")
                conn.execute("UPDATE region SET seq = rowid")
            conn.execute("CREATE UNIQUE INDEX IF NOT EXISTS region_seq ON region(seq)")
            conn.execute(
                """CREATE TRIGGER IF NOT EXISTS region_number AFTER INSERT ON region WHEN NEW.seq IS NULL
                   BEGIN UPDATE region SET seq = (SELECT COALESCE(MAX(seq), 0) + 1 FROM region)
                   WHERE rowid = NEW.rowid; END""")

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Catalogue:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            else:
                self.conn.execute("COMMIT")

    def query(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self.conn.execute(sql, tuple(params)).fetchall()

    def query_one(self, sql: str, params: Iterable[Any] = ()) -> sqlite3.Row | None:
        with self._lock:
            return self.conn.execute(sql, tuple(params)).fetchone()

    # --- change log and quarantine -------------------------------------------------------------

    @staticmethod
    def _log_change(conn: sqlite3.Connection, kind: str, object_type: str, object_id: str) -> None:
        conn.execute(
            "INSERT INTO change(kind, object_type, object_id, at) VALUES (?, ?, ?, ?)",
            (kind, object_type, object_id, time.time()),
        )

    def log_changes(self, object_type: str, changes: Iterable[tuple[str, str]]) -> int:
        """Record (kind, object id) changes of things kept outside the catalogue (a map's clusters), so that
        Change Discovery announces them with the rest."""
        items = list(changes)
        with self.transaction() as conn:
            for kind, object_id in items:
                self._log_change(conn, kind, object_type, object_id)
        return len(items)

    def quarantine(self, kind: str, ref: str, reason: str, manifest_id: str = "") -> None:
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO quarantine(kind, ref, reason, manifest_id, at) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT(kind, ref) DO UPDATE SET reason=excluded.reason, at=excluded.at, "
                "manifest_id=excluded.manifest_id",
                (kind, ref, reason, manifest_id, time.time()),
            )

    def clear_quarantine(self, kind: str, ref: str) -> None:
        with self.transaction() as conn:
            conn.execute("DELETE FROM quarantine WHERE kind=? AND ref=?", (kind, ref))

    def clear_layout_quarantine(self, manifest_id: str, keep: list[str]) -> None:
        """Drop a manifest's layout quarantine entries, except those of ``keep`` (the ones failing now)."""
        with self.transaction() as conn:
            conn.execute(f"DELETE FROM quarantine WHERE kind='layout' AND manifest_id=? "
                         f"AND ref NOT IN ({','.join('?' * len(keep))})", (manifest_id, *keep))

    # --- manifests and canvases ----------------------------------------------------------------

    def upsert_manifest(self, record: ManifestRecord, content_hash: str) -> tuple[str, bool]:
        """Store a manifest and its canvases. Returns (manifest id, whether anything changed)."""
        mid = manifest_id_for(record.id)
        now = time.time()
        with self.transaction() as conn:
            old = conn.execute("SELECT content_hash, status FROM manifest WHERE id=?", (mid,)).fetchone()
            if old is not None and old["content_hash"] == content_hash and old["status"] == "ok":
                return mid, False
            conn.execute(
                """INSERT INTO manifest(id, uri, url, version, label, metadata, rights, required_statement,
                       homepage, raw, content_hash, fetched_at, status, error)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'ok', '')
                   ON CONFLICT(id) DO UPDATE SET url=excluded.url, version=excluded.version,
                       label=excluded.label, metadata=excluded.metadata, rights=excluded.rights,
                       required_statement=excluded.required_statement, homepage=excluded.homepage,
                       raw=excluded.raw, content_hash=excluded.content_hash, fetched_at=excluded.fetched_at,
                       status='ok', error=''""",
                (mid, record.id, record.url, record.version, record.label, json.dumps(record.metadata),
                 record.rights, record.required_statement, record.homepage,
                 json.dumps(record.raw) if record.raw is not None else None, content_hash, now),
            )
            seen: set[str] = set()
            for canvas in record.canvases:
                cid = canvas_id_for(mid, canvas.id)
                seen.add(cid)
                self._upsert_canvas(conn, mid, cid, canvas)
            # Canvases the manifest no longer has lose their regions (marked deleted, not erased) and their
            # layout link, or the ingest that follows would read that layout again and bring the regions back.
            for row in conn.execute("SELECT id FROM canvas WHERE manifest_id=?", (mid,)).fetchall():
                if row["id"] not in seen:
                    self._delete_canvas_regions(conn, row["id"])
                    # Position -1: no longer a page of the book, so no position-based lookup finds it.
                    conn.execute("UPDATE canvas SET layout_status='none', layout_hash='', layout_url='', position=-1 "
                                 "WHERE id=?", (row["id"],))
            self._log_change(conn, "update" if old is not None else "create", "manifest", mid)
        return mid, True

    @staticmethod
    def _upsert_canvas(conn: sqlite3.Connection, mid: str, cid: str, canvas: CanvasRecord) -> None:
        svc = canvas.image_service
        layout_url = canvas.layout.url if canvas.layout else ""
        layout_format = canvas.layout.format if canvas.layout else ""
        old = conn.execute("SELECT layout_url, width, height FROM canvas WHERE id=?", (cid,)).fetchone()
        # A new layout link or canvas size invalidates the regions read before.
        stale = old is not None and (
            old["layout_url"] != layout_url or old["width"] != canvas.width or old["height"] != canvas.height
        )
        conn.execute(
            """INSERT INTO canvas(id, manifest_id, uri, position, label, width, height, image_url, image_width,
                   image_height, image_service, image_service_version, image_service_profile,
                   image_service_level, layout_url, layout_format, physical_scale)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
               ON CONFLICT(id) DO UPDATE SET position=excluded.position, label=excluded.label,
                   width=excluded.width, height=excluded.height, image_url=excluded.image_url,
                   image_width=excluded.image_width, image_height=excluded.image_height,
                   image_service=excluded.image_service, image_service_version=excluded.image_service_version,
                   image_service_profile=excluded.image_service_profile,
                   image_service_level=excluded.image_service_level, layout_url=excluded.layout_url,
                   layout_format=excluded.layout_format, physical_scale=excluded.physical_scale""",
            (cid, mid, canvas.id, canvas.position, canvas.label, canvas.width, canvas.height, canvas.image_url,
             canvas.image_width, canvas.image_height, svc.id if svc else "", svc.version if svc else None,
             svc.profile if svc else "", svc.level if svc else None, layout_url, layout_format,
             canvas.physical_scale_inches),
        )
        if stale:
            conn.execute("UPDATE canvas SET layout_hash='', layout_status='' WHERE id=?", (cid,))

    def set_layout_override(self, canvas_id: str, url: str, fmt: str) -> None:
        with self.transaction() as conn:
            old = conn.execute("SELECT layout_url FROM canvas WHERE id=?", (canvas_id,)).fetchone()
            if old is not None and old["layout_url"] != url:
                conn.execute(
                    "UPDATE canvas SET layout_url=?, layout_format=?, layout_hash='', layout_status='' WHERE id=?",
                    (url, fmt, canvas_id),
                )

    def canvases(self, manifest_id: str) -> list[sqlite3.Row]:
        return self.query("SELECT * FROM canvas WHERE manifest_id=? AND position >= 0 ORDER BY position",
                          (manifest_id,))

    def manifests(self, include_deleted: bool = False) -> list[sqlite3.Row]:
        where = "" if include_deleted else "WHERE status='ok'"
        return self.query(f"SELECT id, uri, url, version, label, status, fetched_at FROM manifest {where} ORDER BY uri")

    def find_manifest(self, ref: str) -> sqlite3.Row | None:
        """A manifest by our short id, its IIIF id, or the URL it was read from."""
        return self.query_one("SELECT * FROM manifest WHERE id=? OR uri=? OR url=?", (ref, ref, ref))

    def mark_manifest_deleted(self, manifest_id: str, reason: str) -> int:
        """Mark a manifest deleted with all its regions; returns how many regions that deleted."""
        deleted = 0
        with self.transaction() as conn:
            conn.execute("UPDATE manifest SET status='deleted', error=? WHERE id=?", (reason, manifest_id))
            for row in conn.execute("SELECT id FROM canvas WHERE manifest_id=?", (manifest_id,)).fetchall():
                deleted += self._delete_canvas_regions(conn, row["id"])
            # Forget what was read so that the manifest coming back restores its regions.
            conn.execute("UPDATE canvas SET layout_hash='', layout_status='' WHERE manifest_id=?", (manifest_id,))
            self._log_change(conn, "delete", "manifest", manifest_id)
        return deleted

    # --- collections ---------------------------------------------------------------------------

    def upsert_collection(self, uri: str, url: str, label: str, members: list[tuple[str, str]]) -> list[str]:
        """Store a collection and its members. Returns the member URLs that left it since the last read."""
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO collection(uri, url, label, fetched_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(uri) DO UPDATE SET url=excluded.url, label=excluded.label, fetched_at=excluded.fetched_at",
                (uri, url, label, time.time()),
            )
            before = {r["member_url"] for r in conn.execute(
                "SELECT member_url FROM collection_member WHERE collection_uri=?", (uri,))}
            conn.execute("DELETE FROM collection_member WHERE collection_uri=?", (uri,))
            for position, (member_url, kind) in enumerate(members):
                conn.execute(
                    "INSERT OR IGNORE INTO collection_member(collection_uri, member_url, kind, position) "
                    "VALUES (?, ?, ?, ?)",
                    (uri, member_url, kind, position),
                )
        return sorted(before - {m for m, _ in members})

    def collection_members(self, uri: str) -> list[sqlite3.Row]:
        return self.query(
            "SELECT member_url, kind FROM collection_member WHERE collection_uri=? ORDER BY position", (uri,))

    # --- regions -------------------------------------------------------------------------------

    def replace_canvas_regions(self, canvas_id: str, regions: list[RegionRow], layout_hash: str, *,
                               read_from: str = "") -> dict[str, int]:
        """Make the canvas hold exactly these regions; logs creates, updates and deletes. One transaction,
        which also clears the quarantine entry of the layout file ``read_from``, read fine now."""
        return self.replace_regions([CanvasRegions(canvas_id, regions, layout_hash, read_from)])[0]

    def replace_regions(self, canvases: Sequence[CanvasRegions]) -> list[dict[str, int]]:
        """``replace_canvas_regions`` for several canvases in one transaction (their counts, in order).

        Ingest writes a few dozen canvases at a time: a commit writes every page it changed to the WAL, and a
        commit a canvas took 0.5-0.8 ms (more in a larger catalogue) of the ~4 ms a page costs."""
        now = time.time()
        written: list[tuple[Any, ...]] = []
        changes: list[tuple[Any, ...]] = []
        all_counts = []
        with self.transaction() as conn:
            for canvas in canvases:
                all_counts.append(self._replace_in(conn, canvas, now, written, changes))
            _insert_rows(conn, _REGION_UPSERT, written)
            _insert_rows(conn, "INSERT INTO change(kind, object_type, object_id, at) VALUES {rows}", changes)
        return all_counts

    @staticmethod
    def _replace_in(conn: sqlite3.Connection, canvas: CanvasRegions, now: float, written: list[tuple[Any, ...]],
                    changes: list[tuple[Any, ...]]) -> dict[str, int]:
        """One canvas's part of ``replace_regions``: deletes and the canvas row now, its region rows and change
        rows added to ``written`` and ``changes`` for the caller's multi-row inserts."""
        counts = {"created": 0, "updated": 0, "deleted": 0, "unchanged": 0}
        existing = {
            r["id"]: r for r in conn.execute("SELECT * FROM region WHERE canvas_id=?", (canvas.canvas_id,)).fetchall()
        }
        for region in canvas.regions:
            old = existing.pop(region.id, None)
            flags = ",".join(sorted(region.flags))
            values = (region.x, region.y, region.w, region.h, region.source_block_id, region.block_type,
                      region.context_before, region.context_after, region.caption, flags)
            if old is not None and not old["deleted"] and tuple(
                old[k] for k in ("x", "y", "w", "h", "source_block_id", "block_type", "context_before",
                                 "context_after", "caption", "flags")
            ) == values:
                counts["unchanged"] += 1
                continue
            written.append((region.id, canvas.canvas_id, region.manifest_id, *values, now, now, 0))
            kind = "create" if old is None or old["deleted"] else "update"
            counts["created" if kind == "create" else "updated"] += 1
            changes.append((kind, "region", region.id, now))
        for rid, old in existing.items():
            if not old["deleted"]:
                conn.execute("UPDATE region SET deleted=1, updated_at=? WHERE id=?", (now, rid))
                changes.append(("delete", "region", rid, now))
                counts["deleted"] += 1
        conn.execute("UPDATE canvas SET layout_hash=?, layout_status='ok' WHERE id=?",
                     (canvas.layout_hash, canvas.canvas_id))
        if canvas.read_from:
            conn.execute("DELETE FROM quarantine WHERE kind='layout' AND ref=?", (canvas.read_from,))
        return counts

    def set_layout_status(self, canvas_id: str, status: str, layout_hash: str = "") -> None:
        with self.transaction() as conn:
            conn.execute("UPDATE canvas SET layout_status=?, layout_hash=? WHERE id=?", (status, layout_hash, canvas_id))

    def _delete_canvas_regions(self, conn: sqlite3.Connection, canvas_id: str) -> int:
        now = time.time()
        rows = conn.execute("SELECT id FROM region WHERE canvas_id=? AND deleted=0", (canvas_id,)).fetchall()
        for row in rows:
            conn.execute("UPDATE region SET deleted=1, updated_at=? WHERE id=?", (now, row["id"]))
            self._log_change(conn, "delete", "region", row["id"])
        return len(rows)

    def regions(self, manifest_id: str | None = None, include_deleted: bool = False) -> list[sqlite3.Row]:
        """Regions joined with their canvas and manifest, in book order."""
        where = ["1=1"]
        params: list[Any] = []
        if manifest_id:
            where.append("r.manifest_id=?")
            params.append(manifest_id)
        if not include_deleted:
            where.append("r.deleted=0")
        return self.query(
            f"""SELECT r.*, c.uri AS canvas_uri, c.position AS canvas_position, c.width AS canvas_width,
                       c.height AS canvas_height, m.uri AS manifest_uri, m.label AS manifest_label,
                       ri.path AS image_path
                FROM region r JOIN canvas c ON c.id = r.canvas_id JOIN manifest m ON m.id = r.manifest_id
                LEFT JOIN region_image ri ON ri.region_id = r.id
                WHERE {' AND '.join(where)}
                ORDER BY m.uri, c.position, r.y, r.x, r.id""",
            params,
        )

    def region(self, region_id: str) -> sqlite3.Row | None:
        return self.query_one(
            """SELECT r.*, c.uri AS canvas_uri, c.position AS canvas_position, c.width AS canvas_width,
                      c.height AS canvas_height, m.uri AS manifest_uri, m.label AS manifest_label,
                      ri.path AS image_path
               FROM region r JOIN canvas c ON c.id = r.canvas_id JOIN manifest m ON m.id = r.manifest_id
               LEFT JOIN region_image ri ON ri.region_id = r.id WHERE r.id=?""",
            (region_id,),
        )

    # --- labels --------------------------------------------------------------------------------

    def set_labels(self, rows: Iterable[tuple[str, str, float | None]], source: str,
                   model_version: str = "") -> int:
        """Upsert (region id, label, probability) rows for one source (manual | model).

        A region whose label changes is logged as an update: its annotation now says something else, and
        harvesters following Change Discovery must fetch it again.
        """
        if source not in ("manual", "model"):
            raise ValueError(f"label source must be 'manual' or 'model', not {source!r}")
        n = 0
        with self.transaction() as conn:
            for region_id, label, probability in rows:
                old = conn.execute("SELECT label FROM label WHERE region_id=? AND source=?",
                                   (region_id, source)).fetchone()
                conn.execute(
                    "INSERT INTO label(region_id, label, source, model_version, probability) VALUES (?, ?, ?, ?, ?) "
                    "ON CONFLICT(region_id, source) DO UPDATE SET label=excluded.label, "
                    "model_version=excluded.model_version, probability=excluded.probability",
                    (region_id, label, source, model_version, probability),
                )
                if old is None or old["label"] != label:
                    self._log_change(conn, "update", "region", region_id)
                n += 1
        return n

    # --- status --------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        # Grouped scans of canvas and region joined to the manifests in Python: the same counts as a correlated
        # subquery per manifest, in 0.6x the time (one pass over each table instead of an index probe per row).
        canvases = {r["manifest_id"]: (r["canvases"], r["layouts"]) for r in self.query(
            """SELECT manifest_id, SUM(position >= 0) AS canvases,  -- -1: gone from the manifest
                      SUM(layout_status = 'ok') AS layouts
               FROM canvas GROUP BY manifest_id""")}
        regions = {r["manifest_id"]: (r["regions"], r["images"]) for r in self.query(
            """SELECT r.manifest_id, COUNT(*) AS regions, COUNT(ri.region_id) AS images
               FROM region r LEFT JOIN region_image ri ON ri.region_id = r.id
               WHERE r.deleted=0 GROUP BY r.manifest_id""")}
        manifests = []
        for m in self.query("SELECT id, uri, label, status FROM manifest ORDER BY uri"):
            n_canvases, n_layouts = canvases.get(m["id"], (0, 0))
            n_regions, n_images = regions.get(m["id"], (0, 0))
            manifests.append({**dict(m), "canvases": n_canvases, "layouts": n_layouts, "regions": n_regions,
                              "images": n_images})
        # One grouped scan for types and flags: a handful of distinct (type, flag set) pairs, where reading every
        # region's flags into Python took seconds at a million.
        types: dict[str, int] = {}
        by_flag: dict[str, int] = {}
        unflagged = 0
        for r in self.query("SELECT block_type, flags, COUNT(*) AS n FROM region WHERE deleted=0 "
                            "GROUP BY block_type, flags"):
            types[r["block_type"]] = types.get(r["block_type"], 0) + r["n"]
            if not r["flags"]:
                unflagged += r["n"]
            for flag in filter(None, r["flags"].split(",")):
                by_flag[flag] = by_flag.get(flag, 0) + r["n"]
        by_type = dict(sorted(types.items(), key=lambda kv: -kv[1]))
        quarantine = {r["kind"]: r["n"] for r in self.query(
            "SELECT kind, COUNT(*) AS n FROM quarantine GROUP BY kind ORDER BY kind")}
        # Like every other count here, live regions only; and one label per region, the one search uses (a
        # manual label wins over the model's), or a region labelled both ways counts twice.
        embeddings = {r["model"]: r["n"] for r in self.query(
            "SELECT e.model, COUNT(*) AS n FROM embedding e JOIN region r ON r.id = e.region_id "
            "WHERE r.deleted=0 GROUP BY e.model ORDER BY e.model")}
        labels = {r["label"]: r["n"] for r in self.query(
            """SELECT label, COUNT(*) AS n FROM (
                   SELECT COALESCE(MAX(CASE WHEN l.source='manual' THEN l.label END), MAX(l.label)) AS label
                   FROM label l JOIN region r ON r.id = l.region_id WHERE r.deleted=0 GROUP BY l.region_id)
               GROUP BY label ORDER BY n DESC, label""")}
        return {
            "catalogue": str(self.path),
            "manifests": manifests,
            "regions_by_type": by_type,
            "regions_by_flag": by_flag,
            "regions_unflagged": unflagged,
            "quarantine": quarantine,
            "embeddings": embeddings,
            "labels": labels,
        }

    def quarantined(self, kind: str | None = None) -> list[sqlite3.Row]:
        if kind:
            return self.query("SELECT * FROM quarantine WHERE kind=? ORDER BY at", (kind,))
        return self.query("SELECT * FROM quarantine ORDER BY kind, at")
