"""Rendering: templates, the links every page carries, the reader's language."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlparse

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse

from ...iiif.common import RegionView
from ..i18n import LANGUAGES, class_name, pick_language, translator
from ..security import safe_link
from .errors import PageError
from .search_state import SearchState

WEB = Path(__file__).resolve().parent.parent

_env = Environment(loader=FileSystemLoader(WEB / "templates"), autoescape=select_autoescape(["html"]),
                   trim_blocks=True, lstrip_blocks=True)
_env.filters["safe_link"] = safe_link  # every link taken from a document goes through it


def root_path(request: Request) -> str:
    # Behind a proxy that serves us under --base-url's path (https://host/ivs), links must carry that path:
    # "/static/pages.css" resolved to https://host/static/pages.css. The ASGI root_path wins when set.
    root = request.scope.get("root_path", "") or urlparse(request.app.state.ivs.urls.base).path
    return root.rstrip("/")


def page_language(request: Request, state_lang: str = "") -> str:
    return pick_language(state_lang or request.query_params.get("lang"), request.headers.get("accept-language"))


def link_helpers(request: Request, st: Any, lang: str, state: SearchState | None = None) -> dict[str, Any]:
    root = root_path(request)
    keep = {"lang": lang}
    if state is not None:
        keep.update({"model": state.model, "match": state.match if state.match != "semantic" else ""})

    def similar_url(region_id: str) -> str:
        base = state or SearchState()
        return f"{root}/" + base.query(q="", similar=region_id, upload="", image_url="", page=1)

    def detail_url(region_id: str) -> str:
        params = {k: v for k, v in keep.items() if v}
        return f"{root}/region/{region_id}" + ("?" + urlencode(params) if params else "")

    def viewer_url(region: RegionView) -> str:
        params = {"manifest": st.urls.manifest(region.manifest_id), "canvas": region.canvas_uri,
                  "xywh": f"{region.x},{region.y},{region.w},{region.h}", "lang": "nb-NO" if lang == "nb" else "en"}
        return f"{root}/viewer?{urlencode(params)}"

    def page_image_url(canvas_id: str) -> str:
        return f"{root}/page-image/{canvas_id}.jpg"

    return {"similar_url": similar_url, "detail_url": detail_url, "viewer_url": viewer_url,
            "page_image_url": page_image_url}


def render(name: str, status: int = 200, headers: dict[str, str] | None = None, **context: Any) -> HTMLResponse:
    return HTMLResponse(_env.get_template(name).render(**context), status_code=status, headers=headers)


def base_context(request: Request, lang: str, state: SearchState | None) -> dict[str, Any]:
    st = request.app.state.ivs
    root = root_path(request)
    switch = {}
    for code in LANGUAGES:
        if state is not None:
            switch[code] = f"{root}/" + state.query(lang=code)
        else:
            path = request.url.path  # under root, like every other link (the server may have added it)
            path = path if root and path.startswith(root + "/") else root + path
            switch[code] = path + "?" + urlencode(
                [(k, v) for k, v in request.query_params.multi_items() if k != "lang"] + [("lang", code)])
    return {"lang": lang, "t": translator(lang), "cls": lambda label: class_name(label, lang), "root": root,
            "switch": switch, "urls": st.urls, **link_helpers(request, st, lang, state)}


def error_text(lang: str, err: PageError) -> str:
    return err.message or translator(lang)(err.key, **err.values)
