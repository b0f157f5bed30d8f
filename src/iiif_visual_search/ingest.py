"""The ingest job: sources → manifests → canvases → layout files → regions in the catalogue.

Documents are fetched concurrently; layout files are read beside the event loop (``layout_rows``: on a thread,
and on a longer run in a worker process) so that it keeps fetching.
Each manifest is written in its own transaction, and the regions of a few dozen canvases at a time in one
(``WRITE_BATCH``; at the latest when their manifest is done): a run killed at any point leaves a consistent
catalogue, and the next run picks up the canvases whose regions were not yet written.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from .catalogue import Catalogue, CanvasRegions, canvas_id_for, manifest_id_for
from .config import Settings
from .files import is_disk_full
from .geometry import GeometryError
from .layout_rows import CanvasPlace, LayoutReader
from .loader import DocumentLoader, LoadError, LocalAccess, is_remote, local_path, resolve
from .records import CollectionRecord, LayoutError, ManifestError, ManifestRecord
from .sources.manifest import parse_bytes


log = logging.getLogger(__name__)

# Failures that belong to one document and say why in their own words; anything else is reported with its type.
_DOCUMENT_ERRORS = (LoadError, ManifestError, LayoutError, GeometryError)
_MAX_REASON = 500
# Canvases whose regions are written in one transaction (Catalogue.replace_regions).
WRITE_BATCH = 32


def _reason(exc: Exception) -> str:
    text = str(exc) if isinstance(exc, _DOCUMENT_ERRORS) else f"{type(exc).__name__}: {exc}"
    return text if len(text) <= _MAX_REASON else text[:_MAX_REASON] + "…"


@dataclass
class LayoutOverride:
    ref: str
    format: str = ""  # "" = detect from the file


@dataclass
class IngestReport:
    manifests_seen: int = 0
    manifests_changed: int = 0
    collections: int = 0
    layouts_read: int = 0
    layouts_unchanged: int = 0
    regions_created: int = 0
    regions_updated: int = 0
    regions_deleted: int = 0
    manifests_deleted: int = 0
    failures: list[tuple[str, str, str]] = field(default_factory=list)  # (kind, ref, reason)
    without_layout: list[tuple[str, int]] = field(default_factory=list)  # (manifest ref, canvases): no layout links

    @property
    def ingested_anything(self) -> bool:
        return self.manifests_seen > 0


def read_layout_map(path: Path) -> dict[str, LayoutOverride]:
    """CSV rows ``canvas,layout``: canvas is a canvas id or a 1-based position; layout a path or URL.

    Relative layout paths are taken relative to the CSV file, so a map can travel with its files.
    A header row is allowed. Keys are the canvas id, or ``#N`` for a position.
    """
    overrides: dict[str, LayoutOverride] = {}
    with path.open(newline="", encoding="utf-8-sig") as handle:
        for line_no, row in enumerate(csv.reader(handle), start=1):
            cells = [c.strip() for c in row]
            if not cells or not any(cells) or cells[0].startswith("#"):
                continue
            if len(cells) < 2:
                raise ValueError(f"{path}:{line_no}: expected 'canvas,layout', got {row!r}")
            canvas, layout = cells[0], cells[1]
            if line_no == 1 and canvas.lower() in ("canvas", "canvas_id", "position"):
                continue
            # An empty cell would resolve to the CSV's own folder, and position 0 matches no canvas.
            if not canvas or not layout:
                raise ValueError(f"{path}:{line_no}: empty canvas or layout in {row!r}")
            if canvas.isdigit() and int(canvas) < 1:
                raise ValueError(f"{path}:{line_no}: canvas positions start at 1, got {canvas!r}")
            fmt = cells[2].lower() if len(cells) > 2 else ""
            key = f"#{int(canvas)}" if canvas.isdigit() else canvas
            ref = resolve(layout, str(path.resolve()))
            # A path (absolute, or relative to the CSV) as a file: URL: a bare path would be read relative to
            # the manifest's URL, as a link inside the manifest is.
            local = local_path(ref)
            overrides[key] = LayoutOverride(local.resolve().as_uri() if local is not None else ref, fmt)
    return overrides


class Ingester:
    def __init__(self, catalogue: Catalogue, settings: Settings, loader: DocumentLoader, *,
                 layout_map: dict[str, LayoutOverride] | None = None, dpi: float | None = None,
                 new_only: bool = False, progress: Callable[[str], None] | None = None,
                 bar: Any = None, local_access: LocalAccess | None = None,
                 layout_reader: LayoutReader | None = None) -> None:
        self.bar = bar  # a tqdm bar counting canvases with a layout; its total grows as manifests arrive
        self.catalogue = catalogue
        self.settings = settings
        self.loader = loader
        self.layout_map = layout_map or {}
        self.local_access = local_access or LocalAccess()
        # The operator named these in the layout map: trusted like the command line's own sources.
        self._operator_refs = {o.ref for o in self.layout_map.values()}
        self.dpi = dpi
        self.new_only = new_only
        self.report = IngestReport()
        self._progress = progress or (lambda _msg: None)
        self._seen_docs: set[str] = set()
        self._layout_semaphore = asyncio.Semaphore(max(1, settings.concurrency))
        # Members of a collection read at once: twice the documents fetched at once keeps the fetches busy
        # across the end of one book and the start of the next, and books of one page each come in quickly.
        self._members_at_once = 2 * max(1, settings.concurrency)
        # Without one from the caller (who then closes it), layout files are read on a thread.
        self.layout_reader = layout_reader or LayoutReader(workers=0)
        self._unwritten: list[tuple[CanvasRegions, str]] = []  # (a canvas's regions, its manifest id)
        self._regions_changed: set[str] = set()  # manifests whose regions this run created, updated or deleted

    def _fail(self, kind: str, ref: str, reason: str, manifest_id: str = "") -> None:
        reason = reason if len(reason) <= _MAX_REASON else reason[:_MAX_REASON] + "…"
        self.catalogue.quarantine(kind, ref, reason, manifest_id)
        self.report.failures.append((kind, ref, reason))
        self._progress(f"quarantined {kind} {ref}: {reason}")

    async def run(self, sources: list[str]) -> IngestReport:
        await asyncio.gather(*(self._source(self._normalise(s)) for s in sources))
        self._write_regions()
        return self.report

    @staticmethod
    def _normalise(source: str) -> str:
        path = Path(source)
        try:
            if "://" not in source and path.exists():
                return str(path.resolve())
        except (OSError, ValueError):  # an embedded NUL byte, a name too long: _source quarantines it
            pass
        return source

    async def _source(self, ref: str, named_by: str | None = None) -> None:
        """One manifest or collection, ``named_by`` a collection (None: the command line). Whatever goes wrong
        inside it is quarantined and the run goes on; only a full disk stops the run."""
        try:
            await self._source_unguarded(ref, named_by)
        except Exception as exc:
            if is_disk_full(exc):
                raise
            log.debug("manifest %s failed", ref, exc_info=True)
            self._fail("manifest", ref, _reason(exc))

    async def _source_unguarded(self, ref: str, named_by: str | None) -> None:
        self.local_access.check(ref, named_by)
        # A local document named once as a path and once as a file:// URL is one document: read it once.
        path = local_path(ref) if not is_remote(ref) else None
        key = str(path.resolve()) if path is not None else ref
        if key in self._seen_docs:
            return
        self._seen_docs.add(key)
        data = await self.loader.load(ref)
        document = await asyncio.to_thread(parse_bytes, data, url=ref)
        if isinstance(document, CollectionRecord):
            await self._collection(document, ref)
        else:
            await self._manifest(document, data)

    async def _collection(self, record: CollectionRecord, ref: str) -> None:
        self.report.collections += 1
        members = [(resolve(m, ref), "manifest") for m in record.manifests]
        members += [(resolve(c, ref), "collection") for c in record.collections]
        self.catalogue.clear_quarantine("manifest", ref)
        gone = self.catalogue.upsert_collection(record.id or ref, ref, record.label, members)
        for url in gone:
            self._drop_manifest_if_orphaned(url)
        # A few workers take the members in turn, so that only as many manifests as they hold are in memory at
        # once: gathered all together, a collection of 1,667 books had its ingest at 1.2 GB within a minute
        # (each parsed manifest waits there for its pages), and one of a national library's would not fit.
        todo = iter(members)

        async def worker() -> None:
            for url, _ in todo:
                await self._source(url, named_by=ref)

        await asyncio.gather(*(worker() for _ in range(min(len(members), self._members_at_once))))

    def _drop_manifest_if_orphaned(self, url: str) -> None:
        still_member = self.catalogue.query_one(
            "SELECT 1 FROM collection_member WHERE member_url=? AND kind='manifest'", (url,))
        row = self.catalogue.find_manifest(url)
        if row is not None and still_member is None and row["status"] == "ok":
            # Its regions go too, and the summary's "-N" must say so.
            self.report.regions_deleted += self.catalogue.mark_manifest_deleted(
                row["id"], "no longer listed in its collection")
            self.report.manifests_deleted += 1

    async def _manifest(self, record: ManifestRecord, data: bytes) -> None:
        if not record.id:
            record.id = record.url
        for canvas in record.canvases:
            # A relative image reference ("scan.png" beside a local manifest) means the manifest's folder.
            if canvas.image_url:
                canvas.image_url = resolve(canvas.image_url, record.url)
        self.report.manifests_seen += 1
        content_hash = hashlib.sha256(data).hexdigest()
        self._drop_local_images(record)
        live = "SELECT COUNT(*) FROM region WHERE manifest_id=? AND deleted=0"
        before = self.catalogue.query_one(live, (manifest_id_for(record.id),))[0]
        mid, changed = self.catalogue.upsert_manifest(record, content_hash)
        for spelling in _spellings(record.url):  # failed once as a file:// URL, read now as a path: one document
            self.catalogue.clear_quarantine("manifest", spelling)
        if changed:
            self.report.manifests_changed += 1
            # Canvases the manifest no longer has took their regions with them.
            self.report.regions_deleted += before - self.catalogue.query_one(live, (mid,))[0]
        self._apply_layout_map(mid, record)
        canvases = [row for row in self.catalogue.canvases(mid) if row["layout_url"]]
        if not canvases and record.canvases:
            self.report.without_layout.append((record.url, len(record.canvases)))
        if self.bar is not None:
            self.bar.total = (self.bar.total or 0) + len(canvases)
            self.bar.refresh()
        failed_before = len(self.report.failures)
        await asyncio.gather(*(self._canvas_counted(mid, record, row) for row in canvases))
        self._write_regions()  # before the quarantine below is cleared: its canvases are done
        if mid in self._regions_changed:
            # The augmented manifest shows its regions (which canvases have annotations), so a layout corrected
            # behind an unchanged manifest is an Update of the manifest too: harvesters and mirrors follow
            # manifests in Change Discovery, not each region's annotation. Once, after all its pages.
            self._regions_changed.discard(mid)
            self.catalogue.log_changes("manifest", [("update", mid)])
        # Layout files of this manifest that failed before and were not failing now: read fine, or no longer
        # linked (the manifest or the layout map changed). Their quarantine entries are history.
        still = [ref for kind, ref, _ in self.report.failures[failed_before:] if kind == "layout"]
        if not self.new_only:
            self.catalogue.clear_layout_quarantine(mid, keep=still)

    def _drop_local_images(self, record: ManifestRecord) -> None:
        """A manifest read over http(s) that names local or non-http images keeps its canvases, not those
        images: ``ivs fetch`` and the service would read them from this machine's disk."""
        if not is_remote(record.url):
            return
        for canvas in record.canvases:
            for ref in (canvas.image_url, canvas.image_service.id if canvas.image_service else ""):
                if ref and not is_remote(ref):
                    self._fail("image", ref, "refused: a document read over http(s) may only name http(s) "
                                             f"resources, not {urlparse(ref).scheme or 'a local path'}")
            if canvas.image_url and not is_remote(canvas.image_url):
                canvas.image_url = ""
            if canvas.image_service is not None and not is_remote(canvas.image_service.id):
                canvas.image_service = None

    async def _canvas_counted(self, mid: str, record: ManifestRecord, row: Any) -> None:
        try:
            await self._canvas(mid, record, row)
        except Exception as exc:
            # One canvas's layout failing in an unforeseen way must not take the manifest's other canvases.
            if is_disk_full(exc):
                raise
            log.debug("canvas %s failed", row["uri"], exc_info=True)
            ref = resolve(row["layout_url"], record.url) if row["layout_url"] else row["uri"]
            self._fail("layout", ref, _reason(exc), mid)
            self.catalogue.set_layout_status(row["id"], "quarantined")
        finally:
            if self.bar is not None:
                self.bar.update(1)

    def _apply_layout_map(self, mid: str, record: ManifestRecord) -> None:
        if not self.layout_map:
            return
        for canvas in record.canvases:
            override = self.layout_map.get(canvas.id) or self.layout_map.get(f"#{canvas.position + 1}")
            if override is not None:
                self.catalogue.set_layout_override(canvas_id_for(mid, canvas.id), override.ref, override.format)

    async def _canvas(self, mid: str, record: ManifestRecord, row: Any) -> None:
        layout_url = row["layout_url"]
        if not layout_url:
            return
        if self.new_only and row["layout_status"] == "ok":
            self.report.layouts_unchanged += 1
            return
        ref = resolve(layout_url, record.url)
        async with self._layout_semaphore:
            try:
                if ref not in self._operator_refs:
                    self.local_access.check(ref, record.url)
                data = await self.loader.load(ref)
            except LoadError as exc:
                self._fail("layout", ref, str(exc), mid)
                self.catalogue.set_layout_status(row["id"], "quarantined")
                return
        layout_hash = hashlib.sha256(data).hexdigest()
        if row["layout_status"] == "ok" and row["layout_hash"] == layout_hash:
            self.report.layouts_unchanged += 1
            return
        try:
            regions = await self.layout_reader.read(data, ref, self._place(mid, row), self.settings.max_document_bytes)
        except (LayoutError, GeometryError) as exc:
            self._fail("layout", ref, str(exc), mid)
            self.catalogue.set_layout_status(row["id"], "quarantined")
            return
        self._unwritten.append((CanvasRegions(row["id"], regions, layout_hash, read_from=ref), mid))
        if len(self._unwritten) >= WRITE_BATCH:
            self._write_regions()

    def _write_regions(self) -> None:
        """Write the canvases read since the last time, in one transaction. If that fails, each is written on
        its own, so that only a canvas at fault is quarantined; a full disk stops the run."""
        batch, self._unwritten = self._unwritten, []
        if not batch:
            return
        try:
            written = list(zip(self.catalogue.replace_regions([canvas for canvas, _ in batch]),
                               (mid for _, mid in batch), strict=True))
        except Exception as exc:
            if is_disk_full(exc):
                raise
            written = []
            for canvas, mid in batch:
                try:
                    written += [(counts, mid) for counts in self.catalogue.replace_regions([canvas])]
                except Exception as one:
                    if is_disk_full(one):
                        raise
                    self._fail("layout", canvas.read_from, _reason(one), mid)
                    self.catalogue.set_layout_status(canvas.canvas_id, "quarantined")
        for counts, mid in written:
            if counts["created"] or counts["updated"] or counts["deleted"]:
                self._regions_changed.add(mid)
            self.report.layouts_read += 1
            self.report.regions_created += counts["created"]
            self.report.regions_updated += counts["updated"]
            self.report.regions_deleted += counts["deleted"]

    def _place(self, mid: str, row: Any) -> CanvasPlace:
        dpi = self.dpi
        if dpi is None and row["physical_scale"]:
            dpi = 1.0 / float(row["physical_scale"])
        return CanvasPlace(manifest_id=mid, canvas_id=row["id"], canvas_uri=row["uri"], width=int(row["width"]),
                           height=int(row["height"]), dpi=dpi)


def _spellings(ref: str) -> set[str]:
    """A document's ref with its other local spellings (a path and its file:// URL)."""
    path = local_path(ref)
    if path is None or is_remote(ref):
        return {ref}
    absolute = path.resolve()
    return {ref, str(path), str(absolute), absolute.as_uri()}


async def ingest(sources: list[str], catalogue: Catalogue, settings: Settings, *,
                 layout_map: dict[str, LayoutOverride] | None = None, dpi: float | None = None,
                 new_only: bool = False, progress: Callable[[str], None] | None = None,
                 bar: Any = None, allow_local: tuple[Path, ...] = ()) -> IngestReport:
    """Ingest ``sources``. Local files named by documents read over http(s) are refused unless they lie under
    one of the ``allow_local`` folders."""
    async with DocumentLoader(user_agent=settings.user_agent, max_bytes=settings.max_document_bytes,
                              timeout_s=settings.timeout_s, concurrency=settings.concurrency) as loader:
        reader = LayoutReader()
        try:
            ingester = Ingester(catalogue, settings, loader, layout_map=layout_map, dpi=dpi, new_only=new_only,
                                progress=progress, bar=bar, local_access=LocalAccess(allow_local),
                                layout_reader=reader)
            return await ingester.run(sources)
        finally:
            reader.close()


__all__ = ["IngestReport", "LayoutOverride", "ingest", "read_layout_map", "manifest_id_for"]
