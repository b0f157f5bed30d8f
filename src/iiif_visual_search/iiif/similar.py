"""Find-similar answers as a Presentation 3 AnnotationPage (no IIIF standard exists for this).

Each item highlights the hit's region on its canvas (SpecificResource + integer FragmentSelector, the canvas
``partOf`` its manifest with a label, as Content State does), carries the class label as a tagging body,
the score in a describing body and as ``score`` (it never rises down the list; its raw parts, ``cosine`` and
``inliers``, where known), a thumbnail, and ``canonical`` = the region annotation.
The page validates against the Presentation 3 schema, which ``startIndex``/``ignored`` would break.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .annotations import class_label, region_target
from .common import PREZI3_CONTEXT, RegionView, Urls, lang_map, thumbnail
from .search import Paging


@dataclass(frozen=True)
class SimilarHit:
    region: RegionView
    score: float                                             # never rises down the list
    parts: Mapping[str, Any] = field(default_factory=dict)   # the raw parts: cosine, inliers


def _page_params(params: Mapping[str, Any], page: int | None) -> dict[str, Any]:
    # Every page names its number, page 1 too: without it the first page had the collection's id, and JSON-LD
    # merged the AnnotationCollection and its first AnnotationPage into one node.
    kept = {k: v for k, v in params.items() if k != "page"}
    if page is not None:
        kept["page"] = page
    return kept


def similar_page(hits: Sequence[SimilarHit], *, urls: Urls, query_label: str, region_id: str | None,
                 params: Mapping[str, Any], paging: Paging, model: str) -> dict[str, Any]:
    """``region_id`` is the query region for ``GET /similar/{region}``; None for the other query kinds."""
    page_id = urls.similar(region_id, _page_params(params, paging.page))
    ref = lambda n: {"id": urls.similar(region_id, _page_params(params, n)), "type": "AnnotationPage"}  # noqa: E731
    collection: dict[str, Any] = {
        "id": urls.similar(region_id, _page_params(params, None)),
        "type": "AnnotationCollection",
        "label": lang_map(f"Similar regions: {query_label}", "en"),
    }
    if paging.total > 0:
        collection["total"] = paging.total  # the schema refuses total 0
        collection["first"] = ref(1)
        collection["last"] = ref(paging.last_page)
    doc: dict[str, Any] = {
        "@context": PREZI3_CONTEXT,
        "id": page_id,
        "type": "AnnotationPage",
        "label": lang_map(f"Similar regions ({model}): {query_label}", "en"),
        "partOf": [collection],
    }
    if paging.page < paging.last_page:
        doc["next"] = ref(paging.page + 1)
    if paging.page > 1:
        doc["prev"] = ref(paging.page - 1)
    items = []
    for rank, hit in enumerate(hits, start=paging.start_index + 1):
        region = hit.region
        score = round(float(hit.score), 6)
        item: dict[str, Any] = {
            "id": f"{page_id}#hit-{rank}",
            "type": "Annotation",
            "motivation": "highlighting",
            "canonical": urls.annotation(region.manifest_id, region.id),
            "body": [
                {"type": "TextualBody", "value": class_label(region), "format": "text/plain", "language": "en",
                 "purpose": "tagging"},
                {"type": "TextualBody", "value": f"similarity {score:.4f} (rank {rank}, model {model})",
                 "format": "text/plain", "language": "en", "purpose": "describing"},
            ],
            "target": region_target(region, urls),
            "score": score,
            "rank": rank,
            "region": region.id,
            **{k: round(float(v), 6) if isinstance(v, float) else v for k, v in hit.parts.items()},
        }
        if region.probability is not None:
            item["probability"] = round(float(region.probability), 4)
        thumb = thumbnail(region, urls)
        if thumb:
            item["thumbnail"] = thumb
        items.append(item)
    doc["items"] = items
    return doc
