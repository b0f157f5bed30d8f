"""The Starlette application: IIIF JSON for viewers and harvesters, find-similar, health.

Handlers are thin: parse and check parameters, ask the catalogue / text index / vector search, hand the rows
to the pure builders in ``iiif/``. Blocking work runs in the thread pool (sync endpoints), so the event
loop keeps answering while a search runs. The catalogue is opened read-mostly; ingest may run in another
process at the same time (SQLite WAL), and the text index follows the change log (``TextIndex.sync``).
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .. import __version__
from ..catalogue import Catalogue
from ..config import Settings
from ..iiif import annotations as anno
from ..iiif import harvest, manifests, search, similar
from ..iiif.common import (DISCOVERY_MEDIA, PREZI2_MEDIA, PREZI3_MEDIA, SEARCH1_MEDIA, SEARCH2_MEDIA, RegionView,
                           Urls)
from ..index.text import TextIndex, open_text_index
from .errors import ApiError, api_error, error_response, http_error, server_error
from .images import crop_canvas_box, decode_image, fetch_bytes, parse_xywh
from .openapi import openapi
from .options import ServeOptions
from .pages import page_routes
from .store import Store

DEFAULT_MODEL = "siglip"


class JsonLd(JSONResponse):
    def __init__(self, content: Any, media: str, status_code: int = 200) -> None:
        super().__init__(content, status_code=status_code)
        self.headers["content-type"] = media

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class BodyLimit:
    """Refuses request bodies over the limit with 413, by Content-Length and by counting what arrives."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                await error_response(413, f"request body over the limit of {self.max_bytes} bytes")(
                    scope, receive, send)
                return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise ApiError(413, f"request body over the limit of {self.max_bytes} bytes")
            return message

        await self.app(scope, limited, send)


class AlwaysCors:
    """``Access-Control-Allow-Origin: *`` on every response, not only when the request sent an Origin
    (IIIF asks for CORS on all JSON, and caches then hold one variant)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                if not any(k.lower() == b"access-control-allow-origin" for k, _ in headers):
                    headers.append((b"access-control-allow-origin", b"*"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_cors)


class State:
    """What the handlers share: settings, the catalogue, the text index and its last sync time."""

    def __init__(self, settings: Settings, options: ServeOptions,
                 similar_backend: Callable[..., list[Any]] | None) -> None:
        self.settings = settings
        self.options = options
        self.urls = Urls(settings.base_url)
        self.catalogue = Catalogue(settings.catalogue_path)
        self.store = Store(self.catalogue)
        self.text: TextIndex = open_text_index(settings.data_dir, hidden_classes=settings.hidden_classes)
        self._synced_at = 0.0
        self._sync_lock = threading.Lock()
        self._similar_backend = similar_backend

    def text_index(self) -> TextIndex:
        now = time.monotonic()
        if now - self._synced_at >= self.options.index_sync_interval_s and self._sync_lock.acquire(blocking=False):
            try:
                self.text.sync(self.catalogue)
                self._synced_at = time.monotonic()
            finally:
                self._sync_lock.release()
        return self.text

    def find_similar(self, **kwargs: Any) -> list[Any]:
        backend = self._similar_backend
        if backend is None:
            try:
                from ..similar import find_similar  # issue 4: embeddings + FAISS; heavy, import on first use
            except ImportError as exc:
                raise ApiError(503, f"find-similar is not available in this installation ({exc})") from None
            backend = self._similar_backend = find_similar
        try:
            return backend(self.catalogue, self.settings, **kwargs)
        except ApiError:
            raise
        except FileNotFoundError as exc:
            raise ApiError(503, f"no vector index for model {kwargs.get('model')!r} yet: run 'ivs embed' "
                                f"and 'ivs index' ({exc})") from None
        except KeyError as exc:
            raise ApiError(404, f"not found: {exc}") from None
        except (ValueError, TypeError, NotImplementedError) as exc:
            raise ApiError(422, str(exc)) from None


def _state(request: Request) -> State:
    return request.app.state.ivs


# --- parameter helpers --------------------------------------------------------------------------------------


def _int(request: Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, f"parameter {name} must be an integer, got {raw!r}") from None
    if not lo <= value <= hi:
        raise ApiError(400, f"parameter {name} must be between {lo} and {hi}, got {value}")
    return value


def _list(request: Request, name: str) -> list[str]:
    return [v.strip() for raw in request.query_params.getlist(name) for v in raw.split(",") if v.strip()]


def _manifest(request: Request, ref: str) -> Any:
    row = _state(request).store.manifest(ref)
    if row is None:
        raise ApiError(404, f"no manifest {ref!r} in the catalogue")
    return row


def _params(request: Request) -> dict[str, str]:
    return {k: v for k, v in request.query_params.items()}


# --- IIIF presentation --------------------------------------------------------------------------------------


def manifest_route(request: Request) -> Response:
    st = _state(request)
    row = _manifest(request, request.path_params["manifest"])
    if not row["raw"]:
        raise ApiError(503, f"manifest {row['id']} was ingested without its JSON; ingest it again")
    doc = manifests.augment_manifest(
        json.loads(row["raw"]), version=row["version"], manifest_id=row["id"], source_uri=row["uri"],
        canvas_positions=st.store.canvas_positions(row["id"]), urls=st.urls)
    return JsonLd(doc, PREZI3_MEDIA if row["version"] >= 3 else PREZI2_MEDIA)


def regions_route(request: Request) -> Response:
    st = _state(request)
    row = _manifest(request, request.path_params["manifest"])
    position = request.path_params["n"]
    canvas = st.store.canvas_at(row["id"], position)
    if canvas is None:
        raise ApiError(404, f"manifest {row['id']} has no canvas at position {position}")
    version = _int(request, "version", row["version"], 2, 3)
    include_all = request.query_params.get("all", "").lower() in ("1", "true", "yes")
    regions = st.store.canvas_regions(canvas["id"], include_noise=include_all)
    if version == 2:
        return JsonLd(anno.region_list_v2(row["id"], position, regions, st.urls), PREZI2_MEDIA)
    return JsonLd(anno.region_page(row["id"], position, regions, st.urls), PREZI3_MEDIA)


def _region_of_manifest(request: Request) -> RegionView:
    row = _manifest(request, request.path_params["manifest"])
    region = _state(request).store.region(request.path_params["region"])
    if region is None or region.manifest_id != row["id"]:
        raise ApiError(404, f"no region {request.path_params['region']!r} in manifest {row['id']}")
    return region


def annotation_route(request: Request) -> Response:
    return JsonLd(anno.standalone_annotation(_region_of_manifest(request), _state(request).urls), PREZI3_MEDIA)


def text_annotation_route(request: Request) -> Response:
    from ..iiif.common import PREZI3_CONTEXT

    doc = {"@context": PREZI3_CONTEXT,
           **anno.text_annotation(_region_of_manifest(request), _state(request).urls, scoped=True)}
    return JsonLd(doc, PREZI3_MEDIA)


def collection_route(request: Request) -> Response:
    st = _state(request)
    doc = harvest.manifest_collection(st.store.manifests(), urls=st.urls, label=st.options.collection_label)
    return JsonLd(doc, PREZI3_MEDIA)


def region_image_route(request: Request) -> Response:
    st = _state(request)
    path = st.store.region_image_path(request.path_params["region"])
    if not path:
        raise ApiError(404, f"no cached image for region {request.path_params['region']!r} (run 'ivs fetch')")
    file = Path(path)
    if not file.is_absolute():
        file = st.settings.data_dir / file
    if not file.is_file():
        raise ApiError(404, f"the cached image of region {request.path_params['region']!r} is missing")
    return FileResponse(file, media_type="image/jpeg")


# --- Content Search -----------------------------------------------------------------------------------------


def _search(request: Request, version: int) -> Response:
    st = _state(request)
    ref = request.path_params.get("manifest")
    manifest_id = _manifest(request, ref)["id"] if ref else None
    params = _params(request)
    q = params.get("q", "")
    size = st.options.search_page_size
    page = _int(request, "page", 1, 1, 1_000_000)
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
    st = _state(request)
    ref = request.path_params.get("manifest")
    manifest_id = _manifest(request, ref)["id"] if ref else None
    params = _params(request)
    if "q" not in params:
        raise ApiError(400, "autocomplete needs the q parameter")
    min_count = _int(request, "min", 1, 1, 1_000_000)
    terms = st.text_index().terms(params["q"], manifest_id=manifest_id, min_count=min_count)
    build = search.autocomplete1 if version == 1 else search.autocomplete2
    doc = build(terms, urls=st.urls, manifest_id=manifest_id, params=params)
    return JsonLd(doc, SEARCH1_MEDIA if version == 1 else SEARCH2_MEDIA)


def autocomplete1_route(request: Request) -> Response:
    return _autocomplete(request, 1)


def autocomplete2_route(request: Request) -> Response:
    return _autocomplete(request, 2)


# --- find similar -------------------------------------------------------------------------------------------


def _hit_fields(hit: Any) -> tuple[str, float]:
    if isinstance(hit, dict):
        return str(hit["region_id"]), float(hit["score"])
    if isinstance(hit, tuple):
        return str(hit[0]), float(hit[1])
    # similar.Hit names the region ``region``; accept ``region_id`` too.
    return str(getattr(hit, "region", None) or hit.region_id), float(hit.score)


def _similar_answer(request: Request, *, query: dict[str, Any], query_label: str, region_id: str | None,
                    paged: bool = True) -> Response:
    st = _state(request)
    opts = st.options
    params = _params(request)
    model = params.get("model") or DEFAULT_MODEL
    k = _int(request, "k", opts.similar_default_k, 1, opts.similar_max_k)
    size = _int(request, "size", k, 1, opts.similar_max_k) if paged else k
    page = _int(request, "page", 1, 1, 1_000_000) if paged else 1
    manifest_ref = params.get("manifest")
    manifest_id = _manifest(request, manifest_ref)["id"] if manifest_ref else None
    # Without ``exclude`` the configured junk classes are left out; ``exclude=`` (empty) leaves out nothing.
    exclude = _list(request, "exclude") if "exclude" in request.query_params else st.settings.hidden_classes
    raw_hits = st.find_similar(model=model, k=k, manifest=manifest_id, classes=_list(request, "class") or None,
                               exclude_classes=list(exclude) or None, **query)
    pairs = [_hit_fields(h) for h in raw_hits]
    pairs = [(rid, score) for rid, score in pairs if rid != region_id][:k]
    total = len(pairs)
    start = (page - 1) * size
    window = pairs[start:start + size]
    views = st.store.regions_by_id([rid for rid, _ in window])
    hits = [similar.SimilarHit(views[rid], score) for rid, score in window if rid in views]
    paging = search.Paging(page=page, size=size, total=total)
    doc = similar.similar_page(hits, urls=st.urls, query_label=query_label, region_id=region_id,
                               params=params, paging=paging, model=model)
    return JsonLd(doc, PREZI3_MEDIA)


def similar_region_route(request: Request) -> Response:
    region_id = request.path_params["region"]
    if _state(request).store.region(region_id) is None:
        raise ApiError(404, f"no region {region_id!r} in the catalogue")
    return _similar_answer(request, query={"region_id": region_id}, query_label=f"region {region_id}",
                           region_id=region_id)


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
        data = fetch_bytes(url, max_bytes=opts.max_fetch_bytes, timeout_s=opts.fetch_timeout_s,
                           allow_private=True, check=False)
        return decode_image(data, opts.max_image_pixels)
    if canvas["image_url"]:
        data = fetch_bytes(canvas["image_url"], max_bytes=opts.max_fetch_bytes, timeout_s=opts.fetch_timeout_s,
                           allow_private=True, check=False)
        return crop_canvas_box(decode_image(data, opts.max_image_pixels), box, canvas["width"], canvas["height"])
    raise ApiError(422, f"canvas {canvas_ref!r} has no image to crop")


def _image_from_url(st: State, url: str) -> Any:
    opts = st.options
    data = fetch_bytes(url, max_bytes=opts.max_fetch_bytes, timeout_s=opts.fetch_timeout_s,
                       allow_private=opts.allow_private_urls)
    return decode_image(data, opts.max_image_pixels)


def similar_get_route(request: Request) -> Response:
    st = _state(request)
    params = _params(request)
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
    vector = np.asarray(value, dtype=np.float32)
    if not np.all(np.isfinite(vector)):
        raise ApiError(422, "vector holds NaN or infinity")
    norm = float(np.linalg.norm(vector))
    if norm == 0.0 or math.isnan(norm):
        raise ApiError(422, "vector is all zeros")
    return vector / norm


async def similar_post_route(request: Request) -> Response:
    st = _state(request)
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


# --- harvest ------------------------------------------------------------------------------------------------


def annotations_route(request: Request) -> Response:
    st = _state(request)
    doc = harvest.annotation_collection(urls=st.urls, total=st.store.count_regions(),
                                        page_size=st.options.harvest_page_size)
    return JsonLd(doc, PREZI3_MEDIA)


def annotations_page_route(request: Request) -> Response:
    st = _state(request)
    size = st.options.harvest_page_size
    total = st.store.count_regions()
    page = request.path_params["n"]
    if page < 1 or (page - 1) * size >= max(total, 1):
        raise ApiError(404, f"no annotation page {page} (there are {max(1, -(-total // size))})")
    regions = st.store.regions_page((page - 1) * size, size)
    doc = harvest.annotation_harvest_page(regions, urls=st.urls, page=page, total=total, page_size=size)
    return JsonLd(doc, PREZI3_MEDIA)


def activity_route(request: Request) -> Response:
    st = _state(request)
    doc = harvest.activity_collection(urls=st.urls, total=st.store.count_changes(),
                                      page_size=st.options.activity_page_size)
    return JsonLd(doc, DISCOVERY_MEDIA)


def activity_page_route(request: Request) -> Response:
    st = _state(request)
    size = st.options.activity_page_size
    total = st.store.count_changes()
    page = request.path_params["n"]
    if page < 1 or (page - 1) * size >= total:
        raise ApiError(404, f"no activity page {page}")
    changes = st.store.changes((page - 1) * size, size)
    return JsonLd(harvest.activity_page(changes, urls=st.urls, page=page, total=total, page_size=size),
                  DISCOVERY_MEDIA)


# --- service ------------------------------------------------------------------------------------------------


def health_route(request: Request) -> Response:
    st = _state(request)
    try:
        manifests_n = len(st.store.manifests())
        regions_n = st.store.count_regions()
        models = st.store.models()
    except Exception as exc:  # noqa: BLE001 - health must answer, and say why it is unhealthy
        return error_response(503, f"catalogue unreadable: {exc}")
    return JSONResponse({"status": "ok", "version": __version__, "manifests": manifests_n, "regions": regions_n,
                         "text_index": len(st.text), "embeddings": models, "base_url": st.urls.base})


def openapi_route(request: Request) -> Response:
    return JSONResponse(openapi(_state(request).urls.base))


ROUTES = [
    Route("/health", health_route),
    Route("/openapi.json", openapi_route),
    Route("/collection", collection_route),
    Route("/iiif/{manifest}/manifest", manifest_route),
    Route("/iiif/{manifest}/canvas/{n:int}/regions", regions_route),
    Route("/iiif/{manifest}/annotation/{region}", annotation_route),
    Route("/iiif/{manifest}/annotation/{region}/text", text_annotation_route),
    Route("/search/1", search1_route),
    Route("/search/1/{manifest}", search1_route),
    Route("/search/2", search2_route),
    Route("/search/2/{manifest}", search2_route),
    Route("/autocomplete/1", autocomplete1_route),
    Route("/autocomplete/1/{manifest}", autocomplete1_route),
    Route("/autocomplete/2", autocomplete2_route),
    Route("/autocomplete/2/{manifest}", autocomplete2_route),
    Route("/similar", similar_get_route, methods=["GET"]),
    Route("/similar", similar_post_route, methods=["POST"]),
    Route("/similar/{region}", similar_region_route),
    Route("/regions/{region}/image.jpg", region_image_route),
    Route("/annotations", annotations_route),
    Route("/annotations/page/{n:int}", annotations_page_route),
    Route("/activity", activity_route),
    Route("/activity/page/{n:int}", activity_page_route),
]


def _viewer(settings: Settings) -> list[Any]:
    """``/viewer``: Mirador with the find-similar plugin, offering the models indexed at start-up."""
    from ..index.vectors import list_models
    from .viewer import viewer_routes

    models = [d.name for d in list_models(settings.data_dir)]
    default = "siglip" if "siglip" in models else (models[0] if models else "")
    return viewer_routes(base_url=settings.base_url, models=models, default_model=default)


def create_app(settings: Settings, options: ServeOptions | None = None, *,
               similar_backend: Callable[..., list[Any]] | None = None) -> Starlette:
    """The service over ``settings.data_dir``. ``similar_backend`` replaces ``similar.find_similar`` (tests)."""
    opts = options or ServeOptions.from_env()
    if not settings.catalogue_path.exists():
        raise FileNotFoundError(f"no catalogue at {settings.catalogue_path}: run 'ivs ingest' first")
    app = Starlette(
        routes=[*ROUTES, *page_routes(), *_viewer(settings)],  # page_routes: the search page at / (issue 8)
        middleware=[
            Middleware(AlwaysCors),
            Middleware(CORSMiddleware, allow_origins=["*"], allow_methods=["GET", "POST", "OPTIONS"],
                       allow_headers=["*"], max_age=86400),
            Middleware(BodyLimit, max_bytes=opts.max_body_bytes),
        ],
        exception_handlers={ApiError: api_error, HTTPException: http_error, Exception: server_error},
    )
    app.state.ivs = State(settings, opts, similar_backend)
    return app
