"""Read-only queries the web layer needs, returning the plain views the IIIF builders take."""

from __future__ import annotations

import json
import re
import sqlite3
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from typing import Any
from urllib.parse import unquote

from ..catalogue import Catalogue
from ..iiif.common import RegionView, Urls, language_map
from ..iiif.local_books import LocalCanvas, is_http
from ..index.text import is_noise
from .local_books import is_local_book, local_image_file

_PUBLIC_CANVAS = re.compile(r"(?P<manifest>[^/]+)/canvas/(?P<canvas>[^/#]+)")

_REGION_SELECT = """
SELECT r.*, c.uri AS canvas_uri, c.position AS canvas_position, c.width AS canvas_width,
       c.height AS canvas_height, c.image_service, c.image_service_version, c.image_width, c.image_height,
       m.uri AS manifest_uri, m.label AS manifest_label, m.url AS manifest_url, c.image_url AS canvas_image_url,
       ri.path AS image_path,
       COALESCE(lm.label, lo.label) AS label,
       CASE WHEN lm.label IS NOT NULL THEN 'manual' WHEN lo.label IS NOT NULL THEN 'model' END AS label_source,
       CASE WHEN lm.label IS NOT NULL THEN lm.probability ELSE lo.probability END AS probability
FROM region r
JOIN canvas c ON c.id = r.canvas_id
JOIN manifest m ON m.id = r.manifest_id
LEFT JOIN region_image ri ON ri.region_id = r.id
LEFT JOIN label lm ON lm.region_id = r.id AND lm.source = 'manual'
LEFT JOIN label lo ON lo.region_id = r.id AND lo.source = 'model'
"""


class Store:
    """``urls``: with it, regions of books ingested from local files name their canvases and page images by
    our http URLs (``iiif.local_books``), never by ``file:`` URLs or paths."""

    def __init__(self, catalogue: Catalogue, urls: Urls | None = None) -> None:
        self.catalogue = catalogue
        self.urls = urls
        # Kept in step with the catalogue's change log (``_follow``): manifest id → its label as a language
        # map (read from the stored source JSON, because the label column is flat text), and the live region
        # and change counts. A request reads the last change number and what changed since; never a table.
        self._labels: dict[str, dict[str, list[str]] | None] = {}
        self._counts: tuple[int, int, int] | None = None  # (change seq, live regions, changes)
        self._follow_lock = threading.Lock()
        self._memo: dict[str, tuple[tuple[int, int], Any]] = {}

    def _view(self, row: sqlite3.Row, keys: Sequence[str] | None = None,
              label_map: dict[str, list[str]] | None = None) -> RegionView:
        """``keys`` and ``label_map`` come from ``_views``, which converts a page of rows at a time."""
        view = RegionView.from_row(row, keys=keys, manifest_label_map=label_map)
        if self.urls is None or not is_local_book(row["manifest_url"]):
            return view
        changes: dict[str, Any] = {}
        if not is_http(view.canvas_uri):
            changes["canvas_uri"] = self.urls.canvas(view.manifest_id, row["canvas_id"])
        if not is_http(view.image_service) and local_image_file(row["manifest_url"], row["canvas_image_url"]):
            changes.update(image_service=self.urls.image_service(row["canvas_id"], 3), image_service_version=3)
        return replace(view, **changes)

    def local_canvases(self, manifest_id: str, manifest_url: str) -> dict[str, LocalCanvas]:
        """A local book's canvases by their stored ids, saying which paint a local image we serve."""
        return {r["uri"]: LocalCanvas(r["id"], local_image_file(manifest_url, r["image_url"]) is not None)
                for r in self.catalogue.query("SELECT id, uri, image_url FROM canvas WHERE manifest_id=?",
                                              (manifest_id,))}

    def _follow(self) -> tuple[int, int, int]:
        """Bring the label cache and the counts up to the catalogue's last change: (seq, regions, changes).

        Every manifest write logs a change, and a region is logged ``create`` when it becomes live (new or
        revived) and ``delete`` when it stops being live (``Catalogue.replace_canvas_regions``,
        ``_delete_canvas_regions``), so the change rows since the last look say which labels went stale and
        by how much the counts moved: the cost is that of the changes since, never a table's.
        """
        with self._follow_lock:
            if self._counts is not None:
                seq, regions, changes = self._counts
                # One statement, one snapshot: the sums and the new last seq agree.
                row = self.catalogue.query_one(
                    """SELECT (SELECT COALESCE(MAX(seq), 0) FROM change) AS last, COUNT(*) AS n,
                              COALESCE(SUM(CASE WHEN object_type = 'region' AND kind = 'create' THEN 1
                                                WHEN object_type = 'region' AND kind = 'delete' THEN -1
                                                ELSE 0 END), 0) AS live
                       FROM change WHERE seq > ?""", (seq,))
                last = int(row["last"])
                if last == seq:
                    return self._counts
                if last > seq:
                    for stale in self.catalogue.query(
                            "SELECT DISTINCT object_id FROM change WHERE seq > ? AND seq <= ? "
                            "AND object_type = 'manifest'", (seq, last)):
                        self._labels.pop(stale["object_id"], None)
                    self._counts = (last, regions + int(row["live"]), changes + int(row["n"]))
                    return self._counts
            # First look, or a catalogue rebuilt from scratch (its last change is older than ours): count.
            row = self.catalogue.query_one(
                "SELECT (SELECT COALESCE(MAX(seq), 0) FROM change) AS seq, "
                "(SELECT COUNT(*) FROM region WHERE deleted=0) AS regions, (SELECT COUNT(*) FROM change) AS n")
            self._counts = (int(row["seq"]), int(row["regions"]), int(row["n"]))
            self._labels.clear()
            return self._counts

    def label_maps(self, manifest_ids: Iterable[str]) -> dict[str, dict[str, list[str]] | None]:
        """These manifests' labels with their languages (``{"de": [...]}`` stays German); None for a manifest
        that is not live. Each is read once per version of the manifest."""
        wanted = list(dict.fromkeys(manifest_ids))
        self._follow()
        with self._follow_lock:
            missing = [m for m in wanted if m not in self._labels]
            for start in range(0, len(missing), 500):
                chunk = missing[start:start + 500]
                found = {row["id"]: row for row in self.catalogue.query(
                    "SELECT id, status, json_extract(raw, '$.label') AS label FROM manifest "
                    f"WHERE id IN ({','.join('?' * len(chunk))})", chunk)}
                for manifest_id in chunk:
                    row = found.get(manifest_id)
                    self._labels[manifest_id] = _language_map(row["label"]) if row and row["status"] == "ok" else None
            return {m: self._labels.get(m) for m in wanted}

    def _views(self, rows: Sequence[sqlite3.Row]) -> list[RegionView]:
        if not rows:
            return []
        labels = self.label_maps({r["manifest_id"] for r in rows})
        keys = tuple(rows[0].keys())
        return [self._view(r, keys, labels.get(r["manifest_id"])) for r in rows]

    def manifest(self, ref: str) -> sqlite3.Row | None:
        row = self.catalogue.find_manifest(ref)
        return row if row is not None and row["status"] == "ok" else None

    def manifests(self) -> list[sqlite3.Row]:
        return self.catalogue.manifests()

    def canvas_positions(self, manifest_id: str) -> dict[str, int]:
        return {r["uri"]: r["position"] for r in self.catalogue.query(
            "SELECT uri, position FROM canvas WHERE manifest_id=?", (manifest_id,))}

    def canvas_at(self, manifest_id: str, position: int) -> sqlite3.Row | None:
        return self.catalogue.query_one(
            "SELECT * FROM canvas WHERE manifest_id=? AND position=?", (manifest_id, position))

    def canvases_by_uri(self, uri: str) -> list[sqlite3.Row]:
        """Canvases by their id, or by the id we published for a local book's canvas (``Urls.canvas``)."""
        rows = self.catalogue.query(
            "SELECT c.*, m.url AS manifest_url FROM canvas c JOIN manifest m ON m.id = c.manifest_id "
            "WHERE c.uri=? AND m.status='ok'", (uri,))
        if rows or self.urls is None or not uri.startswith(self.urls.base + "/iiif/"):
            return rows
        match = _PUBLIC_CANVAS.fullmatch(uri[len(self.urls.base) + len("/iiif/"):])
        if match is None:
            return []
        return self.catalogue.query(
            "SELECT c.*, m.url AS manifest_url FROM canvas c JOIN manifest m ON m.id = c.manifest_id "
            "WHERE c.id=? AND c.manifest_id=? AND m.status='ok'",
            (unquote(match["canvas"]), unquote(match["manifest"])))

    def canvas_regions(self, canvas_id: str, include_noise: bool = False) -> list[RegionView]:
        rows = self.catalogue.query(
            _REGION_SELECT + " WHERE r.canvas_id=? AND r.deleted=0 ORDER BY r.y, r.x, r.id", (canvas_id,))
        return self._views([r for r in rows if include_noise or not is_noise(r["flags"])])

    def region(self, region_id: str) -> RegionView | None:
        row = self.catalogue.query_one(_REGION_SELECT + " WHERE r.id=? AND r.deleted=0", (region_id,))
        return self._views([row])[0] if row is not None else None

    def regions_by_id(self, ids: Sequence[str]) -> dict[str, RegionView]:
        out: dict[str, RegionView] = {}
        for start in range(0, len(ids), 500):
            chunk = list(ids[start:start + 500])
            marks = ",".join("?" * len(chunk))
            for view in self._views(self.catalogue.query(
                    _REGION_SELECT + f" WHERE r.id IN ({marks}) AND r.deleted=0", chunk)):
                out[view.id] = view
        return out

    def region_image_path(self, region_id: str) -> str | None:
        row = self.catalogue.query_one("SELECT path FROM region_image WHERE region_id=?", (region_id,))
        return row["path"] if row is not None else None

    # --- harvest -------------------------------------------------------------------------------

    def count_regions(self) -> int:
        return self._follow()[1]

    # Harvest pages are fixed slices of creation order: page n holds the regions whose ``seq`` (region) or
    # change number (activity) lies in ((n-1)·size, n·size]. A deleted region keeps its slot, so a delete
    # between two page requests moves nothing (with offsets over live rows, the rows after it slid back onto
    # a page already read and were never seen), and each page is an index range: the same cost at any size.

    def last_region_seq(self) -> int:
        return int(self.catalogue.query_one("SELECT COALESCE(MAX(seq), 0) AS n FROM region")["n"])

    def regions_in_seq(self, after: int, upto: int) -> list[RegionView]:
        """Live regions with ``after < seq <= upto``, in creation order."""
        return self._views(self.catalogue.query(
            _REGION_SELECT + " WHERE r.seq > ? AND r.seq <= ? AND r.deleted=0 ORDER BY r.seq", (after, upto)))

    def count_changes(self) -> int:
        return self._follow()[2]

    def last_change_seq(self) -> int:
        return int(self.catalogue.query_one("SELECT COALESCE(MAX(seq), 0) AS n FROM change")["n"])

    def changes_in_seq(self, after: int, upto: int) -> list[dict[str, Any]]:
        """The change log entries with ``after < seq <= upto``, oldest first."""
        rows = self.catalogue.query(
            """SELECT ch.seq, ch.kind, ch.object_type, ch.object_id, ch.at, r.manifest_id
               FROM change ch LEFT JOIN region r ON ch.object_type = 'region' AND r.id = ch.object_id
               WHERE ch.seq > ? AND ch.seq <= ? ORDER BY ch.seq""", (after, upto))
        return [dict(r) for r in rows]

    def positions_with_regions(self, manifest_id: str) -> set[int]:
        """The canvas positions that have a region a default region page lists (noise left out)."""
        rows = self.catalogue.query(
            "SELECT DISTINCT c.position, r.flags FROM region r JOIN canvas c ON c.id = r.canvas_id "
            "WHERE r.manifest_id=? AND r.deleted=0 AND c.position >= 0", (manifest_id,))
        return {int(r["position"]) for r in rows if not is_noise(r["flags"])}

    def count_manifests(self) -> int:
        return self._unless_changed("manifests", lambda: int(self.catalogue.query_one(
            "SELECT COUNT(*) AS n FROM manifest WHERE status='ok'")["n"]))

    def models(self) -> dict[str, int]:
        return self._unless_changed("models", lambda: {r["model"]: r["n"] for r in self.catalogue.query(
            "SELECT model, COUNT(*) AS n FROM embedding GROUP BY model ORDER BY model")})

    def _unless_changed(self, name: str, compute: Callable[[], Any]) -> Any:
        """``compute()``, again only once the catalogue file has changed: a count over a whole table (what
        /health reports) is read once per write, not once per request. SQLite's data_version moves when
        another connection commits, total_changes when this one writes."""
        stamp = (self.catalogue.query_one("PRAGMA data_version")[0], self.catalogue.conn.total_changes)
        with self._follow_lock:
            hit = self._memo.get(name)
            if hit is not None and hit[0] == stamp:
                return hit[1]
        value = compute()
        with self._follow_lock:
            self._memo[name] = (stamp, value)
        return value


def _language_map(raw: Any) -> dict[str, list[str]] | None:
    """A label as ``json_extract`` returns it (JSON text for objects and lists) as a language map."""
    try:
        value = json.loads(raw) if isinstance(raw, str) and raw[:1] in "[{\"" else raw
    except ValueError:
        value = raw
    return language_map(value)
