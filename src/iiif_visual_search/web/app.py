"""The Starlette application: IIIF JSON for viewers and harvesters, find-similar, the search page, the viewer.

Handlers are thin: parse and check parameters, ask the catalogue / text index / vector search, hand the rows
to the pure builders in ``iiif/``. Blocking work runs in the thread pool (sync endpoints), so the event
loop keeps answering while a search runs. The catalogue is opened read-mostly; ingest may run in another
process at the same time (SQLite WAL), and the text index follows the change log (``TextIndex.sync``).
Each group of routes lives in its own module: ``presentation``, ``content_search``, ``find_similar``,
``harvest``, ``pages/`` (the search page) and ``viewer``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .. import __version__
from ..config import Settings
from . import content_search, find_similar, harvest, image_service, presentation
from .atlas import atlas_routes
from .errors import ApiError, api_error, error_response, http_error, server_error
from .middleware import AlwaysCors, BodyLimit, CatchErrors
from .openapi import openapi
from .options import ServeOptions
from .pages import page_routes
from .ratelimit import UploadRateLimit
from .security import SecurityHeaders
from .state import State, state


def health_route(request: Request) -> Response:
    st = state(request)
    try:
        manifests_n = st.store.count_manifests()
        regions_n = st.store.count_regions()
        models = st.store.models()
    except Exception as exc:  # noqa: BLE001 - health must answer, and say why it is unhealthy
        return error_response(503, f"catalogue unreadable: {exc}")
    return JSONResponse({"status": "ok", "version": __version__, "manifests": manifests_n, "regions": regions_n,
                         "text_index": st.text.count(), "embeddings": models, "base_url": st.urls.base})


def openapi_route(request: Request) -> Response:
    return JSONResponse(openapi(state(request).urls.base))


ROUTES = [
    Route("/health", health_route),
    Route("/openapi.json", openapi_route),
    *presentation.ROUTES,
    *content_search.ROUTES,
    *find_similar.ROUTES,
    *harvest.ROUTES,
    *image_service.ROUTES,
]


def _viewer(settings: Settings) -> list[Any]:
    """``/viewer``: Mirador with the find-similar plugin, offering the models indexed at start-up."""
    from ..index.model_choice import default_model
    from ..index.vectors import list_models
    from .viewer import viewer_routes

    models = [d.name for d in list_models(settings.data_dir)]
    return viewer_routes(base_url=settings.base_url, models=models,
                         default_model=default_model(settings.data_dir, fallback="") if models else "")


def create_app(settings: Settings, options: ServeOptions | None = None, *,
               similar_backend: Callable[..., list[Any]] | None = None) -> Starlette:
    """The service over ``settings.data_dir``. ``similar_backend`` replaces ``similar.find_similar`` (tests)."""
    opts = options or ServeOptions.from_env()
    if not settings.catalogue_path.exists():
        raise FileNotFoundError(f"no catalogue at {settings.catalogue_path}: run 'ivs ingest' first")
    app = Starlette(
        routes=[*ROUTES, *page_routes(), *_viewer(settings), *atlas_routes()],  # page_routes: the search page at /
        middleware=[
            # JSON and HTML compressed for clients that accept gzip (Change Discovery 1.0: SHOULD); images are
            # left alone (GZipMiddleware skips image/jpeg and the like). Outermost, so CORS headers are kept.
            # Level 3 rather than Starlette's 9 (or zlib's default 6): zlib's fast strategy compresses a harvest
            # page of 200 annotations in 0.7 ms instead of 2.5 at level 6, 9 % larger (18.0 against 16.6 KB).
            Middleware(GZipMiddleware, minimum_size=500, compresslevel=3),
            Middleware(SecurityHeaders),
            Middleware(AlwaysCors),
            Middleware(CORSMiddleware, allow_origins=["*"], allow_methods=["GET", "POST", "OPTIONS"],
                       allow_headers=["*"], max_age=86400),
            Middleware(BodyLimit, max_bytes=opts.max_body_bytes),
            Middleware(UploadRateLimit, per_minute=opts.upload_rate_per_minute),
            Middleware(CatchErrors),
        ],
        exception_handlers={ApiError: api_error, HTTPException: http_error, Exception: server_error},
    )
    app.state.ivs = State(settings, opts, similar_backend)
    return app
