"""IIIF Presentation answers: augmented manifests, region annotation pages, single annotations, the
collection of every manifest, and the cached region images."""

from __future__ import annotations

import io
import json
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from ..iiif import annotations as anno
from ..iiif import harvest, manifests
from ..iiif.common import PREZI2_MEDIA, PREZI3_MEDIA, RegionView
from ..iiif.local_books import is_http, publish_local_manifest
from .errors import ApiError
from .local_books import is_local_book
from .state import JsonLd, int_param, manifest_row, state


def manifest_route(request: Request) -> Response:
    st = state(request)
    row = manifest_row(request, request.path_params["manifest"])
    if not row["raw"]:
        raise ApiError(503, f"manifest {row['id']} was ingested without its JSON; ingest it again")
    local = is_local_book(row["url"])
    doc = manifests.augment_manifest(
        json.loads(row["raw"]), version=row["version"], manifest_id=row["id"],
        source_uri="" if local and not is_http(row["uri"]) else row["uri"],
        canvas_positions=st.store.canvas_positions(row["id"]), urls=st.urls,
        with_regions=st.store.positions_with_regions(row["id"]))
    if local:
        doc = publish_local_manifest(doc, version=row["version"], manifest_id=row["id"],
                                     canvases=st.store.local_canvases(row["id"], row["url"]), urls=st.urls)
    return JsonLd(doc, PREZI3_MEDIA if row["version"] >= 3 else PREZI2_MEDIA)


def regions_route(request: Request) -> Response:
    st = state(request)
    row = manifest_row(request, request.path_params["manifest"])
    position = request.path_params["n"]
    canvas = st.store.canvas_at(row["id"], position)
    if canvas is None:
        raise ApiError(404, f"manifest {row['id']} has no canvas at position {position}")
    version = int_param(request, "version", row["version"], 2, 3)
    include_all = request.query_params.get("all", "").lower() in ("1", "true", "yes")
    regions = st.store.canvas_regions(canvas["id"], include_noise=include_all)
    if version == 2:
        return JsonLd(anno.region_list_v2(row["id"], position, regions, st.urls, all_regions=include_all),
                      PREZI2_MEDIA)
    return JsonLd(anno.region_page(row["id"], position, regions, st.urls, explicit_version=row["version"] < 3,
                                   all_regions=include_all), PREZI3_MEDIA)


def _region_of_manifest(request: Request) -> RegionView:
    row = manifest_row(request, request.path_params["manifest"])
    region = state(request).store.region(request.path_params["region"])
    if region is None or region.manifest_id != row["id"]:
        raise ApiError(404, f"no region {request.path_params['region']!r} in manifest {row['id']}")
    return region


def annotation_route(request: Request) -> Response:
    return JsonLd(anno.standalone_annotation(_region_of_manifest(request), state(request).urls), PREZI3_MEDIA)


def text_annotation_route(request: Request) -> Response:
    return JsonLd(anno.standalone_text_annotation(_region_of_manifest(request), state(request).urls), PREZI3_MEDIA)


def collection_route(request: Request) -> Response:
    st = state(request)
    manifests = st.store.manifests()
    doc = harvest.manifest_collection(manifests, urls=st.urls, label=st.options.collection_label,
                                      labels=st.store.label_maps(m["id"] for m in manifests))
    return JsonLd(doc, PREZI3_MEDIA)


def region_image_route(request: Request) -> Response:
    st = state(request)
    path = st.store.region_image_path(request.path_params["region"])
    if not path:
        raise ApiError(404, f"no cached image for region {request.path_params['region']!r} (run 'ivs fetch')")
    file = Path(path)
    if not file.is_absolute():
        file = st.settings.data_dir / file
    if not file.is_file():
        raise ApiError(404, f"the cached image of region {request.path_params['region']!r} is missing")
    width = int_param(request, "w", 0, 16, 1024)
    if width:
        return FileResponse(_resized(st.settings.data_dir, file, width), media_type="image/jpeg",
                            headers={"Cache-Control": "public, max-age=86400"})
    return FileResponse(file, media_type="image/jpeg")


def _resized(data_dir: Path, file: Path, width: int) -> Path:
    """A copy of a cached region image at most ``width`` wide, kept beside the cache (the search page's
    300-pixel cards asked for the full image, up to 1024 pixels and half a megabyte each)."""
    from PIL import Image

    from ..files import atomic_write_bytes

    target = data_dir / "thumbs" / file.stem[:2] / f"{file.stem}-{width}.jpg"  # cache names: content hashes
    if not target.is_file():
        with Image.open(file) as image:
            if image.width <= width:
                return file
            image.thumbnail((width, 8 * width), Image.Resampling.LANCZOS)
            buf = io.BytesIO()
            image.convert("RGB").save(buf, "JPEG", quality=85)
        atomic_write_bytes(target, buf.getvalue(), durable=False)
    return target


ROUTES = [
    Route("/collection", collection_route),
    Route("/iiif/{manifest}/manifest", manifest_route),
    Route("/iiif/{manifest}/canvas/{n:int}/regions", regions_route),
    Route("/iiif/{manifest}/annotation/{region}", annotation_route),
    Route("/iiif/{manifest}/annotation/{region}/text", text_annotation_route),
    Route("/regions/{region}/image.jpg", region_image_route),
]
