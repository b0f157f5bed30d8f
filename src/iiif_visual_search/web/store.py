"""Read-only queries the web layer needs, returning the plain views the IIIF builders take."""

from __future__ import annotations

import dataclasses
import json
import re
import sqlite3
import threading
from collections.abc import Sequence
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
        # manifest id → (fetched_at, label as a language map): read from the stored source JSON once per
        # version of the manifest, because the catalogue's label column is flat text.
        self._labels: dict[str, tuple[float, dict[str, list[str]] | None]] = {}
        self._labels_lock = threading.Lock()

    def _view(self, row: sqlite3.Row) -> RegionView:
        view = RegionView.from_row(row)
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

    def label_maps(self) -> dict[str, dict[str, list[str]] | None]:
        """Every live manifest's label with its languages (``{"de": [...]}`` stays German)."""
        rows = self.catalogue.query("SELECT id, fetched_at FROM manifest WHERE status='ok'")
        with self._labels_lock:
            stale = [r["id"] for r in rows if self._labels.get(r["id"], (None,))[0] != r["fetched_at"]]
            for start in range(0, len(stale), 500):
                chunk = stale[start:start + 500]
                for row in self.catalogue.query(
                        "SELECT id, fetched_at, json_extract(raw, '$.label') AS label FROM manifest "
                        f"WHERE id IN ({','.join('?' * len(chunk))})", chunk):
                    raw = row["label"]
                    try:
                        value = json.loads(raw) if isinstance(raw, str) and raw[:1] in "[{\"" else raw
                    except ValueError:
                        value = raw
                    self._labels[row["id"]] = (row["fetched_at"], language_map(value))
            return {r["id"]: self._labels.get(r["id"], (0.0, None))[1] for r in rows}

    def _views(self, rows: Sequence[sqlite3.Row]) -> list[RegionView]:
        labels = self.label_maps() if rows else {}
        return [dataclasses.replace(v, manifest_label_map=labels.get(v.manifest_id))
                for v in map(self._view, rows)]

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
        return int(self.catalogue.query_one("SELECT COUNT(*) AS n FROM region WHERE deleted=0")["n"])

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
        return int(self.catalogue.query_one("SELECT COUNT(*) AS n FROM change")["n"])

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

    def models(self) -> dict[str, int]:
        return {r["model"]: r["n"] for r in self.catalogue.query(
            "SELECT model, COUNT(*) AS n FROM embedding GROUP BY model ORDER BY model")}
