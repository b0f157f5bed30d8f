"""A book ingested from local files, published over http: no ``file:`` URL or local path leaves the service.

A manifest read from disk may name its page images, its layout files and even its canvases by ``file:``
URLs or paths; a browser can load none of them. In the published copy:

* each canvas with a local page image paints it through our Image API service (``Urls.image_service``);
* a canvas id that is not an http(s) URI becomes ``Urls.canvas(manifest, canvas)``, everywhere it is
  referenced (annotation targets, ranges, ``start``), as the region annotations and search hits name it;
* other embedded resources with local ids (annotation pages, annotations, ranges) get http ids minted under
  the manifest's URL, and links to local files (``seeAlso`` layout files, ``rendering``, ``thumbnail``) go.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .common import Urls
from .manifests import canvases_of

# Keys whose values are links to other documents: a local one cannot be followed, so it is left out.
LINK_KEYS = ("seeAlso", "rendering", "thumbnail", "homepage", "logo", "related", "within", "partOf", "service",
             "services", "provider", "supplementary", "annotations", "otherContent")


@dataclass(frozen=True)
class LocalCanvas:
    id: str               # our short canvas id
    local_image: bool     # its painting image is a local file that our image service serves


def is_http(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(("http://", "https://"))


def _id_key(obj: Mapping[str, Any]) -> str | None:
    return "id" if "id" in obj else "@id" if "@id" in obj else None


def _image_service(urls: Urls, cid: str, version: int) -> dict[str, Any]:
    if version >= 3:
        return {"id": urls.image_service(cid, 3), "type": "ImageService3", "profile": "level1"}
    return {"@context": "http://iiif.io/api/image/2/context.json", "@id": urls.image_service(cid, 2),
            "profile": "http://iiif.io/api/image/2/level1.json"}


def _paint_from_service(canvas: dict[str, Any], urls: Urls, cid: str, version: int) -> None:
    """Point the canvas's painting image(s) at our image service."""
    service = _image_service(urls, cid, version)
    full = f"{service.get('id') or service['@id']}/full/{'max' if version >= 3 else 'full'}/0/default.jpg"
    bodies: list[dict[str, Any]] = []
    if version >= 3:
        for page in canvas.get("items") or []:
            for anno in (page.get("items") or []) if isinstance(page, dict) else []:
                if isinstance(anno, dict) and isinstance(anno.get("body"), dict):
                    bodies.append(anno["body"])
    else:
        for image in canvas.get("images") or []:
            if isinstance(image, dict) and isinstance(image.get("resource"), dict):
                bodies.append(image["resource"])
    for body in bodies:
        if is_http(body.get("id") or body.get("@id")) and body.get("service"):
            continue  # already served by an image server
        body[_id_key(body) or ("id" if version >= 3 else "@id")] = full
        body["format"] = "image/jpeg"
        body["service"] = [service] if version >= 3 else service


def _unfollowable(value: Any) -> bool:
    """A link to a local file: a bare path or URL, or a reference whose id is one and that embeds nothing."""
    if isinstance(value, str):
        return not is_http(value)
    if isinstance(value, dict):
        key = _id_key(value)
        return bool(key) and not is_http(value[key]) and not any(k in value for k in ("items", "resources"))
    return False


def _drop_local_links(node: Any) -> Any:
    if isinstance(node, list):
        return [_drop_local_links(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key in LINK_KEYS:
            if _unfollowable(value):
                continue
            if isinstance(value, list):
                value = [v for v in value if not _unfollowable(v)]
                if not value:
                    continue
        out[key] = _drop_local_links(value)
    return out


def _collect_local_ids(node: Any, found: set[str]) -> None:
    if isinstance(node, list):
        for v in node:
            _collect_local_ids(v, found)
    elif isinstance(node, dict):
        key = _id_key(node)
        if key and isinstance(node[key], str) and not is_http(node[key]):
            found.add(node[key])
        for k, v in node.items():
            if k != "@context":
                _collect_local_ids(v, found)


def _rename(node: Any, names: Mapping[str, str]) -> Any:
    if isinstance(node, list):
        return [_rename(v, names) for v in node]
    if isinstance(node, dict):
        return {k: (v if k == "@context" else _rename(v, names)) for k, v in node.items()}
    if isinstance(node, str) and not is_http(node):
        base, hash_, fragment = node.partition("#")
        if base in names:
            return names[base] + hash_ + fragment
    return node


def publish_local_manifest(doc: dict[str, Any], *, version: int, manifest_id: str,
                           canvases: Mapping[str, LocalCanvas], urls: Urls) -> dict[str, Any]:
    """``doc`` (an augmented manifest of a local book) with only http(s) URLs in it; see the module docstring.

    ``canvases`` maps the canvas ids as the catalogue stored them to our short ids.
    """
    for canvas in canvases_of(doc):
        local = canvases.get(str(canvas.get("id") or canvas.get("@id") or ""))
        if local is not None and local.local_image:
            _paint_from_service(canvas, urls, local.id, version)
    names = {uri: urls.canvas(manifest_id, c.id) for uri, c in canvases.items() if not is_http(uri)}
    doc = _drop_local_links(doc)
    found: set[str] = set()
    _collect_local_ids(doc, found)
    base = urls.manifest(manifest_id)
    for ident in sorted(found - names.keys()):
        names[ident] = f"{base}/local/{hashlib.sha256(ident.encode('utf-8')).hexdigest()[:16]}"
    return _rename(doc, names)
