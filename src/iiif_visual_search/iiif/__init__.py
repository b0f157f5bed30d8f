"""Catalogue rows → IIIF JSON. Pure functions, no I/O: the web layer fetches rows and sends the result."""

from .annotations import region_annotation, region_list_v2, region_page, standalone_annotation, text_annotation
from .common import RegionView, Urls, image_region_url, thumbnail
from .harvest import (activity_collection, activity_page, annotation_collection, annotation_harvest_page,
                      manifest_collection)
from .manifests import augment_manifest, search_services_v3
from .search import Paging, SearchHit, Snippet, autocomplete1, autocomplete2, search1, search2
from .similar import SimilarHit, similar_page

__all__ = [
    "Paging", "RegionView", "SearchHit", "SimilarHit", "Snippet", "Urls", "activity_collection", "activity_page",
    "annotation_collection", "annotation_harvest_page", "augment_manifest", "autocomplete1", "autocomplete2",
    "image_region_url", "manifest_collection", "region_annotation", "region_list_v2", "region_page",
    "search1", "search2", "search_services_v3", "similar_page", "standalone_annotation", "text_annotation",
    "thumbnail",
]
