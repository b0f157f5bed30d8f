"""IIIF Content Search 1.0 and 2.0, and autocomplete, over the text around the pictures."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..iiif import search
from ..iiif.common import SEARCH1_MEDIA, SEARCH2_MEDIA
from .errors import ApiError
from .state import JsonLd, int_param, manifest_row, query_params, state


def _search(request: Request, version: int) -> Response:
    st = state(request)
    ref = request.path_params.get("manifest")
    manifest_id = manifest_row(request, ref)["id"] if ref else None
    params = query_params(request)
    q = params.get("q", "")
    size = st.options.search_page_size
    page = int_param(request, "page", 1, 1, 1_000_000)
    hits: list[search.SearchHit] = []
    total = 0
    if q.strip() and search.motivation_matches(params.get("motivation")):
        try:
            result = st.text_index().search(q, manifest_id=manifest_id, limit=size, offset=(page - 1) * size)
        except ValueError as exc:
            raise ApiError(400, str(exc)) from None
        total = result.total
        views = st.store.regions_by_id([m.region_id for m in result.matches])
        for match in result.matches:
            view = views.get(match.region_id)
            if view is not None:  # deleted since the index last synced
                hits.append(search.SearchHit(view, [search.Snippet(*s) for s in match.snippets()], match.score))
    paging = search.Paging(page=page, size=size, total=total)
    if version == 1:
        return JsonLd(search.search1(hits, urls=st.urls, manifest_id=manifest_id, params=params, paging=paging),
                      SEARCH1_MEDIA)
    return JsonLd(search.search2(hits, urls=st.urls, manifest_id=manifest_id, params=params, paging=paging),
                  SEARCH2_MEDIA)


def search1_route(request: Request) -> Response:
    return _search(request, 1)


def search2_route(request: Request) -> Response:
    return _search(request, 2)


def _autocomplete(request: Request, version: int) -> Response:
    st = state(request)
    ref = request.path_params.get("manifest")
    manifest_id = manifest_row(request, ref)["id"] if ref else None
    params = query_params(request)
    if "q" not in params:
        raise ApiError(400, "autocomplete needs the q parameter")
    min_count = int_param(request, "min", 1, 1, 1_000_000)
    terms = st.text_index().terms(params["q"], manifest_id=manifest_id, min_count=min_count)
    build = search.autocomplete1 if version == 1 else search.autocomplete2
    doc = build(terms, urls=st.urls, manifest_id=manifest_id, params=params)
    return JsonLd(doc, SEARCH1_MEDIA if version == 1 else SEARCH2_MEDIA)


def autocomplete1_route(request: Request) -> Response:
    return _autocomplete(request, 1)


def autocomplete2_route(request: Request) -> Response:
    return _autocomplete(request, 2)


ROUTES = [
    Route("/search/1", search1_route),
    Route("/search/1/{manifest}", search1_route),
    Route("/search/2", search2_route),
    Route("/search/2/{manifest}", search2_route),
    Route("/autocomplete/1", autocomplete1_route),
    Route("/autocomplete/1/{manifest}", autocomplete1_route),
    Route("/autocomplete/2", autocomplete2_route),
    Route("/autocomplete/2/{manifest}", autocomplete2_route),
]
