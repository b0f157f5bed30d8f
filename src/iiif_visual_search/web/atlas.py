"""The atlas on the web: ``/map`` (the page), ``/map/{model}.json`` and ``.bin`` (every region's place),
the atlas sheets, and ``/clusters/{model}`` (the clusters as a Presentation 3 AnnotationCollection).

What ``ivs map`` wrote is joined here with what the catalogue says now: regions deleted since the map was
made are left out, and book, page and class are today's. The join is cached per map version and catalogue
change, so a request costs a lookup.

``.bin`` carries the same as ``.json`` in a tenth of the bytes, for the page (see ``encode_binary``):
``IVSMAP01``, a little-endian uint32 header length, a JSON header (padded to 4 bytes), then the columns
x, y (float32), cluster, book, page, class, cell (int32), aspect (float32), then the region ids as
fixed-width ASCII. Books and classes are indexes into the header's lists (-1: none).
"""

from __future__ import annotations

import json
import os
import struct
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import numpy as np
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from ..atlas import store
from ..iiif import clusters as iiif_clusters
from ..iiif.common import PREZI3_MEDIA
from .errors import ApiError
from .state import JsonLd, state

BUNDLE_NAME = "ivs-map.js"
MAGIC = b"IVSMAP01"
COLUMNS = (("x", "<f4"), ("y", "<f4"), ("cluster", "<i4"), ("book", "<i4"), ("page", "<i4"), ("class", "<i4"),
           ("cell", "<i4"), ("aspect", "<f4"))


def find_bundle() -> Path | None:
    """The built page script: ``IVS_MAP_BUNDLE``, then ``web/static/``, then the checkout's ``map-page/dist``."""
    here = Path(__file__).resolve().parent
    candidates = [Path(os.environ["IVS_MAP_BUNDLE"])] if os.environ.get("IVS_MAP_BUNDLE") else []
    candidates += [here / "static" / BUNDLE_NAME, here.parents[2] / "map-page" / "dist" / BUNDLE_NAME]
    return next((p for p in candidates if p.is_file()), None)


@dataclass
class Served:
    """A map as served: live regions only, with their book, page and class."""

    data: store.MapData
    keep: np.ndarray            # indexes into data's arrays of the regions still live
    book: np.ndarray            # (n,) int32 into books
    page: np.ndarray            # (n,) int32, 1-based
    cls: np.ndarray             # (n,) int32 into classes, -1 none
    books: list[str]            # manifest ids
    classes: list[str]
    clusters: list[dict[str, Any]]   # sizes counted over live regions, empty clusters left out

    @property
    def regions(self) -> list[str]:
        return self.data.regions[self.keep].tolist()

    def members(self, cluster: int) -> list[str]:
        where = self.keep[self.data.cluster[self.keep] == cluster]
        return self.data.regions[where].tolist()


class MapCache:
    """Served maps by (model key, map version, catalogue change), built on first use."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[str, tuple[tuple[Any, ...], Served]] = {}

    def get(self, request: Request, key: str) -> Served:
        st = state(request)
        version = store.current_version(st.settings.data_dir, key)
        if version is None:
            raise ApiError(404, f"no map of model {key!r}: run 'ivs map --model {key}'")
        signature = (version, st.store.last_change_seq())
        with self._lock:
            hit = self._items.get(key)
            if hit is not None and hit[0] == signature:
                return hit[1]
        served = _serve(st, key)
        with self._lock:
            self._items[key] = (signature, served)
        return served


def _serve(st: Any, key: str) -> Served:
    data = store.load(st.settings.data_dir, key)
    if data is None:
        raise ApiError(404, f"no map of model {key!r}")
    facts: dict[str, tuple[str, int, str | None]] = {}
    ids = data.regions.tolist()
    for start in range(0, len(ids), 900):
        chunk = ids[start:start + 900]
        for row in st.catalogue.query(
                "SELECT r.id, r.manifest_id, c.position, COALESCE(lm.label, lo.label) AS label FROM region r "
                "JOIN canvas c ON c.id = r.canvas_id JOIN manifest m ON m.id = r.manifest_id "
                "LEFT JOIN label lm ON lm.region_id = r.id AND lm.source = 'manual' "
                "LEFT JOIN label lo ON lo.region_id = r.id AND lo.source = 'model' "
                f"WHERE r.deleted = 0 AND m.status = 'ok' AND r.id IN ({','.join('?' * len(chunk))})", chunk):
            facts[row["id"]] = (row["manifest_id"], int(row["position"]), row["label"])
    keep = np.array([i for i, rid in enumerate(ids) if rid in facts], dtype=np.int64)
    books = sorted({facts[ids[i]][0] for i in keep.tolist()})
    classes = sorted({facts[ids[i]][2] for i in keep.tolist() if facts[ids[i]][2]})
    book_no = {b: i for i, b in enumerate(books)}
    class_no = {c: i for i, c in enumerate(classes)}
    live = [facts[ids[i]] for i in keep.tolist()]
    book = np.array([book_no[f[0]] for f in live], dtype=np.int32)
    page = np.array([f[1] + 1 for f in live], dtype=np.int32)
    cls = np.array([class_no[f[2]] if f[2] else -1 for f in live], dtype=np.int32)
    sizes = np.bincount(data.cluster[keep][data.cluster[keep] >= 0], minlength=1) if len(keep) else np.zeros(1)
    clusters = [{**c, "size": int(sizes[c["id"]]) if c["id"] < len(sizes) else 0}
                for c in data.meta.get("clusters", [])]
    return Served(data, keep, book, page, cls, books, classes, [c for c in clusters if c["size"] > 0])


_CACHE_ATTR = "ivs_map_cache"


def cache(request: Request) -> MapCache:
    app_state = request.app.state
    if not hasattr(app_state, _CACHE_ATTR):
        setattr(app_state, _CACHE_ATTR, MapCache())
    return getattr(app_state, _CACHE_ATTR)


def resolve_key(request: Request, model: str) -> str:
    """A map's key from a model name or key (``siglip``, a hub id's key …); 404 naming the maps there are."""
    from ..embed.models import model_key

    data_dir = state(request).settings.data_dir
    keys = store.keys(data_dir)
    for candidate in (model, model_key(model)):
        if candidate in keys:
            return candidate
    raise ApiError(404, f"no map of model {model!r}; maps here: {', '.join(keys) or 'none (run ivs map)'}")


def default_key(request: Request) -> str | None:
    from ..index.model_choice import default_model

    data_dir = state(request).settings.data_dir
    keys = store.keys(data_dir)
    preferred = default_model(data_dir, fallback="")
    return preferred if preferred in keys else (keys[0] if keys else None)


def book_labels(request: Request, books: list[str]) -> list[str]:
    from .pages.facets import page_data

    known = page_data(request).facets().books
    return [known[b].label if b in known else b for b in books]


def cluster_summary(clusters: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"id": c["id"], "label": c["label"], "size": c["size"], "x": c["x"], "y": c["y"],
             "terms": c.get("terms", []), "prompt": c.get("prompt", "")} for c in clusters]


def header(request: Request, served: Served) -> dict[str, Any]:
    data = served.data
    atlas = data.meta["atlas"]
    return {"model": data.meta["model"], "key": data.key, "version": data.version, "count": len(served.keep),
            "params": data.meta.get("params", {}), "counts": data.meta.get("counts", {}),
            "clusters": cluster_summary(served.clusters),
            "books": [{"id": b, "label": label} for b, label in zip(served.books, book_labels(request, served.books))],
            "classes": served.classes,
            "atlas": {"cell": atlas["cell"], "sheet": atlas["sheet"], "sheets": atlas.get("sheets", 0),
                      "url": f"map/{data.key}/atlas/{data.version}/{{n}}.jpg"}}


def encode_binary(head: dict[str, Any], served: Served) -> bytes:
    data, keep = served.data, served.keep
    ids = [r.encode("ascii", "replace") for r in served.regions]
    width = max(map(len, ids), default=1)
    head = {**head, "columns": [name for name, _ in COLUMNS], "id_width": width}
    text = json.dumps(head, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 4)
    columns = {"x": data.xy[keep, 0], "y": data.xy[keep, 1], "cluster": data.cluster[keep], "book": served.book,
               "page": served.page, "class": served.cls, "cell": data.cell[keep], "aspect": data.aspect[keep]}
    parts = [MAGIC, struct.pack("<I", len(text)), text]
    parts += [np.ascontiguousarray(columns[name], dtype=dtype).tobytes() for name, dtype in COLUMNS]
    parts.append(np.array(ids, dtype=f"S{width}").tobytes())
    return b"".join(parts)


# --- routes -------------------------------------------------------------------------------------------------


def map_json(request: Request) -> Response:
    served = cache(request).get(request, resolve_key(request, request.path_params["model"]))
    head = header(request, served)
    data, keep = served.data, served.keep
    books, classes = served.books, served.classes
    points = [{"region": rid, "x": round(float(x), 6), "y": round(float(y), 6), "cluster": int(c),
               "book": books[b], "page": int(p), "class": classes[k] if k >= 0 else None}
              for rid, x, y, c, b, p, k in zip(served.regions, data.xy[keep, 0].tolist(), data.xy[keep, 1].tolist(),
                                               data.cluster[keep].tolist(), served.book.tolist(),
                                               served.page.tolist(), served.cls.tolist())]
    body = {"model": head["model"], "key": head["key"], "version": head["version"], "params": head["params"],
            "points": points, "clusters": head["clusters"], "books": {b["id"]: b["label"] for b in head["books"]},
            "binary": f"{state(request).urls.base}/map/{data.key}.bin"}
    return JSONResponse(body, headers={"Cache-Control": "no-cache"})


def map_binary(request: Request) -> Response:
    served = cache(request).get(request, resolve_key(request, request.path_params["model"]))
    return Response(encode_binary(header(request, served), served), media_type="application/octet-stream",
                    headers={"Cache-Control": "no-cache"})


def atlas_sheet(request: Request) -> Response:
    key = resolve_key(request, request.path_params["model"])
    version = request.path_params["version"]
    if not (version.startswith("v") and version[1:].isdigit()):
        raise ApiError(404, "no such map version")
    path = store.map_dir(state(request).settings.data_dir, key) / version / "atlas" / f"{request.path_params['n']}.jpg"
    if not path.is_file():
        raise ApiError(404, f"no atlas sheet {request.path_params['n']} in map {key} {version}")
    # A version's sheets never change: the next run of ivs map writes a new version under a new URL.
    return FileResponse(path, media_type="image/jpeg", headers={"Cache-Control": "public, max-age=31536000, immutable"})


def open_in_viewer(request: Request) -> Response:
    """From a point on the map to the viewer at that region (the page knows only region ids)."""
    from .pages.render import page_language, root_path

    st = state(request)
    region = st.store.region(request.path_params["region"])
    if region is None:
        raise ApiError(404, f"no region {request.path_params['region']!r}")
    lang = page_language(request)
    params = {"manifest": st.urls.manifest(region.manifest_id), "canvas": region.canvas_uri,
              "xywh": f"{region.x},{region.y},{region.w},{region.h}", "lang": "nb-NO" if lang == "nb" else "en"}
    return RedirectResponse(f"{root_path(request)}/viewer?{urlencode(params)}", status_code=303)


def map_script(request: Request) -> Response:
    path = find_bundle()
    if path is None:
        raise ApiError(404, "the map page's script is not built (cd map-page && npm ci && npm run build)")
    return FileResponse(path, media_type="text/javascript")


def clusters_route(request: Request) -> Response:
    st = state(request)
    served = cache(request).get(request, resolve_key(request, request.path_params["model"]))
    doc = iiif_clusters.cluster_collection(urls=st.urls, key=served.data.key, model=served.data.meta["model"],
                                           clusters=served.clusters)
    return JsonLd(doc, PREZI3_MEDIA)


def cluster_page_route(request: Request) -> Response:
    st = state(request)
    served = cache(request).get(request, resolve_key(request, request.path_params["model"]))
    wanted = request.path_params["cluster"]
    order = [c["id"] for c in served.clusters]
    if wanted not in order:
        raise ApiError(404, f"no cluster {wanted} in the map of {served.data.key}")
    at = order.index(wanted)
    regions = st.store.regions_by_id(served.members(wanted))
    views = [regions[r] for r in sorted(regions, key=lambda r: (regions[r].manifest_id, regions[r].canvas_position,
                                                                   regions[r].y, regions[r].x, r))]
    doc = iiif_clusters.cluster_page(served.clusters[at], views, urls=st.urls, key=served.data.key,
                                     model=served.data.meta["model"], prev_id=order[at - 1] if at > 0 else None,
                                     next_id=order[at + 1] if at + 1 < len(order) else None)
    return JsonLd(doc, PREZI3_MEDIA)


def map_page(request: Request) -> Response:
    from .pages.map_page import render_map_page

    return render_map_page(request)


def atlas_routes() -> list[BaseRoute]:
    return [
        Route("/map", map_page, methods=["GET", "HEAD"]),
        Route(f"/map/{BUNDLE_NAME}", map_script, methods=["GET", "HEAD"]),
        Route("/map/open/{region}", open_in_viewer, methods=["GET"]),
        Route("/map/{model}.json", map_json, methods=["GET"]),
        Route("/map/{model}.bin", map_binary, methods=["GET"]),
        Route("/map/{model}/atlas/{version}/{n:int}.jpg", atlas_sheet, methods=["GET"]),
        Route("/clusters/{model}", clusters_route, methods=["GET"]),
        Route("/clusters/{model}/{cluster:int}", cluster_page_route, methods=["GET"]),
    ]
