"""``GET /viewer``: Mirador 4 with the find-similar plugin (``viewer-plugin/``), opened on the collection.

The page loads one script, ``mirador-find-similar.viewer.js``: Mirador and the plugin built together by
``npm run build`` in ``viewer-plugin/``. They are bundled together because Mirador's own UMD file keeps
its React private, and a plugin rendered with a second React breaks on its first hook.

Query parameters of the page: ``manifest`` (open this manifest instead of the collection's first),
``canvas`` (open at this canvas) and ``xywh`` (highlight and zoom to this canvas region, ``x,y,w,h``),
``model``, ``k`` and ``class`` (the plugin's initial filters), ``lang`` (``en`` or ``nb-NO``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from html import escape
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.routing import BaseRoute, Route

from .errors import error_response
from .security import VIEWER_POLICY

BUNDLE_NAME = "mirador-find-similar.viewer.js"
STATIC = Path(__file__).resolve().parent / "static"

# Mirador 4.0.0 lists only commenting/tagging/painting in its annotation panel unless told otherwise. The
# service's regions are `commenting` (stock Mirador shows them); the rest are for find-similar hits
# (`highlighting`) and annotations of other origins on the same canvases.
FILTERED_MOTIVATIONS = [
    "oa:commenting", "oa:tagging", "oa:classifying", "oa:describing", "sc:painting",
    "commenting", "tagging", "classifying", "describing", "supplementing", "highlighting",
]


def find_bundle() -> Path | None:
    """The built bundle: ``IVS_VIEWER_BUNDLE``, then ``web/static/``, then the checkout's ``viewer-plugin/dist``."""
    candidates = []
    if os.environ.get("IVS_VIEWER_BUNDLE"):
        candidates.append(Path(os.environ["IVS_VIEWER_BUNDLE"]))
    here = Path(__file__).resolve().parent
    candidates.append(here / "static" / BUNDLE_NAME)
    candidates.append(here.parents[2] / "viewer-plugin" / "dist" / BUNDLE_NAME)
    return next((p for p in candidates if p.is_file()), None)


_PAGE = """<!DOCTYPE html>
<html lang="{lang}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>iiif-visual-search viewer</title>
<link rel="stylesheet" href="viewer/viewer.css">
</head>
<body>
<div id="viewer"></div>
<script id="ivs-viewer-settings" type="application/json">{settings}</script>
<script src="{bundle_url}"></script>
<script src="viewer/boot.js"></script>
</body>
</html>
"""

_MISSING = """<!DOCTYPE html><html lang="en"><meta charset="utf-8"><title>Viewer not built</title>
<p>The viewer bundle <code>{name}</code> was not found. Build it with
<code>cd viewer-plugin &amp;&amp; npm ci &amp;&amp; npm run build</code>, or set <code>IVS_VIEWER_BUNDLE</code>
to its path.</p></html>"""


def viewer_routes(*, base_url: str = "", models: Sequence[str] = (), default_model: str = "",
                  classes: Sequence[str] = (), k: int = 20, language: str = "en",
                  bundle: Path | None = None) -> list[BaseRoute]:
    """Routes for ``/viewer`` and its script.

    Args:
        base_url: the service's public base URL (the ids of its annotations start with it); empty = the
            page's own origin and path.
        models: models offered in the panel; default_model: the one used first ('' = the service's default).
        classes: class labels offered as a filter.
        bundle: the built Mirador + plugin script; found with ``find_bundle()`` when None.
    """
    settings = {
        "endpoint": base_url.rstrip("/"),
        "model": default_model,
        "models": list(models),
        "classes": list(classes),
        "k": k,
        "language": language,
        "filteredMotivations": FILTERED_MOTIVATIONS,
    }

    def bundle_path() -> Path | None:
        return bundle if bundle is not None and bundle.is_file() else find_bundle()

    async def page(request: Request) -> Response:
        if bundle_path() is None:
            return HTMLResponse(_MISSING.format(name=BUNDLE_NAME), status_code=503)
        lang = request.query_params.get("lang") or language
        # No "<" at all in the JSON data block: neither </script> nor <!-- can end it early.
        settings_json = json.dumps(settings).replace("<", "\\u003c")
        html = _PAGE.format(lang=escape(lang.split("-")[0]), bundle_url=f"viewer/{BUNDLE_NAME}",
                            settings=settings_json)
        return HTMLResponse(html, headers={"Content-Security-Policy": VIEWER_POLICY})

    async def script(request: Request) -> Response:
        path = bundle_path()
        if path is None:
            return error_response(404, "viewer bundle not built")
        return FileResponse(path, media_type="text/javascript")

    async def boot(request: Request) -> Response:
        return FileResponse(STATIC / "viewer-boot.js", media_type="text/javascript")

    async def stylesheet(request: Request) -> Response:
        return FileResponse(STATIC / "viewer.css", media_type="text/css")

    return [
        Route("/viewer", page, methods=["GET"]),
        Route(f"/viewer/{BUNDLE_NAME}", script, methods=["GET"]),
        Route("/viewer/boot.js", boot, methods=["GET"]),
        Route("/viewer/viewer.css", stylesheet, methods=["GET"]),
    ]
