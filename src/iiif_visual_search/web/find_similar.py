"""Find similar: by region, uploaded picture, picture URL, vector, canvas box or text, answered as an
IIIF AnnotationPage."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..iiif import search, similar
from ..iiif.common import PREZI3_MEDIA
from ..index.model_choice import default_model
from .errors import ApiError
from .images import crop_canvas_box, decode_image, parse_xywh
from .outbound import fetch_bytes, read_catalogue_image
from .local_books import local_image_file
from .state import (
    DEFAULT_MODEL,
    JsonLd,
    State,
    int_param,
    list_param,
    manifest_row,
    query_params,
    state,
)


def _hit_fields(hit: Any) -> tuple[str, float, dict[str, Any]]:
    """(region id, rank-consistent score, raw parts of the score: cosine and inliers where known)."""
    if isinstance(hit, dict):
        return str(hit["region_id"]), float(hit["score"]), {}
    if isinstance(hit, tuple):
        return str(hit[0]), float(hit[1]), {}
    # similar.Hit names the region ``region``; accept ``region_id`` too.
    parts = {"cosine": getattr(hit, "cosine", None), "inliers": getattr(hit, "inliers", 0) or None}
    return str(getattr(hit, "region", None) or hit.region_id), float(hit.score), \
        {k: v for k, v in parts.items() if v is not None}


def _similar_answer(request: Request, *, query: dict[str, Any], query_label: str, region_id: str | None,
                    paged: bool = True) -> Response:
    st = state(request)
    opts = st.options
    params = query_params(request)
    model = params.get("model") or default_model(st.settings.data_dir, fallback=DEFAULT_MODEL)
    k = int_param(request, "k", opts.similar_default_k, 1, opts.similar_max_k)
    size = int_param(request, "size", k, 1, opts.similar_max_k) if paged else k
    page = int_param(request, "page", 1, 1, 1_000_000) if paged else 1
    manifest_ref = params.get("manifest")
    manifest_id = manifest_row(request, manifest_ref)["id"] if manifest_ref else None
    # Without ``exclude`` the configured junk classes are left out; ``exclude=`` (empty) leaves out nothing.
    exclude = list_param(request, "exclude") if "exclude" in request.query_params else st.settings.hidden_classes
    raw_hits = st.find_similar(model=model, k=k, manifest=manifest_id, classes=list_param(request, "class") or None,
                               exclude_classes=list(exclude) or None, **query)
    triples = [_hit_fields(h) for h in raw_hits]
    triples = [t for t in triples if t[0] != region_id][:k]
    total = len(triples)
    start = (page - 1) * size
    window = triples[start:start + size]
    views = st.store.regions_by_id([rid for rid, _, _ in window])
    hits = [similar.SimilarHit(views[rid], score, parts) for rid, score, parts in window if rid in views]
    paging = search.Paging(page=page, size=size, total=total)
    doc = similar.similar_page(hits, urls=st.urls, query_label=query_label, region_id=region_id,
                               params=params, paging=paging, model=model)
    return JsonLd(doc, PREZI3_MEDIA)


def similar_region_route(request: Request) -> Response:
    region_id = request.path_params["region"]
    if state(request).store.region(region_id) is None:
        raise ApiError(404, f"no region {region_id!r} in the catalogue")
    return _similar_answer(request, query={"region_id": region_id}, query_label=f"region {region_id}",
                           region_id=region_id)


def _fetch_canvas_image(st: State, url: str) -> bytes:
    """The page image of an ingested canvas. Its server failing is not the client's fault: 502, not 422."""
    opts = st.options
    try:
        return read_catalogue_image(url, max_bytes=opts.max_fetch_bytes, timeout_s=opts.fetch_timeout_s,
                                    allow_private=opts.allow_private_urls)
    except ApiError as exc:
        if exc.status == 422:
            raise ApiError(502, f"the canvas's image server failed: {exc.message}") from None
        raise


def _canvas_crop(st: State, canvas_ref: str, xywh_value: str) -> Any:
    canvases = st.store.canvases_by_uri(canvas_ref)
    if not canvases:
        raise ApiError(404, f"no ingested canvas {canvas_ref!r}")
    canvas = canvases[0]
    box = parse_xywh(xywh_value, canvas["width"], canvas["height"])
    opts = st.options
    if canvas["image_service"]:
        sx = (canvas["image_width"] or canvas["width"]) / canvas["width"]
        sy = (canvas["image_height"] or canvas["height"]) / canvas["height"]
        x, y, w, h = int(box[0] * sx), int(box[1] * sy), max(1, int(box[2] * sx)), max(1, int(box[3] * sy))
        width = min(w, 768)
        url = f"{canvas['image_service'].rstrip('/')}/{x},{y},{w},{h}/{width},/0/default.jpg"
        data = _fetch_canvas_image(st, url)
        return decode_image(data, opts.max_image_pixels)
    if canvas["image_url"]:
        local = local_image_file(canvas["manifest_url"], canvas["image_url"])
        data = local.read_bytes() if local is not None else _fetch_canvas_image(st, canvas["image_url"])
        return crop_canvas_box(decode_image(data, opts.max_image_pixels), box, canvas["width"], canvas["height"])
    raise ApiError(422, f"canvas {canvas_ref!r} has no image to crop")


def _image_from_url(st: State, url: str) -> Any:
    opts = st.options
    data = fetch_bytes(url, max_bytes=opts.max_fetch_bytes, timeout_s=opts.fetch_timeout_s,
                       allow_private=opts.allow_private_urls)
    return decode_image(data, opts.max_image_pixels)


def similar_get_route(request: Request) -> Response:
    st = state(request)
    params = query_params(request)
    if params.get("text", "").strip():
        text = params["text"].strip()[:1000]
        return _similar_answer(request, query={"text": text}, query_label=f'text "{text}"', region_id=None)
    if params.get("image_url"):
        image = _image_from_url(st, params["image_url"])
        return _similar_answer(request, query={"image": image}, query_label=params["image_url"], region_id=None)
    if params.get("canvas") and params.get("xywh"):
        image = _canvas_crop(st, params["canvas"], params["xywh"])
        return _similar_answer(request, query={"image": image},
                               query_label=f"{params['canvas']}#xywh={params['xywh']}", region_id=None)
    raise ApiError(400, "GET /similar needs text=, image_url= or canvas= with xywh= "
                        "(or use GET /similar/{region}, or POST an image)")


def _vector(value: Any) -> np.ndarray:
    if not isinstance(value, list) or not value or len(value) > 8192:
        raise ApiError(422, "vector must be a non-empty list of at most 8192 numbers")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        raise ApiError(422, "vector must hold numbers only")
    with np.errstate(over="ignore"):  # 1e39 becomes inf here and is refused just below
        vector = np.asarray(value, dtype=np.float32)
    if not np.all(np.isfinite(vector)):
        raise ApiError(422, "vector holds NaN or infinity")
    norm = float(np.linalg.norm(vector))
    if norm == 0.0 or math.isnan(norm):
        raise ApiError(422, "vector is all zeros")
    return vector / norm


async def similar_post_route(request: Request) -> Response:
    st = state(request)
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "multipart/form-data":
        try:
            form = await request.form(max_files=1, max_fields=20, max_part_size=st.options.max_body_bytes)
        except HTTPException as exc:
            raise ApiError(400 if exc.status_code < 500 else 413, f"bad multipart body: {exc.detail}") from None
        upload = form.get("image") or form.get("file")
        if upload is None or isinstance(upload, str):
            raise ApiError(422, "multipart body needs an 'image' file field")
        data = await upload.read()
        image = await run_in_threadpool(decode_image, data, st.options.max_image_pixels)
        name = getattr(upload, "filename", "") or "uploaded image"
        return await run_in_threadpool(_similar_answer, request, query={"image": image},
                                       query_label=f"upload {name}", region_id=None, paged=False)
    if ctype in ("application/json", "application/ld+json"):
        try:
            body = json.loads(await request.body() or b"null")
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ApiError(400, f"invalid JSON body: {exc}") from None
        except RecursionError:  # "[[[[..." nested deeper than the parser's stack: a 500 otherwise
            raise ApiError(400, "invalid JSON body: nested too deeply") from None
        if not isinstance(body, dict):
            raise ApiError(422, "JSON body must be an object with vector, image_url, text or canvas + xywh")
        if "vector" in body:
            vector = _vector(body["vector"])
            return await run_in_threadpool(_similar_answer, request, query={"vector": vector},
                                           query_label=f"vector of {vector.shape[0]} numbers", region_id=None,
                                           paged=False)
        if isinstance(body.get("image_url"), str):
            image = await run_in_threadpool(_image_from_url, st, body["image_url"])
            return await run_in_threadpool(_similar_answer, request, query={"image": image},
                                           query_label=body["image_url"], region_id=None, paged=False)
        if isinstance(body.get("canvas"), str) and body.get("xywh") is not None:
            xywh_value = body["xywh"]
            if isinstance(xywh_value, list):
                xywh_value = ",".join(str(v) for v in xywh_value)
            image = await run_in_threadpool(_canvas_crop, st, body["canvas"], str(xywh_value))
            return await run_in_threadpool(_similar_answer, request, query={"image": image},
                                           query_label=f"{body['canvas']}#xywh={xywh_value}", region_id=None,
                                           paged=False)
        if isinstance(body.get("text"), str) and body["text"].strip():
            text = body["text"].strip()[:1000]
            return await run_in_threadpool(_similar_answer, request, query={"text": text},
                                           query_label=f'text "{text}"', region_id=None, paged=False)
        raise ApiError(422, "JSON body needs one of: vector, image_url, text, or canvas with xywh")
    raise ApiError(415, "POST /similar takes multipart/form-data (an 'image' file) or application/json")


async def similar_route(request: Request) -> Response:
    # One route for both methods: with two, a 405 named only the first route's methods in Allow.
    if request.method == "POST":
        return await similar_post_route(request)
    return await run_in_threadpool(similar_get_route, request)


ROUTES = [
    Route("/similar", similar_route, methods=["GET", "POST"]),
    Route("/similar/{region}", similar_region_route),
]
