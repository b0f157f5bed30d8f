"""Harvest feeds: the AnnotationCollection of every region, Change Discovery 1.0, the P3 Collection."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from .annotations import region_annotation
from .clusters import activity_object as cluster_object
from .common import DISCOVERY_CONTEXT, PREZI3_CONTEXT, RegionView, Urls, lang_map
from .manifests import search_services_v3


def iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _pages(total: int, size: int) -> int:
    return max(1, -(-total // size))


def page_count(last_seq: int, page_size: int) -> int:
    """Pages are fixed slices of the sequence numbers 1..last_seq (deleted rows keep their slot)."""
    return _pages(last_seq, page_size)


def annotation_collection(*, urls: Urls, total: int, last_seq: int, page_size: int) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "@context": PREZI3_CONTEXT,
        "id": urls.annotations(),
        "type": "AnnotationCollection",
        "label": lang_map("Graphical regions of every ingested manifest", "en"),
    }
    if total > 0:  # the P3 schema refuses total 0, and there is no first page to point at
        doc["total"] = total
        doc["first"] = {"id": urls.annotations(1), "type": "AnnotationPage"}
        doc["last"] = {"id": urls.annotations(page_count(last_seq, page_size)), "type": "AnnotationPage"}
    return doc


def annotation_harvest_page(regions: Sequence[RegionView], *, urls: Urls, page: int, last_page: int) -> dict[str, Any]:
    """One slice of the collection; ``partOf`` carries no total, which would cost a count on every page."""
    doc: dict[str, Any] = {
        "@context": PREZI3_CONTEXT,
        "id": urls.annotations(page),
        "type": "AnnotationPage",
        "partOf": [{"id": urls.annotations(), "type": "AnnotationCollection"}],
    }
    if page < last_page:
        doc["next"] = {"id": urls.annotations(page + 1), "type": "AnnotationPage"}
    if page > 1:
        doc["prev"] = {"id": urls.annotations(page - 1), "type": "AnnotationPage"}
    doc["items"] = [region_annotation(r, urls) for r in regions]
    return doc


_ACTIVITY = {"create": "Create", "update": "Update", "delete": "Delete"}


def activity_object(change: Mapping[str, Any], urls: Urls) -> dict[str, Any]:
    """The object of an activity: a manifest (our augmented one), a region's annotation, or a map's cluster."""
    if change["object_type"] == "manifest":
        return {"id": urls.manifest(change["object_id"]), "type": "Manifest"}
    if change["object_type"] == "cluster":
        return cluster_object(change["object_id"], urls)
    manifest_id = change["manifest_id"] if "manifest_id" in change.keys() and change["manifest_id"] else ""
    return {"id": urls.annotation(manifest_id, change["object_id"]), "type": "Annotation"}


def activity_collection(*, urls: Urls, total: int, last_seq: int, page_size: int) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "@context": DISCOVERY_CONTEXT,
        "id": urls.activity(),
        "type": "OrderedCollection",
        "totalItems": total,
    }
    if total > 0:
        doc["first"] = {"id": urls.activity(1), "type": "OrderedCollectionPage"}
        doc["last"] = {"id": urls.activity(page_count(last_seq, page_size)), "type": "OrderedCollectionPage"}
    return doc


def activity_page(changes: Sequence[Mapping[str, Any]], *, urls: Urls, page: int, last_page: int,
                  page_size: int) -> dict[str, Any]:
    """One page of activities, oldest first (Change Discovery 1.0 §3.2: the most recent last).

    Page n holds the changes numbered ((n-1)·size, n·size]; the change log only grows, so pages never move."""
    last = last_page
    doc: dict[str, Any] = {
        "@context": DISCOVERY_CONTEXT,
        "id": urls.activity(page),
        "type": "OrderedCollectionPage",
        "startIndex": (page - 1) * page_size,
        "partOf": {"id": urls.activity(), "type": "OrderedCollection"},
    }
    if page > 1:
        doc["prev"] = {"id": urls.activity(page - 1), "type": "OrderedCollectionPage"}
    if page < last:
        doc["next"] = {"id": urls.activity(page + 1), "type": "OrderedCollectionPage"}
    doc["orderedItems"] = [
        {
            "id": f"{urls.activity()}/{c['seq']}",
            "type": _ACTIVITY.get(c["kind"], "Update"),
            "object": activity_object(c, urls),
            "endTime": iso(float(c["at"])),
        }
        for c in changes
    ]
    return doc


def manifest_collection(manifests: Sequence[Mapping[str, Any]], *, urls: Urls, label: str,
                        labels: Mapping[str, dict[str, list[str]] | None] | None = None) -> dict[str, Any]:
    """A Presentation 3 Collection of every ingested manifest, each pointing at its augmented manifest.

    ``labels``: manifest id → its label as a language map (kept as the source gave it)."""
    return {
        "@context": PREZI3_CONTEXT,
        "id": urls.collection(),
        "type": "Collection",
        "label": lang_map(label, "en"),
        "service": search_services_v3(urls, None),
        "items": [
            {"id": urls.manifest(m["id"]), "type": "Manifest",
             "label": (labels or {}).get(m["id"]) or lang_map(m["label"] or m["uri"])}
            for m in manifests
        ],
    }
