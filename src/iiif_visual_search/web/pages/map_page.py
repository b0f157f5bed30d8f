"""``GET /map?model=``: every region of one model's map drawn as its thumbnail (the script in ``map-page/``).

The page itself is server-rendered: the model choice, the class and book filters and the list of clusters
are plain HTML (keyboard and screen-reader friendly, translated here); the script draws the map into it and
reads its settings from a JSON data block, as the Content-Security-Policy allows no inline script.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response

from ...atlas import store
from ..errors import ApiError
from ..i18n import class_name, translator
from .render import base_context, page_language, render, root_path

SCRIPT_STRINGS = ("map_loading", "map_no_webgl", "map_page_of", "map_cluster", "cluster_none", "details",
                  "similar_to", "open_viewer", "map_count", "map_failed", "map_hint_selected", "unclassified")


def render_map_page(request: Request) -> Response:
    from ..atlas import book_labels, cache, default_key, resolve_key

    st = request.app.state.ivs
    lang = page_language(request)
    t = translator(lang)
    root = root_path(request)
    context = base_context(request, lang, None)
    keys = store.keys(st.settings.data_dir)
    wanted = request.query_params.get("model", "")
    try:
        key = resolve_key(request, wanted) if wanted else default_key(request)
    except ApiError:
        key = None
    if key is None:
        return render("map.html", status=404 if wanted else 200, **context, served=None, keys=keys, key="",
                      missing=wanted or "siglip", settings_json="{}")
    served = cache(request).get(request, key)
    books = list(zip(served.books, book_labels(request, served.books)))
    lang_q = {"lang": lang} if lang != "en" else {}

    def link(path: str, **params: str) -> str:
        query = urlencode({**params, **lang_q}, safe="{}")  # the script fills in {id}
        return f"{root}{path}" + (f"?{query}" if query else "")

    settings: dict[str, Any] = {
        "data": f"{root}/map/{key}.bin",
        "root": root,
        "key": key,
        "lang": lang,
        "hiddenClasses": sorted(set(st.settings.hidden_classes) & set(served.classes)),
        "classNames": {c: class_name(c, lang) for c in served.classes},
        "links": {"region": link("/region/{id}"), "similar": link("/", similar="{id}", model=key),
                  "viewer": link("/map/open/{id}"), "thumb": f"{root}/regions/{{id}}/image.jpg?w=256"},
        "strings": {name: t(name) for name in SCRIPT_STRINGS},
    }
    settings_json = json.dumps(settings, ensure_ascii=False).replace("<", "\\u003c")  # nothing can end the block
    return render("map.html", **context, served=served, keys=keys, key=key, books=books,
                  classes=[(c, class_name(c, lang)) for c in served.classes],
                  hidden=set(settings["hiddenClasses"]), clusters=sorted(served.clusters, key=lambda c: -c["size"]),
                  settings_json=settings_json, missing="")
