"""Page thumbnails (``/page-image/{canvas}.jpg``) for the region page, also for canvases without an image service."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response

from ...files import atomic_write_bytes
from ..errors import ApiError
from ..errors import error_response
from ..images import decode_image
from ..local_books import local_image_file
from ..outbound import read_catalogue_image
from .search_state import ID_PATTERN
from .uploads import jpeg_thumbnail

PAGE_THUMB_WIDTH = 800


def _read_source_image(st: Any, url: str, manifest_url: str) -> bytes:
    opts = st.options
    local = local_image_file(manifest_url, url)
    if local is not None:  # only a book read from local files has its local page images read
        url = local.as_uri()
    elif urlparse(url).scheme not in ("http", "https"):
        raise ApiError(404, "the page image is not available over http")
    return read_catalogue_image(url, max_bytes=opts.max_fetch_bytes, timeout_s=opts.fetch_timeout_s,
                                allow_private=opts.allow_private_urls)


async def page_image(request: Request) -> Response:
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(_page_image_sync, request)


def _page_image_sync(request: Request) -> Response:
    """A page thumbnail: the IIIF image service's rendering when there is one, else a cached shrunk copy."""
    st = request.app.state.ivs
    cid = request.path_params["canvas"]
    canvas = st.catalogue.query_one(
        "SELECT c.*, m.url AS manifest_url FROM canvas c JOIN manifest m ON m.id = c.manifest_id "
        "WHERE c.id=? AND m.status='ok'", (cid,)) \
        if ID_PATTERN.match(cid) else None
    if canvas is None:
        return error_response(404, f"no canvas {cid!r} in the catalogue")
    width = PAGE_THUMB_WIDTH
    if canvas["image_service"]:
        full_w = canvas["image_width"] or canvas["width"]
        return RedirectResponse(f"{canvas['image_service'].rstrip('/')}/full/{min(width, full_w)},/0/default.jpg",
                                status_code=302)
    if not canvas["image_url"]:
        return error_response(404, f"canvas {cid!r} has no image")
    path = Path(st.cache_dir) / "page-thumbs" / f"{cid}-{width}.jpg"
    if not path.is_file():
        try:
            data = _read_source_image(st, canvas["image_url"], canvas["manifest_url"])
            image = decode_image(data, st.options.max_image_pixels)
        except (ApiError, OSError) as exc:
            return error_response(502, f"page image unavailable: {getattr(exc, 'message', exc)}")
        atomic_write_bytes(path, jpeg_thumbnail(image, (width, 8 * width)), durable=False)  # page width, any height
    return FileResponse(path, media_type="image/jpeg", headers={"Cache-Control": "public, max-age=86400"})
