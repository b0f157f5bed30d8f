"""Augmented manifests: the source manifest, its version kept, with our services and region links added.

The manifest ``id`` becomes our URL (it is a new document, published here); canvas ids stay byte-identical,
because every region annotation targets them. The source manifest is linked from ``seeAlso``/``within``.
"""

from __future__ import annotations

import copy
from collections.abc import Collection, Mapping
from typing import Any

from .common import AUTOCOMPLETE1_PROFILE, PREZI3_CONTEXT, SEARCH1_CONTEXT, SEARCH1_PROFILE, Urls


def search_services_v3(urls: Urls, mid: str | None) -> list[dict[str, Any]]:
    """SearchService1 (with the 1.0 profile, which is how Mirador 4 finds it) and SearchService2."""
    return [
        {
            "id": urls.search(1, mid),
            "type": "SearchService1",
            "profile": SEARCH1_PROFILE,
            "service": [{"id": urls.autocomplete(1, mid), "type": "AutoCompleteService1",
                         "profile": AUTOCOMPLETE1_PROFILE}],
        },
        {
            "id": urls.search(2, mid),
            "type": "SearchService2",
            "service": [{"id": urls.autocomplete(2, mid), "type": "AutoCompleteService2"}],
        },
    ]


def search_services_v2(urls: Urls, mid: str) -> list[dict[str, Any]]:
    """Content Search 1.0 only: a v2 client reads services by ``@id`` and ``profile`` (the 2.1 validator
    refuses a service without ``@id``), and Search 2.0 is a Presentation 3 service. v2 clients that want
    2.0 find it on the v3 Collection (``/collection``)."""
    return [
        {
            "@context": SEARCH1_CONTEXT,
            "@id": urls.search(1, mid),
            "profile": SEARCH1_PROFILE,
            "service": {"@id": urls.autocomplete(1, mid), "profile": AUTOCOMPLETE1_PROFILE},
        },
    ]


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _id(obj: Any) -> str:
    if isinstance(obj, str):
        return obj
    if isinstance(obj, dict):
        value = obj.get("id") or obj.get("@id") or ""
        return value if isinstance(value, str) else ""
    return ""


def canvases_of(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """The canvas dicts, decided by structure as the reader does (v3 ``items``, v2 first sequence)."""
    if isinstance(manifest.get("items"), list):
        return [c for c in manifest["items"] if isinstance(c, dict)]
    sequences = _as_list(manifest.get("sequences"))
    if sequences and isinstance(sequences[0], dict):
        return [c for c in _as_list(sequences[0].get("canvases")) if isinstance(c, dict)]
    return []


def augment_manifest(raw: Mapping[str, Any], *, version: int, manifest_id: str, source_uri: str,
                     canvas_positions: Mapping[str, int], urls: Urls,
                     with_regions: Collection[int] | None = None) -> dict[str, Any]:
    """A copy of ``raw`` with search services and, on each canvas with regions, a link to its region page.

    ``canvas_positions`` maps canvas ids (as the catalogue stored them) to their position; canvases not in
    it fall back to their place in the manifest, which is how the reader numbered them. ``with_regions``:
    the positions that have regions (None: link every canvas). A page with no annotation is not linked
    (Presentation 3: an AnnotationPage SHOULD have items), and viewers then need not fetch it.

    Our page comes first among the canvas's pages: TIFY reads only the first one.
    """
    doc = copy.deepcopy(dict(raw))
    if version >= 3:
        doc["id"] = urls.manifest(manifest_id)
        doc.pop("@id", None)
        doc["service"] = search_services_v3(urls, manifest_id) + _other_services(doc, urls)
        if source_uri and source_uri != doc["id"]:
            doc["seeAlso"] = _as_list(doc.get("seeAlso")) + [{
                "id": source_uri, "type": "Dataset", "format": "application/ld+json",
                "profile": PREZI3_CONTEXT, "label": {"en": ["Source manifest"]},
            }]
    else:
        doc["@id"] = urls.manifest(manifest_id)
        doc["service"] = search_services_v2(urls, manifest_id) + _other_services(doc, urls)
        if source_uri and source_uri != doc["@id"]:
            doc["seeAlso"] = _as_list(doc.get("seeAlso")) + [{"@id": source_uri, "format": "application/ld+json"}]
    for place, canvas in enumerate(canvases_of(doc)):
        position = canvas_positions.get(_id(canvas), place)
        ours = with_regions is None or position in with_regions
        if version >= 3:
            link = {"id": urls.regions(manifest_id, position), "type": "AnnotationPage"}
            pages = [p for p in _as_list(canvas.get("annotations")) if not _is_our_page(p, urls)]
            if ours or pages:
                canvas["annotations"] = ([link] if ours else []) + pages
            else:
                canvas.pop("annotations", None)
        else:
            link2 = {"@id": urls.regions(manifest_id, position, version=2), "@type": "sc:AnnotationList"}
            lists = [p for p in _as_list(canvas.get("otherContent")) if not _is_our_page(p, urls)]
            if ours or lists:
                canvas["otherContent"] = ([link2] if ours else []) + lists
            else:
                canvas.pop("otherContent", None)
    return doc


def _other_services(doc: Mapping[str, Any], urls: Urls) -> list[Any]:
    """The source's services, less any Content Search service.

    Viewers take the first search service they understand (Mirador 4: the first search/0, then search/1), so
    a source's own search would hide ours, which searches the text around the pictures. The source's search
    stays reachable through the source manifest, linked from ``seeAlso``.
    """
    return [s for s in _as_list(doc.get("service")) if not _is_ours(s, urls) and not _is_search(s)]


def _is_search(service: Any) -> bool:
    if not isinstance(service, Mapping):
        return False
    kinds = [str(service.get(k) or "") for k in ("profile", "type", "@type")]
    return any("iiif.io/api/search/" in k or k.startswith("SearchService") for k in kinds)


def _is_our_page(page: Any, urls: Urls) -> bool:
    # A manifest ingested from our own server already links our region pages.
    return _id(page).startswith(urls.base + "/iiif/") and "/regions" in _id(page)


def _is_ours(service: Any, urls: Urls) -> bool:
    # Re-augmenting (a manifest ingested from our own server) must not stack duplicate services.
    return _id(service).startswith(urls.base + "/search/")
