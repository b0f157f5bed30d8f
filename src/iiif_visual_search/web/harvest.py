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
                                        page_size=st.options.harvest_page_size)
    return JsonLd(doc, PREZI3_MEDIA)


def annotations_page_route(request: Request) -> Response:
    st = state(request)
    size = st.options.harvest_page_size
    total = st.store.count_regions()
    page = request.path_params["n"]
    if page < 1 or (page - 1) * size >= max(total, 1):
        raise ApiError(404, f"no annotation page {page} (there are {max(1, -(-total // size))})")
    regions = st.store.regions_page((page - 1) * size, size)
    doc = harvest.annotation_harvest_page(regions, urls=st.urls, page=page, total=total, page_size=size)
    return JsonLd(doc, PREZI3_MEDIA)


def activity_route(request: Request) -> Response:
    st = state(request)
    doc = harvest.activity_collection(urls=st.urls, total=st.store.count_changes(),
                                      page_size=st.options.activity_page_size)
    return JsonLd(doc, DISCOVERY_MEDIA)


def activity_page_route(request: Request) -> Response:
    st = state(request)
    size = st.options.activity_page_size
    total = st.store.count_changes()
    page = request.path_params["n"]
    if page < 1 or (page - 1) * size >= total:
        raise ApiError(404, f"no activity page {page}")
    changes = st.store.changes((page - 1) * size, size)
    return JsonLd(harvest.activity_page(changes, urls=st.urls, page=page, total=total, page_size=size),
                  DISCOVERY_MEDIA)


ROUTES = [
    Route("/annotations", annotations_route),
    Route("/annotations/page/{n:int}", annotations_page_route),
    Route("/activity", activity_route),
    Route("/activity/page/{n:int}", activity_page_route),
]
