"""Uploaded query pictures: stored shrunk under their content hash, so an upload search has a permalink."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

from PIL import Image
from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response

from ...files import atomic_write_bytes
from ..errors import ApiError, error_response
from ..i18n import LANGUAGES
from ..images import decode_image
from .errors import PageError
from .render import base_context, error_text, page_language, render, root_path
from .search_state import ID_PATTERN, UPLOAD_PATTERN, SearchState

UPLOAD_MAX_SIDE = 1024            # uploads are kept this small: enough for every model's preprocessing
UPLOAD_KEEP = 500                 # uploads kept on disk; the oldest go first


def uploads_dir(st: Any) -> Path:
    return Path(st.cache_dir) / "uploads"  # the data dir, unless that is served read-only


def jpeg_thumbnail(image: Image.Image, box: tuple[int, int]) -> bytes:
    image = image.copy()
    image.thumbnail(box, Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    image.convert("RGB").save(buf, "JPEG", quality=90)
    return buf.getvalue()


def store_upload(st: Any, image: Image.Image, original: bytes) -> str:
    """Keep an uploaded picture (shrunk) under its content hash and return the hash; old uploads are pruned."""
    name = hashlib.sha256(original).hexdigest()[:32]
    folder = uploads_dir(st)
    path = folder / f"{name}.jpg"
    if not path.exists():
        atomic_write_bytes(path, jpeg_thumbnail(image, (UPLOAD_MAX_SIDE, UPLOAD_MAX_SIDE)), durable=False)
        files = sorted(folder.glob("*.jpg"), key=lambda p: p.stat().st_mtime)
        for old in files[:max(0, len(files) - UPLOAD_KEEP)]:
            old.unlink(missing_ok=True)
    return name


async def image_search(request: Request) -> Response:
    """``POST /search/image``: a file (or a URL) from the upload form; answers with a redirect to the permalink."""
    from starlette.concurrency import run_in_threadpool
    from starlette.exceptions import HTTPException

    st = request.app.state.ivs
    lang = page_language(request)
    try:
        form = await request.form(max_files=1, max_fields=20, max_part_size=st.options.max_body_bytes)
    except HTTPException as exc:
        return render("message.html", status=400, **base_context(request, lang, None), title="error",
                       message=str(exc.detail))
    lang = page_language(request, str(form.get("lang") or ""))
    base = SearchState(model=str(form.get("model") or "") if ID_PATTERN.match(str(form.get("model") or "")) else "",
                       match="duplicate" if form.get("match") == "duplicate" else "semantic",
                       lang=str(form.get("lang") or "") if form.get("lang") in LANGUAGES else "")
    upload = form.get("image")
    data = b""
    if upload is not None and not isinstance(upload, str):
        data = await upload.read()
    url = str(form.get("image_url") or "").strip()
    try:
        if data:
            image = await run_in_threadpool(decode_image, data, st.options.max_image_pixels)
            name = await run_in_threadpool(store_upload, st, image, data)
            target = f"{root_path(request)}/" + base.query(upload=name)
        elif url:
            target = f"{root_path(request)}/" + base.query(image_url=url[:2000])
        else:
            raise PageError(422, "err_no_file")
    except ApiError as err:
        return render("message.html", status=err.status, **base_context(request, lang, base),
                       title="error", message=err.message)
    except PageError as err:
        return render("message.html", status=err.status, **base_context(request, lang, base), title="error",
                       message=error_text(lang, err))
    if request.headers.get("hx-request") == "true":
        return Response(status_code=204, headers={"HX-Redirect": target})
    return RedirectResponse(target, status_code=303)


def upload_image(request: Request) -> Response:
    name = request.path_params["name"]
    path = uploads_dir(request.app.state.ivs) / f"{name}.jpg"
    if not UPLOAD_PATTERN.match(name) or not path.is_file():
        return error_response(404, f"no upload {name!r}")
    return FileResponse(path, media_type="image/jpeg", headers={"Cache-Control": "public, max-age=86400"})
