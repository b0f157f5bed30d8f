"""``ivs sync``: apply what Change Discovery streams say changed, through the ordinary ingest path.

Each stream is walked (``walk``) into a list of changes, newest first. Across streams the newest activity for
an object wins (§3.5.4), then removals are applied (the manifest and its regions marked deleted, as ingest
does for a manifest gone from its collection, so the change log and our own ``/activity`` say so) and then
inclusions (each object ingested as ``ivs ingest`` would, through the same document loader and its rules).

What was applied is recorded per stream and object as it happens, and a stream's high-water mark moves only
once every change of a walk that read the stream through has been applied: a run killed halfway, a page
that could not be read, or a manifest that failed is taken up again by the next run.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..catalogue import Catalogue
from ..config import Settings
from ..ingest import Ingester, IngestReport
from ..layout_rows import LayoutReader
from ..loader import DocumentLoader
from .state import Applied, StreamState
from .walk import INCLUDE, NOTHING, REMOVE, Change, StreamWalker, Walk

DEFAULT_MAX_PAGES = 100_000


@dataclass
class SyncReport:
    walks: list[Walk] = field(default_factory=list)
    included: int = 0  # objects ingested (created, updated, added, moved here), failed ones among them
    removed: int = 0  # objects deleted, removed or moved away
    retried: int = 0  # objects that failed in an earlier run and were tried again
    failed: list[tuple[str, str]] = field(default_factory=list)  # (object URL, reason)
    manifests_deleted: int = 0
    regions_deleted: int = 0  # by removals (ingest counts its own in ``ingest``)
    ingest: IngestReport = field(default_factory=IngestReport)

    @property
    def complete(self) -> bool:
        return all(w.complete for w in self.walks)

    @property
    def changed(self) -> bool:
        """Whether the catalogue's regions changed, so that images and vectors may need work."""
        i = self.ingest
        return bool(i.regions_created or i.regions_updated or i.regions_deleted or self.regions_deleted)


@dataclass(frozen=True)
class _Planned:
    stream: str
    change: Change
    retry: bool = False


def _merge_ingest(into: IngestReport, part: IngestReport) -> None:
    for f in dataclasses.fields(IngestReport):
        value = getattr(part, f.name)
        if isinstance(value, int):
            setattr(into, f.name, getattr(into, f.name) + value)
    into.failures.extend(part.failures)


class Syncer:
    def __init__(self, catalogue: Catalogue, settings: Settings, *, max_pages: int = DEFAULT_MAX_PAGES,
                 bar: Any = None) -> None:
        self.catalogue = catalogue
        self.settings = settings
        self.max_pages = max_pages
        self.bar = bar  # a tqdm bar counting objects applied; its total is set once the streams are read
        self.state = StreamState(catalogue)
        self.report = SyncReport()

    async def run(self, urls: Iterable[str]) -> SyncReport:
        streams = list(dict.fromkeys(urls))
        async with DocumentLoader(user_agent=self.settings.user_agent, max_bytes=self.settings.max_document_bytes,
                                  timeout_s=self.settings.timeout_s,
                                  concurrency=self.settings.concurrency) as loader:
            walker = StreamWalker(loader, self.catalogue, max_pages=self.max_pages, on_page=self._page_read)
            applied = {url: self.state.applied(url) for url in streams}
            for url in streams:  # pages follow each other through 'prev', so a stream is read page by page
                self.report.walks.append(await walker.walk(url, applied[url], self.state.high_water(url)))
            winners, seen_by = self._plan(applied)
            if self.bar is not None:
                self.bar.total = len(winners)
                self.bar.refresh()
            for planned in winners:
                if planned.change.action != INCLUDE:
                    self._record(planned, self._remove(planned), seen_by, applied)
            # A few workers share one iterator: a first run can have a hundred thousand objects to ingest.
            todo = iter([p for p in winners if p.change.action == INCLUDE])

            reader = LayoutReader()  # one for the whole run: a worker process once it has read enough layouts

            async def worker() -> None:
                for planned in todo:
                    self._record(planned, await self._include(loader, reader, planned), seen_by, applied)

            try:
                await asyncio.gather(*(worker() for _ in range(self.settings.concurrency)))
            finally:
                reader.close()
        for walk in self.report.walks:
            previous = self.state.high_water(walk.url)
            high_water = previous
            if walk.complete and walk.newest is not None:
                high_water = walk.newest if previous is None else max(previous, walk.newest)
            self.state.finish_run(walk.url, stream_id=walk.stream_id, high_water=high_water, newest=walk.newest,
                                  pages=walk.pages, activities=walk.activities, problem=walk.problem)
        return self.report

    def _page_read(self, walk: Walk) -> None:
        if self.bar is not None:  # a first run can read thousands of pages before any change is applied
            self.bar.set_postfix_str(f"{walk.pages} page(s) of {walk.url}", refresh=walk.pages % 20 == 1)

    def _plan(self, applied: dict[str, dict[str, Applied]]) -> tuple[list[_Planned], dict[str, list[_Planned]]]:
        """The winning change per object across all streams (the newest), and every stream's change per object."""
        candidates: list[_Planned] = []
        for walk in self.report.walks:
            candidates += [_Planned(walk.url, c) for c in walk.changes]
            fresh = {c.url for c in walk.changes}
            for entry in applied[walk.url].values():
                if entry.state == "failed" and entry.object_id not in fresh:
                    candidates.append(_Planned(walk.url, Change(INCLUDE, entry.object_id, entry.object_type,
                                                                entry.activity, entry.activity_id, entry.at),
                                               retry=True))
        # Newest first; undated activities (only ever on objects not seen before) after every dated one.
        candidates.sort(key=lambda p: -p.change.at if p.change.at is not None else float("inf"))
        winners: dict[str, _Planned] = {}
        seen_by: dict[str, list[_Planned]] = {}
        for planned in candidates:
            winners.setdefault(planned.change.url, planned)
            seen_by.setdefault(planned.change.url, []).append(planned)
        return list(winners.values()), seen_by

    def _record(self, winner: _Planned, outcome: tuple[str, str], seen_by: dict[str, list[_Planned]],
                applied: dict[str, dict[str, Applied]]) -> None:
        state, reason = outcome
        for planned in seen_by[winner.change.url]:
            c = planned.change
            previous = applied[planned.stream].get(c.url)
            # A winner that changed nothing leaves each stream's object in the state it had.
            entry_state = state or (previous.state if previous is not None else "ignored")
            self.state.record(planned.stream, [Applied(c.url, c.object_type, c.activity, c.activity_id, c.at,
                                                       entry_state, reason)])
        if self.bar is not None:
            self.bar.update(1)

    def _remove(self, planned: _Planned) -> tuple[str, str]:
        change = planned.change
        if change.action == NOTHING:
            return "", ""  # an Add or Remove about another stream: nothing to do, the object keeps its state
        self.report.removed += 1
        why = f"{change.activity} in the change stream {planned.stream}"
        row = self.catalogue.find_manifest(change.url)
        if row is not None:
            self._delete_manifest(row, why)
            return "removed", ""
        collection = self.catalogue.query_one("SELECT uri FROM collection WHERE uri=? OR url=?",
                                              (change.url, change.url))
        if collection is not None:
            self._empty_collection(collection["uri"], why, set())
        return "removed", ""

    def _delete_manifest(self, row: Any, why: str) -> None:
        if row["status"] == "ok":
            self.report.regions_deleted += self.catalogue.mark_manifest_deleted(row["id"], why)
            self.report.manifests_deleted += 1

    def _empty_collection(self, uri: str, why: str, done: set[str]) -> None:
        """A collection gone: its members leave it, and those no other collection lists go too."""
        if uri in done:
            return
        done.add(uri)
        row = self.catalogue.query_one("SELECT url, label FROM collection WHERE uri=?", (uri,))
        if row is None:
            return
        kinds = {m["member_url"]: m["kind"] for m in self.catalogue.collection_members(uri)}
        for member in self.catalogue.upsert_collection(uri, row["url"], row["label"], []):
            if self.catalogue.query_one("SELECT 1 FROM collection_member WHERE member_url=?", (member,)):
                continue  # still listed elsewhere
            if kinds.get(member) == "collection":
                sub = self.catalogue.query_one("SELECT uri FROM collection WHERE uri=? OR url=?", (member, member))
                if sub is not None:
                    self._empty_collection(sub["uri"], why, done)
            elif (manifest := self.catalogue.find_manifest(member)) is not None:
                self._delete_manifest(manifest, why)

    async def _include(self, loader: DocumentLoader, reader: LayoutReader, planned: _Planned) -> tuple[str, str]:
        """Ingest one object as ``ivs ingest`` would. A retry skips the layouts already read: the earlier run
        got them, and only what failed needs asking for again."""
        self.report.included += 1
        self.report.retried += planned.retry
        ingester = Ingester(self.catalogue, self.settings, loader, new_only=planned.retry, layout_reader=reader)
        part = await ingester.run([planned.change.url])
        _merge_ingest(self.report.ingest, part)
        if part.failures:
            kind, ref, reason = part.failures[0]
            where = "" if ref == planned.change.url else f"{kind} {ref}: "
            more = f" (and {len(part.failures) - 1} more, see 'ivs quarantine')" if len(part.failures) > 1 else ""
            self.report.failed.append((planned.change.url, where + reason + more))
            return "failed", where + reason + more
        return "present", ""


async def sync(urls: Iterable[str], catalogue: Catalogue, settings: Settings, *,
               max_pages: int = DEFAULT_MAX_PAGES, bar: Any = None) -> SyncReport:
    return await Syncer(catalogue, settings, max_pages=max_pages, bar=bar).run(urls)
