"""For harvesters: every region annotation as an AnnotationCollection, and IIIF Change Discovery."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..iiif import harvest
from ..iiif.common import DISCOVERY_MEDIA, PREZI3_MEDIA
from .errors import ApiError
from .state import JsonLd, state


def annotations_route(request: Request) -> Response:
    st = state(request)
    doc = harvest.annotation_collection(urls=st.urls, total=st.store.count_regions(),
                                        last_seq=st.store.last_region_seq(), page_size=st.options.harvest_page_size)
    return JsonLd(doc, PREZI3_MEDIA)


def annotations_page_route(request: Request) -> Response:
    st = state(request)
    size = st.options.harvest_page_size
    last = harvest.page_count(st.store.last_region_seq(), size)
    page = request.path_params["n"]
    if page < 1 or page > last:
        raise ApiError(404, f"no annotation page {page} (there are {last})")
    regions = st.store.regions_in_seq((page - 1) * size, page * size)
    doc = harvest.annotation_harvest_page(regions, urls=st.urls, page=page, last_page=last)
    return JsonLd(doc, PREZI3_MEDIA)


def activity_route(request: Request) -> Response:
    st = state(request)
    doc = harvest.activity_collection(urls=st.urls, total=st.store.count_changes(),
                                      last_seq=st.store.last_change_seq(), page_size=st.options.activity_page_size)
    return JsonLd(doc, DISCOVERY_MEDIA)


def activity_page_route(request: Request) -> Response:
    st = state(request)
    size = st.options.activity_page_size
    last_seq = st.store.last_change_seq()
    page = request.path_params["n"]
    if page < 1 or (page - 1) * size >= last_seq:
        raise ApiError(404, f"no activity page {page}")
    changes = st.store.changes_in_seq((page - 1) * size, page * size)
    last = harvest.page_count(last_seq, size)
    return JsonLd(harvest.activity_page(changes, urls=st.urls, page=page, last_page=last, page_size=size),
                  DISCOVERY_MEDIA)


ROUTES = [
    Route("/annotations", annotations_route),
    Route("/annotations/page/{n:int}", annotations_page_route),
    Route("/activity", activity_route),
    Route("/activity/page/{n:int}", activity_page_route),
]
