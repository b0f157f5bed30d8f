"""The search page for people (``GET /``): the seed paper's Bildesøk page, server-rendered, HTMX on top.

Every search state is a URL (``/?q=…&by=…&model=…&class=…&page=…``), so the page works without JavaScript,
results can be bookmarked and shared, and HTMX only swaps the result list in place (``HX-Target: results``
gets the ``_results.html`` partial, plus out-of-band copies of the query fields so they match the results).
An uploaded picture is stored (shrunk, content-addressed) under ``data_dir/uploads`` and searched through a
``?upload=<hash>`` URL, so an upload has a permalink too.

Routes: ``/`` (search), ``/region/{region}`` (detail: the page with the box drawn), ``POST /search/image``
(upload or URL, then a redirect to the permalink), ``/search/uploads/{name}.jpg`` (the query picture),
``/page-image/{canvas}.jpg`` (a page thumbnail for canvases without an image service), ``/static``.
The searches themselves are the service's: the FTS5 text index and ``similar.find_similar``.

Modules: ``search_state`` (the URL ↔ state), ``facets`` (books, models and classes the sidebar offers),
``search`` (running a search), ``render`` (templates and links), ``views`` (the two HTML pages),
``uploads`` (query pictures) and ``page_images`` (page thumbnails).
"""

from __future__ import annotations

from pathlib import Path

from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from .facets import Book, Facets, ModelChoice, PageData, book_from_row
from .page_images import page_image
from .search_state import SearchState, parse_state
from .uploads import image_search, store_upload, upload_image
from .views import region_page, search_page

__all__ = ["Book", "Facets", "ModelChoice", "PageData", "SearchState", "book_from_row", "page_routes", "parse_state",
           "store_upload"]

WEB = Path(__file__).resolve().parent.parent


def page_routes() -> list[BaseRoute]:
    """The people-facing pages; mount them in the app's route list (``/`` is theirs)."""
    return [
        Route("/", search_page, methods=["GET", "HEAD"]),
        Route("/region/{region}", region_page, methods=["GET", "HEAD"]),
        Route("/search/image", image_search, methods=["POST"]),
        Route("/search/uploads/{name}.jpg", upload_image, methods=["GET", "HEAD"]),
        Route("/page-image/{canvas}.jpg", page_image, methods=["GET", "HEAD"]),
        Mount("/static", app=StaticFiles(directory=WEB / "static"), name="static"),
    ]
