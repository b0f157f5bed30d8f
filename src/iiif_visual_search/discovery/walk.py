"""Reading one stream from its newest activity backwards: the page algorithm of Change Discovery 1.0 §3.5.2.

The walk starts at the collection's ``last`` page, reads each page's activities from the end, and follows
``prev`` until it meets an activity older than the stream's high-water mark (everything older was applied by
an earlier run), a ``Refresh`` on a first run, or the first page. The newest activity per object wins; the
older ones of the same object are passed over. What the walk decides is a list of ``Change``s; applying
them is ``sync``'s job.

A page that cannot be read, or a ``prev`` that leads back to a page already read, ends the walk early: the
page is quarantined with the reason and the walk is *incomplete*, which keeps the high-water mark where it
was, so the next run reads the same pages again and gets past the gap once it is mended.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlparse

from ..catalogue import Catalogue
from ..loader import DocumentLoader, LoadError, is_remote, resolve
from .documents import KNOWN_TYPES, Activity, Ref, StreamError, read_activity, read_collection, read_page
from .state import Applied

INCLUDE, REMOVE, NOTHING = "include", "remove", "nothing"


@dataclass(frozen=True)
class Change:
    """What one activity asks of us for one object. A Move gives two: remove the old URL, include the new."""

    action: str  # include | remove | nothing (an Add or Remove that concerns another stream)
    url: str
    object_type: str
    activity: str
    activity_id: str
    at: float | None


@dataclass
class Walk:
    url: str
    stream_id: str = ""
    changes: list[Change] = field(default_factory=list)  # newest first, at most one per object
    newest: float | None = None
    complete: bool = False
    problem: str = ""  # why the walk stopped short
    pages: int = 0
    activities: int = 0
    invalid: int = 0  # activities that could not be read, each quarantined
    passed_over: int = 0  # on object types we do not ingest, or of activity types we do not know
    already_applied: int = 0


def already_applied(previous: Applied | None, activity: Activity, when: float | None) -> bool:
    """Whether an earlier run applied this activity, or a newer one, to the object."""
    if previous is None:
        return False
    if when is None:
        return True  # an undated activity on an object we already have: nothing says it is news
    if previous.at is None or when > previous.at:
        return False
    if when < previous.at:
        return True
    # The same time: the same activity only if its id (or, without ids, its type) is the same (§3.5.4).
    if activity.id and previous.activity_id:
        return activity.id == previous.activity_id
    return activity.type == previous.activity


class StreamWalker:
    def __init__(self, loader: DocumentLoader, catalogue: Catalogue, *, max_pages: int,
                 on_page: Callable[[Walk], None] | None = None) -> None:
        self.loader = loader
        self.catalogue = catalogue
        self.max_pages = max_pages
        self._on_page = on_page or (lambda _walk: None)

    async def walk(self, url: str, applied: dict[str, Applied], high_water: float | None) -> Walk:
        walk = Walk(url)
        try:
            collection = read_collection(await self.loader.load(url))
        except (LoadError, StreamError) as exc:
            return self._stop(walk, "stream", url, str(exc))
        self.catalogue.clear_quarantine("stream", url)
        walk.stream_id = collection.id or url
        if collection.last is None:  # an empty stream (totalItems 0)
            walk.complete = True
            return walk
        ours = {url, walk.stream_id}
        processed: set[str] = set()
        visited: set[str] = set()
        only_delete = False
        page_url: str | None = resolve(collection.last.id, url)
        while page_url is not None:
            if refused := self._refusal(url, page_url):
                return self._stop(walk, "stream-page", page_url, refused)
            if page_url in visited:
                return self._stop(walk, "stream-page", page_url,
                                  "loop: 'prev' leads back to a page already read in this run")
            if walk.pages >= self.max_pages:
                return self._stop(walk, "stream-page", page_url,
                                  f"not read: the run stopped after {self.max_pages} pages (see --max-pages)")
            visited.add(page_url)
            try:
                page = read_page(await self.loader.load(page_url))
            except (LoadError, StreamError) as exc:
                return self._stop(walk, "stream-page", page_url, str(exc))
            self.catalogue.clear_quarantine("stream-page", page_url)
            walk.pages += 1
            self._on_page(walk)
            for index in range(len(page.ordered_items) - 1, -1, -1):
                walk.activities += 1
                try:
                    activity = read_activity(page.ordered_items[index])
                except StreamError as exc:
                    self._invalid(walk, f"{page_url}#{index}", str(exc))
                    continue
                when = activity.time
                if when is not None and (walk.newest is None or when > walk.newest):
                    walk.newest = when
                if high_water is not None and when is not None and when < high_water:
                    walk.complete = True  # everything older was read by an earlier run
                    return walk
                if activity.type == "Refresh":
                    if high_water is None:
                        walk.complete = True  # a first run has every resource from here on
                        return walk
                    only_delete = True
                    continue
                for action, ref in self._actions(activity, ours, only_delete):
                    self._decide(walk, activity, action, ref, when, processed, applied, f"{page_url}#{index}")
            page_url = resolve(page.prev.id, page_url) if page.prev is not None else None
        walk.complete = True
        return walk

    @staticmethod
    def _actions(activity: Activity, ours: set[str], only_delete: bool) -> list[tuple[str, Ref | None]]:
        kind = activity.type
        if kind == "Delete" or (kind == "Remove" and activity.origin is not None and activity.origin.id in ours):
            return [(REMOVE, activity.object)]
        if only_delete:
            return []
        if kind in ("Create", "Update") or (kind == "Add" and activity.target is not None
                                            and activity.target.id in ours):
            return [(INCLUDE, activity.object)]
        if kind == "Move":
            return [(REMOVE, activity.object), (INCLUDE, activity.target)]
        if kind in ("Add", "Remove"):
            return [(NOTHING, activity.object)]
        return [(NOTHING, None)]  # an activity type we do not know

    def _decide(self, walk: Walk, activity: Activity, action: str, ref: Ref | None, when: float | None,
                processed: set[str], applied: dict[str, Applied], where: str) -> None:
        if ref is None:
            if action == NOTHING:
                walk.passed_over += 1
            else:
                self._invalid(walk, where, f"a {activity.type} activity without "
                                           f"{'a target' if action == INCLUDE and activity.type == 'Move' else 'an object'}")
            return
        object_url = resolve(ref.id, walk.url)
        if object_url in processed:
            return
        if ref.kind not in KNOWN_TYPES:
            walk.passed_over += 1
            return
        if refused := self._refusal(walk.url, object_url):
            self._invalid(walk, where, refused)
            return
        processed.add(object_url)
        if already_applied(applied.get(object_url), activity, when):
            walk.already_applied += 1
            return
        walk.changes.append(Change(action, object_url, ref.kind, activity.type, activity.id, when))

    @staticmethod
    def _refusal(stream_url: str, ref: str) -> str:
        """Why a stream may not name ``ref``: one read over http(s) names only http(s) resources, never local
        files. '' when it may."""
        if not is_remote(stream_url) or is_remote(ref):
            return ""
        return f"refused: a stream read over http(s) may only name http(s) resources, not {urlparse(ref).scheme or 'a local path'}"

    def _invalid(self, walk: Walk, where: str, reason: str) -> None:
        walk.invalid += 1
        self.catalogue.quarantine("activity", where, reason)

    def _stop(self, walk: Walk, kind: str, ref: str, reason: str) -> Walk:
        self.catalogue.quarantine(kind, ref, reason)
        walk.problem = f"{ref}: {reason}"
        return walk
