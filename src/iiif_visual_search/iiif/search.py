"""Content Search 1.0 and 2.0 responses, and autocomplete 1.0 / 2.0 term lists.

1.0 is what Mirador 4 reads: an ``sc:AnnotationList`` with ``resources``, ``hits`` (before/match/after),
``within.total`` and a string ``next``. 2.0 is an AnnotationPage whose ``annotations`` hold one
``highlighting`` annotation per match with a TextQuoteSelector: each item's body is the whole text around a
picture and the match lies inside it, which is §4.3.2's case (``contextualizing``, §4.3.1, is for a match
whose item holds only the matched words).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .annotations import text_annotation
from .common import PREZI2_CONTEXT, SEARCH1_CONTEXT, SEARCH2_CONTEXT, RegionView, Urls

# Parameters both specs define; the ones we do not implement are reported in ``ignored``.
SPEC_PARAMS = ("q", "motivation", "date", "user")
IMPLEMENTED = ("q", "motivation")
AUTOCOMPLETE_IMPLEMENTED = ("q",)  # plus ``min``, which is not in SPEC_PARAMS
# Our hits are ``describing`` annotations; these motivation values select them.
MATCHING_MOTIVATIONS = {"describing", "oa:describing", "non-painting", "supplementing", "sc:supplementing"}


@dataclass(frozen=True)
class Snippet:
    prefix: str
    exact: str
    suffix: str


@dataclass
class SearchHit:
    region: RegionView
    snippets: list[Snippet] = field(default_factory=list)
    score: float = 0.0


@dataclass(frozen=True)
class Paging:
    page: int  # 1-based
    size: int
    total: int

    @property
    def last_page(self) -> int:
        return max(1, -(-self.total // self.size))

    @property
    def start_index(self) -> int:
        return (self.page - 1) * self.size


def ignored_params(params: Mapping[str, str], implemented: Sequence[str] = IMPLEMENTED) -> list[str]:
    return [p for p in SPEC_PARAMS if p in params and p not in implemented]


def motivation_matches(motivation: str | None) -> bool:
    """Whether a ``motivation`` filter (space separated, any-of) admits our describing annotations."""
    if not motivation or not motivation.strip():
        return True
    return any(m in MATCHING_MOTIVATIONS for m in motivation.split())


def _page_params(params: Mapping[str, str], page: int | None) -> dict[str, Any]:
    kept = {k: v for k, v in params.items() if k != "page" and k not in ("date", "user")}
    if page is not None:
        kept["page"] = page
    return kept


def search1(hits: Sequence[SearchHit], *, urls: Urls, manifest_id: str | None, params: Mapping[str, str],
            paging: Paging) -> dict[str, Any]:
    page_url = lambda n: urls.search(1, manifest_id, _page_params(params, n))  # noqa: E731
    # first and last always (Search 1.0 §3.4: SHOULD), even when one page holds every hit.
    # The layer (every hit) is the query without a page, each page names its number (as the spec's example):
    # one URI for both made JSON-LD read page 1 and the layer as one node, and the 2.1 validator wants an @id.
    within: dict[str, Any] = {"@id": page_url(None), "@type": "sc:Layer", "total": paging.total,
                              "first": page_url(1), "last": page_url(paging.last_page)}
    ignored = ignored_params(params)
    if ignored:
        within["ignored"] = ignored
    doc: dict[str, Any] = {
        "@context": [PREZI2_CONTEXT, SEARCH1_CONTEXT],
        "@id": page_url(paging.page),
        "@type": "sc:AnnotationList",
        "within": within,
        "startIndex": paging.start_index,
    }
    if paging.page < paging.last_page:
        doc["next"] = page_url(paging.page + 1)
    if paging.page > 1:
        doc["prev"] = page_url(paging.page - 1)
    resources, hit_list = [], []
    for hit in hits:
        region = hit.region
        anno_id = urls.text_annotation(region.manifest_id, region.id)
        on: Any = f"{region.canvas_uri}#{region.fragment}"
        if manifest_id is None:
            # Collection-wide: say which manifest the canvas is in (Search 1.0 §3.3.3).
            on = {"@id": on, "within": {"@id": urls.manifest(region.manifest_id), "@type": "sc:Manifest",
                                        "label": region.manifest_label or region.manifest_id}}
        resources.append({
            "@id": anno_id,
            "@type": "oa:Annotation",
            "motivation": "oa:describing",
            "resource": {"@type": "cnt:ContentAsText", "chars": region.text},
            "label": region.label or region.block_type,
            "on": on,
        })
        first = hit.snippets[0] if hit.snippets else None
        entry: dict[str, Any] = {"@type": "search:Hit", "annotations": [anno_id]}
        if first is not None:
            entry.update({"match": first.exact, "before": first.prefix, "after": first.suffix})
            if len(hit.snippets) > 1:
                entry["selectors"] = [
                    {"@type": "oa:TextQuoteSelector", "exact": s.exact, "prefix": s.prefix, "suffix": s.suffix}
                    for s in hit.snippets
                ]
        hit_list.append(entry)
    doc["resources"] = resources
    doc["hits"] = hit_list
    return doc


def search2(hits: Sequence[SearchHit], *, urls: Urls, manifest_id: str | None, params: Mapping[str, str],
            paging: Paging) -> dict[str, Any]:
    page_ref = lambda n: {"id": urls.search(2, manifest_id, _page_params(params, n)),  # noqa: E731
                          "type": "AnnotationPage"}
    doc: dict[str, Any] = {
        "@context": SEARCH2_CONTEXT,
        # page=1 too, as in the spec's example: without it page 1 had the AnnotationCollection's id.
        "id": urls.search(2, manifest_id, _page_params(params, paging.page)),
        "type": "AnnotationPage",
    }
    collection: dict[str, Any] = {
        "id": urls.search(2, manifest_id, _page_params(params, None)),
        "type": "AnnotationCollection",
        "total": paging.total,
        "first": page_ref(1),
        "last": page_ref(paging.last_page),
    }
    doc["partOf"] = collection
    if paging.page < paging.last_page:
        doc["next"] = page_ref(paging.page + 1)
    if paging.page > 1:
        doc["prev"] = page_ref(paging.page - 1)
    doc["startIndex"] = paging.start_index
    ignored = ignored_params(params)
    if ignored:
        doc["ignored"] = ignored
    items, contexts = [], []
    for hit in hits:
        anno = text_annotation(hit.region, urls, scoped=manifest_id is None)
        items.append(anno)
        for i, snippet in enumerate(hit.snippets):
            contexts.append({
                "id": f"{anno['id']}/match/{paging.page}-{i}",
                "type": "Annotation",
                "motivation": "highlighting",
                "target": {
                    "type": "SpecificResource",
                    "source": anno["id"],
                    "selector": [{"type": "TextQuoteSelector", "prefix": snippet.prefix, "exact": snippet.exact,
                                  "suffix": snippet.suffix}],
                },
            })
    doc["items"] = items
    if contexts:
        doc["annotations"] = [{"type": "AnnotationPage", "items": contexts}]
    return doc


def autocomplete1(terms: Sequence[tuple[str, int]], *, urls: Urls, manifest_id: str | None,
                  params: Mapping[str, str]) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "@context": SEARCH1_CONTEXT,
        "@id": urls.autocomplete(1, manifest_id, params),
        "@type": "search:TermList",
    }
    ignored = ignored_params(params, AUTOCOMPLETE_IMPLEMENTED)
    if ignored:
        doc["ignored"] = ignored
    doc["terms"] = [{"match": term, "url": urls.search(1, manifest_id, {"q": term}), "count": count}
                    for term, count in terms]
    return doc


def autocomplete2(terms: Sequence[tuple[str, int]], *, urls: Urls, manifest_id: str | None,
                  params: Mapping[str, str]) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "@context": SEARCH2_CONTEXT,
        "id": urls.autocomplete(2, manifest_id, params),
        "type": "TermPage",
    }
    ignored = ignored_params(params, AUTOCOMPLETE_IMPLEMENTED)
    if ignored:
        doc["ignored"] = ignored
    doc["items"] = [{"value": term, "total": count} for term, count in terms]
    return doc
