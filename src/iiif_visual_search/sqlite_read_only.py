"""Opening a published SQLite file (catalogue, text index) for reading only: never created, never written."""

from __future__ import annotations

import sqlite3
from pathlib import Path


def connect_read_only(path: Path, probe: str = "SELECT COUNT(*) FROM meta") -> sqlite3.Connection:
    """``path`` opened ``mode=ro``, or ``immutable`` where that fails.

    A WAL database needs its ``-shm`` file: in a read-only folder without one, SQLite cannot open it read-only,
    and the file is opened ``immutable`` instead, which is right for a published copy that no process writes
    (it is published with every writer closed, so its WAL is checkpointed into the file). ``probe`` is a query
    that must succeed on the file (both of ours have a ``meta`` table)."""
    if not path.is_file():
        raise sqlite3.OperationalError(f"no database at {path}")
    uri = path.resolve().as_uri()
    for mode in ("mode=ro", "immutable=1"):
        conn = sqlite3.connect(f"{uri}?{mode}", uri=True, check_same_thread=False, isolation_level=None, timeout=30)
        try:
            conn.execute(probe).fetchone()
            return conn
        except sqlite3.OperationalError:
            conn.close()
    raise sqlite3.OperationalError(f"cannot open {path} for reading")
