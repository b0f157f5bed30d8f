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

BUNDLE_NAME = "mirador-find-similar.viewer.js"

# Mirador 4.0.0 lists only commenting/tagging/painting in its annotation panel unless told otherwise.
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
<style>html, body {{ margin: 0; height: 100%; }} #viewer {{ position: absolute; inset: 0; }}</style>
</head>
<body>
<div id="viewer"></div>
<script src="{bundle_url}"></script>
<script>
(async function () {{
  const settings = {settings};
  const params = new URLSearchParams(location.search);
  const endpoint = settings.endpoint || location.href.replace(/\\/viewer\\/?([?#].*)?$/, '');
  let manifests = [];
  try {{
    const collection = await (await fetch(endpoint + '/collection')).json();
    manifests = (collection.items || collection.manifests || [])
      .map((m) => m.id || m['@id']).filter(Boolean);
  }} catch (e) {{
    console.error('could not read the collection', e);
  }}
  const first = params.get('manifest') || manifests[0];
  const start = first ? {{ manifestId: first }} : null;
  const canvasId = params.get('canvas');
  const box = (params.get('xywh') || '').split(',').map(Number);
  if (start && canvasId) {{
    start.canvasId = canvasId;
    if (box.length === 4 && box.every((n) => Number.isFinite(n) && n >= 0) && box[2] > 0 && box[3] > 0) {{
      const xywh = box.map(Math.round);
      start.findSimilarHighlight = {{ canvasId, id: 'link', xywh }};
      // Open on the region with some page around it, as a reader expects from a link to a picture.
      start.initialViewerConfig = {{ x: xywh[0] + xywh[2] / 2, y: xywh[1] + xywh[3] / 2,
        zoom: 1 / (2.2 * Math.max(xywh[2], xywh[3])) }};
    }}
  }}
  window.miradorInstance = MiradorFindSimilar.viewer({{
    id: 'viewer',
    language: params.get('lang') || settings.language,
    annotations: {{ filteredMotivations: settings.filteredMotivations, htmlSanitizationRuleSet: 'iiif' }},
    catalog: manifests.map((manifestId) => ({{ manifestId }})),
    windows: start ? [start] : [],
    window: {{ sideBarOpen: false }},
    workspace: {{ type: 'mosaic' }},
    findSimilar: {{
      endpoint,
      model: params.get('model') || settings.model,
      models: settings.models,
      k: Number(params.get('k')) || settings.k,
      classes: settings.classes,
    }},
  }});
  if (params.get('class')) {{
    // the class filter is a per-window panel choice; start every window with it
    const store = window.miradorInstance.store;
    store.getState().workspace.windowIds.forEach((windowId) => store.dispatch({{
      type: 'mirador-find-similar/SET_OPTIONS', windowId, options: {{ classFilter: params.get('class') }},
    }}));
  }}
}})();
</script>
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
        # </ cannot close the script element from inside the JSON
        settings_json = json.dumps(settings).replace("</", "<\\/")
        html = _PAGE.format(lang=escape(lang.split("-")[0]), bundle_url=f"viewer/{BUNDLE_NAME}",
                            settings=settings_json)
        return HTMLResponse(html)

    async def script(request: Request) -> Response:
        path = bundle_path()
        if path is None:
            return error_response(404, "viewer bundle not built")
        return FileResponse(path, media_type="text/javascript")

    return [
        Route("/viewer", page, methods=["GET"]),
        Route(f"/viewer/{BUNDLE_NAME}", script, methods=["GET"]),
    ]
