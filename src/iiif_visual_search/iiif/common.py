"""What every IIIF builder shares: context URIs, media types, our URL scheme and a plain region view.

Everything in ``iiif/`` is a pure function of its arguments: rows in, JSON-ready dicts out, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any
from urllib.parse import quote, urlencode

PREZI3_CONTEXT = "http://iiif.io/api/presentation/3/context.json"
PREZI2_CONTEXT = "http://iiif.io/api/presentation/2/context.json"
SEARCH1_CONTEXT = "http://iiif.io/api/search/1/context.json"
SEARCH2_CONTEXT = "http://iiif.io/api/search/2/context.json"
DISCOVERY_CONTEXT = "http://iiif.io/api/discovery/1/context.json"
W3C_ANNO_CONTEXT = "http://www.w3.org/ns/anno.jsonld"
SEARCH1_PROFILE = "http://iiif.io/api/search/1/search"
AUTOCOMPLETE1_PROFILE = "http://iiif.io/api/search/1/autocomplete"
MEDIA_FRAGMENTS = "http://www.w3.org/TR/media-frags/"


def media_type(context: str) -> str:
    """The JSON-LD media type the IIIF specs ask for, with the API's context as profile."""
    return f'application/ld+json;profile="{context}"'


PREZI3_MEDIA = media_type(PREZI3_CONTEXT)
PREZI2_MEDIA = media_type(PREZI2_CONTEXT)
SEARCH1_MEDIA = media_type(SEARCH1_CONTEXT)
SEARCH2_MEDIA = media_type(SEARCH2_CONTEXT)
DISCOVERY_MEDIA = media_type(DISCOVERY_CONTEXT)


def lang_map(text: str, language: str = "none") -> dict[str, list[str]]:
    return {language: [text]}


def language_map(value: Any) -> dict[str, list[str]] | None:
    """A source manifest's ``label`` as a Presentation 3 language map, its languages kept, or None.

    Takes a v3 map as it is, and v2's forms: a string, ``{"@value", "@language"}``, or a list of either.
    """
    if isinstance(value, Mapping) and "@value" not in value:
        out = {str(k): [str(v) for v in (vals if isinstance(vals, list) else [vals]) if v is not None]
               for k, vals in value.items()}
        return {k: v for k, v in out.items() if v} or None
    merged: dict[str, list[str]] = {}
    for item in value if isinstance(value, list) else [value]:
        if isinstance(item, str) and item:
            merged.setdefault("none", []).append(item)
        elif isinstance(item, Mapping) and item.get("@value"):
            merged.setdefault(str(item.get("@language") or "none"), []).append(str(item["@value"]))
    return merged or None


def xywh(x: int, y: int, w: int, h: int) -> str:
    # Mirador 4 parses the fragment with parseInt, so plain integers only (no pixel:/percent: prefix).
    return f"xywh={int(x)},{int(y)},{int(w)},{int(h)}"


# A page of 200 annotations names the same few manifests 200 times each: their escaped ids are kept.
_quote = lru_cache(maxsize=4096)(quote)


@dataclass(frozen=True)
class Urls:
    """Every public URL the service mints, from one base URL, so ids and routes never drift apart."""

    base: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "base", self.base.rstrip("/"))

    def _q(self, url: str, params: Mapping[str, Any] | None) -> str:
        clean = {k: v for k, v in (params or {}).items() if v not in (None, "", [])}
        return f"{url}?{urlencode(clean, doseq=True)}" if clean else url

    def manifest(self, mid: str) -> str:
        return f"{self.base}/iiif/{_quote(mid)}/manifest"

    def regions(self, mid: str, position: int, version: int | None = None, all_regions: bool = False) -> str:
        """``all_regions``: the page that also lists separators and other noise (``?all=true``)."""
        url = f"{self.base}/iiif/{_quote(mid)}/canvas/{position}/regions"
        return self._q(url, {"version": version, "all": "true" if all_regions else None})

    def annotation(self, mid: str, rid: str) -> str:
        return f"{self.base}/iiif/{_quote(mid)}/annotation/{quote(rid)}"

    def text_annotation(self, mid: str, rid: str) -> str:
        return f"{self.base}/iiif/{_quote(mid)}/annotation/{quote(rid)}/text"

    def search(self, version: int, mid: str | None = None, params: Mapping[str, Any] | None = None) -> str:
        url = f"{self.base}/search/{version}" + (f"/{quote(mid)}" if mid else "")
        return self._q(url, params)

    def autocomplete(self, version: int, mid: str | None = None, params: Mapping[str, Any] | None = None) -> str:
        url = f"{self.base}/autocomplete/{version}" + (f"/{quote(mid)}" if mid else "")
        return self._q(url, params)

    def similar(self, rid: str | None = None, params: Mapping[str, Any] | None = None) -> str:
        url = f"{self.base}/similar" + (f"/{quote(rid)}" if rid else "")
        return self._q(url, params)

    def region_image(self, rid: str, width: int | None = None) -> str:
        """The cached region image; with ``width``, a copy at most that wide (thumbnails)."""
        return self._q(f"{self.base}/regions/{quote(rid)}/image.jpg", {"w": width})

    def annotations(self, page: int | None = None) -> str:
        return f"{self.base}/annotations" + (f"/page/{page}" if page is not None else "")

    def activity(self, page: int | None = None) -> str:
        return f"{self.base}/activity" + (f"/page/{page}" if page is not None else "")

    def collection(self) -> str:
        return f"{self.base}/collection"

    def canvas(self, mid: str, cid: str) -> str:
        """The public id of a canvas whose own id is not an http(s) URI (a book ingested from local files)."""
        return f"{self.base}/iiif/{quote(mid)}/canvas/{quote(cid)}"

    def image_service(self, cid: str, version: int = 3) -> str:
        """Our Image API service for the page image of a canvas ingested from local files."""
        return f"{self.base}/image/{version}/{quote(cid)}"


@dataclass(frozen=True)
class RegionView:
    """One region with what the IIIF builders need from its canvas, manifest and label."""

    id: str
    manifest_id: str
    manifest_uri: str
    manifest_label: str
    canvas_uri: str
    canvas_position: int
    canvas_width: int
    canvas_height: int
    x: int
    y: int
    w: int
    h: int
    block_type: str = ""
    caption: str = ""
    context_before: str = ""
    context_after: str = ""
    flags: tuple[str, ...] = ()
    label: str = ""
    label_source: str = ""
    probability: float | None = None
    image_service: str = ""
    image_service_version: int | None = None
    image_width: int | None = None
    image_height: int | None = None
    has_cached_image: bool = False
    # The manifest's label with its languages (``language_map``); the builders fall back to manifest_label.
    manifest_label_map: dict[str, list[str]] | None = field(default=None, compare=False, hash=False)

    def manifest_label_lang(self) -> dict[str, list[str]]:
        return self.manifest_label_map or lang_map(self.manifest_label or self.manifest_id)

    @classmethod
    def from_row(cls, row: Mapping[str, Any], *, keys: Sequence[str] | None = None,
                 manifest_label_map: dict[str, list[str]] | None = None) -> RegionView:
        """From a catalogue row joined with canvas, manifest and label columns (missing ones default).
        ``keys``: the row's column names, when the caller converts many rows of one query (a harvest page
        has 200). The row is read into a dict once: ``sqlite3.Row`` finds a column by name by comparing it
        with each name in turn, and the 25 lookups of a row were most of a harvest page's time."""
        values = dict(zip(keys, row, strict=True)) if keys is not None else {k: row[k] for k in row.keys()}
        get = values.get
        flags = get("flags") or ""
        return cls(
            id=values["id"], manifest_id=values["manifest_id"], manifest_uri=get("manifest_uri") or "",
            manifest_label=get("manifest_label") or "", canvas_uri=values["canvas_uri"],
            canvas_position=int(get("canvas_position") or 0), canvas_width=int(get("canvas_width") or 0),
            canvas_height=int(get("canvas_height") or 0), x=int(values["x"]), y=int(values["y"]),
            w=int(values["w"]), h=int(values["h"]), block_type=get("block_type") or "",
            caption=get("caption") or "", context_before=get("context_before") or "",
            context_after=get("context_after") or "",
            flags=tuple(filter(None, flags.split(","))) if isinstance(flags, str) else tuple(flags),
            label=get("label") or "", label_source=get("label_source") or "", probability=get("probability"),
            image_service=get("image_service") or "", image_service_version=get("image_service_version"),
            image_width=get("image_width"), image_height=get("image_height"),
            has_cached_image=bool(get("image_path")), manifest_label_map=manifest_label_map,
        )

    @property
    def fragment(self) -> str:
        return xywh(self.x, self.y, self.w, self.h)

    @property
    def text(self) -> str:
        """The searchable text of the region, in reading order: before, caption, after."""
        return " ".join(t for t in (self.context_before, self.caption, self.context_after) if t)


def image_region_url(region: RegionView, max_width: int = 300) -> str:
    """An IIIF Image API URL for the region, or '' without an image service.

    Canvas and image sizes may differ, so the box is scaled to image pixels. The size is ``w,`` on both 2.x
    and 3.0 (level 1 on either) and never above the region's own width, which 3.0 forbids without ``^``.
    """
    if not region.image_service or region.canvas_width <= 0 or region.canvas_height <= 0:
        return ""
    sx = (region.image_width or region.canvas_width) / region.canvas_width
    sy = (region.image_height or region.canvas_height) / region.canvas_height
    x, y = int(region.x * sx), int(region.y * sy)
    w, h = max(1, int(round(region.w * sx))), max(1, int(round(region.h * sy)))
    width = max(1, min(max_width, w))
    return f"{region.image_service.rstrip('/')}/{x},{y},{w},{h}/{width},/0/default.jpg"


def thumbnail(region: RegionView, urls: Urls, max_width: int = 300) -> list[dict[str, Any]]:
    """A Prezi-3 thumbnail list: the image service crop, else our cached crop, else nothing."""
    url = image_region_url(region, max_width)
    if not url and region.has_cached_image:
        url = urls.region_image(region.id, max_width)
    return [{"id": url, "type": "Image", "format": "image/jpeg"}] if url else []
