"""The documents of a Change Discovery 1.0 stream: the OrderedCollection, its pages and their activities.

They come from other people's servers, so each is validated here and nowhere else: a page that is not a page
raises ``StreamError`` with a reason fit for quarantine, and one malformed activity is reported on its own
without losing the rest of its page. Properties we have no use for are ignored (the specification says so).
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

# The object types we can ingest (§3.5.2: activities on any other type are passed over).
KNOWN_TYPES = frozenset({"Manifest", "Collection"})
PAGE_TYPES = frozenset({"OrderedCollectionPage", "CollectionPage"})


class StreamError(Exception):
    """A stream document that cannot be used; the message is the reason stored in quarantine."""


class Ref(BaseModel):
    """``{"id": ..., "type": ...}``; a bare string or a JSON-LD ``@id``/``@type`` is accepted too."""

    model_config = ConfigDict(extra="ignore")
    id: str = Field(min_length=1)
    type: str = ""

    @model_validator(mode="before")
    @classmethod
    def _lenient(cls, value: Any) -> Any:
        if isinstance(value, str):
            return {"id": value}
        if isinstance(value, dict):
            return {"id": value.get("id", value.get("@id")), "type": value.get("type", value.get("@type", ""))}
        return value

    @property
    def kind(self) -> str:
        """The type without a Presentation 2 prefix (``sc:Manifest`` → ``Manifest``)."""
        return self.type.rsplit(":", 1)[-1]


class Activity(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)
    id: str = ""
    type: str
    object: Ref | None = None
    target: Ref | None = None
    origin: Ref | None = None
    end_time: str | None = Field(default=None, alias="endTime")
    start_time: str | None = Field(default=None, alias="startTime")

    @property
    def time(self) -> float | None:
        """When it happened, as a POSIX timestamp: ``endTime``, else ``startTime`` (a ``Refresh`` has only that)."""
        when = parse_time(self.end_time)
        return when if when is not None else parse_time(self.start_time)


class StreamCollection(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)
    id: str = ""
    type: str
    last: Ref | None = None
    total_items: int | None = Field(default=None, alias="totalItems", ge=0)


class StreamPage(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)
    id: str = ""
    type: str = "OrderedCollectionPage"
    prev: Ref | None = None
    ordered_items: list[Any] = Field(alias="orderedItems")


def parse_time(value: str | None) -> float | None:
    """An xsd:dateTime as a POSIX timestamp; a time without a zone is taken as UTC. None when unreadable."""
    if not value or not isinstance(value, str):
        return None
    try:
        when = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.timestamp()


def _json_object(data: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError) as exc:  # RecursionError: absurdly nested JSON
        raise StreamError(f"not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise StreamError("not a JSON object")
    return doc


def _why(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "document"
    return f"{where}: {first['msg']}"


def read_collection(data: bytes) -> StreamCollection:
    doc = _json_object(data)
    try:
        collection = StreamCollection.model_validate(doc)
    except ValidationError as exc:
        raise StreamError(f"not a Change Discovery OrderedCollection ({_why(exc)})") from None
    if collection.type != "OrderedCollection":
        raise StreamError(f"not a Change Discovery OrderedCollection (type {collection.type!r})")
    if collection.last is None and collection.total_items != 0:
        raise StreamError("the OrderedCollection has no 'last' page (Change Discovery 1.0 requires one)")
    return collection


def read_page(data: bytes) -> StreamPage:
    doc = _json_object(data)
    try:
        page = StreamPage.model_validate(doc)
    except ValidationError as exc:
        raise StreamError(f"not an OrderedCollectionPage ({_why(exc)})") from None
    if page.type not in PAGE_TYPES:
        raise StreamError(f"not an OrderedCollectionPage (type {page.type!r})")
    return page


def read_activity(item: Any) -> Activity:
    try:
        return Activity.model_validate(item)
    except ValidationError as exc:
        raise StreamError(f"not an activity ({_why(exc)})") from None
