"""A map's clusters as IIIF: one Presentation 3 AnnotationCollection per model, one AnnotationPage per
cluster, holding the cluster's regions as the same annotations every other answer gives (``annotations``).

Pages are chained with ``next``/``prev`` in cluster order and name their collection in ``partOf``, so a
harvester walks them like ``/annotations``, and Mirador or any P3 client loads a page on its own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from .annotations import region_annotation
from .common import PREZI3_CONTEXT, RegionView, Urls, lang_map


def collection_url(urls: Urls, key: str) -> str:
    return f"{urls.base}/clusters/{quote(key, safe='')}"


def page_url(urls: Urls, key: str, cluster: int) -> str:
    return f"{collection_url(urls, key)}/{int(cluster)}"


def _collection_ref(urls: Urls, key: str, model: str) -> dict[str, Any]:
    return {"id": collection_url(urls, key), "type": "AnnotationCollection",
            "label": lang_map(f"Clusters of the pictures, by {model}", "en")}


def cluster_collection(*, urls: Urls, key: str, model: str, clusters: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The collection: ``total`` annotations over all cluster pages, ``first`` and ``last`` page."""
    doc: dict[str, Any] = {"@context": PREZI3_CONTEXT, **_collection_ref(urls, key, model)}
    total = sum(int(c["size"]) for c in clusters)
    if clusters and total > 0:  # the P3 schema refuses total 0
        doc["total"] = total
        doc["first"] = {"id": page_url(urls, key, clusters[0]["id"]), "type": "AnnotationPage"}
        doc["last"] = {"id": page_url(urls, key, clusters[-1]["id"]), "type": "AnnotationPage"}
    return doc


def cluster_page(cluster: Mapping[str, Any], regions: Sequence[RegionView], *, urls: Urls, key: str, model: str,
                 prev_id: int | None, next_id: int | None) -> dict[str, Any]:
    """One cluster: its name as the page label, its regions as annotations."""
    doc: dict[str, Any] = {
        "@context": PREZI3_CONTEXT,
        "id": page_url(urls, key, cluster["id"]),
        "type": "AnnotationPage",
        "label": lang_map(str(cluster["label"]), "en"),
        "partOf": [_collection_ref(urls, key, model)],
    }
    if prev_id is not None:
        doc["prev"] = {"id": page_url(urls, key, prev_id), "type": "AnnotationPage"}
    if next_id is not None:
        doc["next"] = {"id": page_url(urls, key, next_id), "type": "AnnotationPage"}
    doc["items"] = [region_annotation(r, urls) for r in regions]
    return doc


def activity_object(object_id: str, urls: Urls) -> dict[str, Any]:
    """A cluster in Change Discovery (object id ``<map key>/<cluster id>``): its AnnotationPage."""
    key, _, cluster = object_id.rpartition("/")
    return {"id": page_url(urls, key, int(cluster) if cluster.lstrip("-").isdigit() else 0), "type": "AnnotationPage"}
