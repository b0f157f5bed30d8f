"""IIIF Image API 2.1 and 3.0: reading info.json, choosing sizes within its limits, building request URLs.

Pure functions, no I/O: the fetch job asks ``plan_region`` what to request and how to crop the answer.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any


class ImageApiError(ValueError):
    """An info.json that cannot be used; the message is the reason stored in quarantine."""


@dataclass(frozen=True)
class TileSpec:
    width: int
    height: int
    scale_factors: tuple[int, ...]


@dataclass(frozen=True)
class ImageInfo:
    id: str  # service base URI, no trailing slash; request paths are appended to it (it may hold a '?')
    version: int  # 2 or 3
    level: int | None  # compliance level 0/1/2, None when the profile does not say
    width: int
    height: int
    max_width: int | None = None
    max_height: int | None = None
    max_area: int | None = None
    sizes: tuple[tuple[int, int], ...] = ()
    tiles: tuple[TileSpec, ...] = ()
    features: frozenset[str] = field(default_factory=frozenset)

    @property
    def arbitrary_sizes(self) -> bool:
        """Whether the service scales a region to any width we ask (level 1+, or the feature listed)."""
        if self.level is not None and self.level >= 1:
            return True
        return bool(self.features & {"sizeByW", "sizeByWh", "sizeByH"})

    @property
    def arbitrary_regions(self) -> bool:
        if self.level is not None and self.level >= 1:
            return True
        return "regionByPx" in self.features


@dataclass(frozen=True)
class SizePolicy:
    """How big a region image should be. Longer side at most ``max_long``, unless that would push the
    shorter side under ``min_short`` (the model input): then the shorter side wins. Never upscaled."""

    max_long: int = 1024
    min_short: int = 256

    def key(self) -> str:
        return f"{self.max_long}-{self.min_short}"


_LEVEL_RE = re.compile(r"level\s*([012])")


def compliance_level(profile: Any) -> int | None:
    """The level from a profile value: 'level1', a level URI (2.x: 'http://iiif.io/api/image/2/level1.json'),
    or a 2.x profile list whose first entry is the URI."""
    if isinstance(profile, list):
        for item in profile:
            if isinstance(item, str):
                level = compliance_level(item)
                if level is not None:
                    return level
        return None
    if isinstance(profile, str):
        match = _LEVEL_RE.search(profile)
        if match:
            return int(match.group(1))
    return None


def _features(doc: dict[str, Any]) -> frozenset[str]:
    found: set[str] = set()
    for feature in doc.get("extraFeatures") or []:
        if isinstance(feature, str):
            found.add(feature)
    profile = doc.get("profile")
    # 2.x lists supports inside profile objects after the level URI.
    if isinstance(profile, list):
        for item in profile:
            if isinstance(item, dict):
                found.update(s for s in item.get("supports") or [] if isinstance(s, str))
    return frozenset(found)


def detect_version(doc: dict[str, Any], hint: int | None = None) -> int:
    """2 or 3 from ``@context``, then ``type``/``@type``, then ``protocol``+``id`` form, then the profile URI,
    then the manifest's hint."""
    contexts = doc.get("@context")
    for ctx in contexts if isinstance(contexts, list) else [contexts]:
        if isinstance(ctx, str):
            if "iiif.io/api/image/3" in ctx:
                return 3
            if "iiif.io/api/image/2" in ctx or "iiif.io/api/image/1" in ctx:
                return 2
    kind = doc.get("type") or doc.get("@type") or ""
    if kind in ("ImageService3",):
        return 3
    if kind in ("ImageService2", "iiif:ImageProfile"):
        return 2
    profile = doc.get("profile")
    first = profile[0] if isinstance(profile, list) and profile else profile
    if isinstance(first, str):
        if "iiif.io/api/image/3" in first:
            return 3
        if "iiif.io/api/image/2" in first:
            return 2
    if "id" in doc and "@id" not in doc:
        return 3
    if "@id" in doc:
        return 2
    if hint in (2, 3):
        return hint
    raise ImageApiError("image service version not recognised (no @context, type or profile)")


def _positive_int(value: Any, name: str) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ImageApiError(f"info.json {name} is not an integer: {value!r}") from None
    if number <= 0:
        raise ImageApiError(f"info.json {name} must be positive, got {number}")
    return number


def _optional_int(doc: dict[str, Any], name: str) -> int | None:
    return _positive_int(doc[name], name) if doc.get(name) is not None else None


def parse_info(doc: dict[str, Any], fallback_id: str = "", version_hint: int | None = None) -> ImageInfo:
    """An ``ImageInfo`` from an info.json document (2.0, 2.1 or 3.0)."""
    if not isinstance(doc, dict):
        raise ImageApiError("info.json is not a JSON object")
    version = detect_version(doc, version_hint)
    service_id = doc.get("id") or doc.get("@id") or fallback_id
    if not isinstance(service_id, str) or not service_id:
        raise ImageApiError("info.json has no id")
    width = _positive_int(doc.get("width"), "width")
    height = _positive_int(doc.get("height"), "height")
    # 2.0 servers (IIPImage among them) state the limits inside the profile object, 2.1 and 3.0 at the top.
    limits = dict(doc)
    profile = doc.get("profile")
    if isinstance(profile, list):
        for item in profile:
            if isinstance(item, dict):
                for name in ("maxWidth", "maxHeight", "maxArea"):
                    if limits.get(name) is None and item.get(name) is not None:
                        limits[name] = item[name]
    max_width = _optional_int(limits, "maxWidth")
    max_height = _optional_int(limits, "maxHeight")
    # The spec: maxHeight defaults to maxWidth when only the latter is given.
    if max_width is not None and max_height is None:
        max_height = max_width
    sizes = []
    for item in doc.get("sizes") or []:
        if isinstance(item, dict) and item.get("width") and item.get("height"):
            sizes.append((int(item["width"]), int(item["height"])))
    tiles = []
    for item in doc.get("tiles") or []:
        if not isinstance(item, dict) or not item.get("width"):
            continue
        tw = int(item["width"])
        th = int(item.get("height") or tw)
        factors = tuple(sorted(int(f) for f in item.get("scaleFactors") or [1] if int(f) > 0))
        tiles.append(TileSpec(tw, th, factors or (1,)))
    return ImageInfo(
        id=service_id.rstrip("/"), version=version, level=compliance_level(doc.get("profile")),
        width=width, height=height, max_width=max_width, max_height=max_height,
        max_area=_optional_int(limits, "maxArea"), sizes=tuple(sorted(sizes)), tiles=tuple(tiles),
        features=_features(doc),
    )


def info_url(service_id: str) -> str:
    return service_id.rstrip("/") + "/info.json"


# --- sizes ------------------------------------------------------------------------------------------


def target_size(w: int, h: int, policy: SizePolicy) -> tuple[int, int]:
    """The size to store a ``w``×``h`` pixel region at (see ``SizePolicy``)."""
    long_side, short_side = max(w, h), max(1, min(w, h))
    scale = policy.max_long / long_side
    if short_side * scale < policy.min_short:
        scale = policy.min_short / short_side
    scale = min(1.0, scale)
    return max(1, round(w * scale)), max(1, round(h * scale))


def fit_limits(w: int, h: int, info: ImageInfo) -> tuple[int, int]:
    """Shrink ``w``×``h`` (keeping the aspect ratio) until the server's maxWidth/maxHeight/maxArea allow it."""
    scale = 1.0
    if info.max_width is not None and w > info.max_width:
        scale = min(scale, info.max_width / w)
    if info.max_height is not None and h > info.max_height:
        scale = min(scale, info.max_height / h)
    if info.max_area is not None and w * h > info.max_area:
        scale = min(scale, math.sqrt(info.max_area / (w * h)))
    if scale >= 1.0:
        return w, h
    # Floor so that rounding never lands one pixel over a limit.
    return max(1, math.floor(w * scale)), max(1, math.floor(h * scale))


# --- URL syntax -------------------------------------------------------------------------------------


def region_param(x: int, y: int, w: int, h: int, info: ImageInfo) -> str:
    if x == 0 and y == 0 and w == info.width and h == info.height:
        return "full"
    return f"{x},{y},{w},{h}"


def size_param(w: int, h: int, region_w: int, region_h: int, version: int) -> str:
    """2.x: ``full`` for the region's own size, else the canonical ``w,``. 3.0: ``max`` or the canonical
    ``w,h`` (3.0 never upscales without ``^``, and ``w,h`` is the form level 0 must accept)."""
    if w == region_w and h == region_h:
        return "max" if version == 3 else "full"
    return f"{w},{h}" if version == 3 else f"{w},"


def image_request_url(info: ImageInfo, region: str, size: str, fmt: str = "jpg") -> str:
    return f"{info.id}/{region}/{size}/0/default.{fmt}"


# --- planning ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Box:
    x: int
    y: int
    w: int
    h: int


@dataclass(frozen=True)
class TileRequest:
    url: str
    # Where the tile's pixels go in the stitched image (at the chosen scale factor).
    left: int
    top: int


@dataclass(frozen=True)
class Plan:
    """What to download for one region and how to turn it into the region image.

    ``direct``: one URL answers the region at ``size``. Otherwise the region is cut locally: from the image at
    ``source_url`` (a full image of ``source_size``), or from ``tiles`` stitched at ``scale_factor``.
    ``crop`` is then the box to cut, in the coordinates of that downloaded (or stitched) image.
    """

    size: tuple[int, int]
    direct: str = ""
    source_url: str = ""
    source_size: tuple[int, int] = (0, 0)
    tiles: tuple[TileRequest, ...] = ()
    scale_factor: int = 1
    crop: Box | None = None


def clip_box(box: Box, width: int, height: int) -> Box:
    x0, y0 = max(0, box.x), max(0, box.y)
    x1, y1 = min(width, box.x + box.w), min(height, box.y + box.h)
    if x1 - x0 < 1 or y1 - y0 < 1:
        raise ImageApiError(f"region {box.x},{box.y},{box.w},{box.h} lies outside the {width}x{height} image")
    return Box(x0, y0, x1 - x0, y1 - y0)


def canvas_to_image(box: Box, canvas_w: int, canvas_h: int, image_w: int, image_h: int) -> Box:
    """Scale a canvas box to image pixels (canvas and image sizes often differ) and clip it to the image."""
    sx, sy = image_w / canvas_w, image_h / canvas_h
    x0, y0 = round(box.x * sx), round(box.y * sy)
    x1, y1 = round((box.x + box.w) * sx), round((box.y + box.h) * sy)
    return clip_box(Box(x0, y0, max(1, x1 - x0), max(1, y1 - y0)), image_w, image_h)


def plan_region(info: ImageInfo, region: Box, policy: SizePolicy) -> Plan:
    """How to get ``region`` (image pixels, already clipped) from this service at the policy's size."""
    want = target_size(region.w, region.h, policy)
    if info.arbitrary_regions and info.arbitrary_sizes:
        w, h = fit_limits(*want, info)
        url = image_request_url(
            info, region_param(region.x, region.y, region.w, region.h, info),
            size_param(w, h, region.w, region.h, info.version))
        return Plan(size=(w, h), direct=url)
    if info.tiles:
        return _plan_tiles(info, region, want)
    return _plan_full(info, region, want)


def _shrink_to(want: tuple[int, int], crop: Box) -> tuple[int, int]:
    """``want``, scaled down (aspect kept) when the downloaded pixels are fewer: we never upscale."""
    scale = min(1.0, crop.w / want[0], crop.h / want[1])
    return max(1, round(want[0] * scale)), max(1, round(want[1] * scale))


def _plan_full(info: ImageInfo, region: Box, want: tuple[int, int]) -> Plan:
    """Level 0 without tiles: a listed size of the whole image (the smallest that still gives the region at
    the wanted size, else the largest), or the whole image at its full size when none are listed."""
    choice: tuple[int, int] | None = None
    for sw, sh in info.sizes:  # sorted ascending
        if sw > info.width or sh > info.height:
            continue
        if fit_limits(sw, sh, info) != (sw, sh):
            continue
        choice = (sw, sh)
        if region.w * sw / info.width >= want[0] and region.h * sh / info.height >= want[1]:
            break
    if choice is None:
        w, h = fit_limits(info.width, info.height, info)
        size = size_param(w, h, info.width, info.height, info.version)
        choice = (w, h)
    else:
        # 2.1 asks for listed sizes as canonical 'w,'; 3.0 as 'w,h'.
        size = f"{choice[0]},{choice[1]}" if info.version == 3 else f"{choice[0]},"
        if choice == (info.width, info.height):
            size = "max" if info.version == 3 else "full"
    sx, sy = choice[0] / info.width, choice[1] / info.height
    crop = clip_box(Box(round(region.x * sx), round(region.y * sy), max(1, round(region.w * sx)),
                        max(1, round(region.h * sy))), *choice)
    return Plan(size=_shrink_to(want, crop), source_url=image_request_url(info, "full", size), source_size=choice,
                crop=crop)


def _plan_tiles(info: ImageInfo, region: Box, want: tuple[int, int]) -> Plan:
    """Level 0 with tiles: the coarsest scale factor that still gives the wanted size, the tiles covering the
    region at that scale, stitched and cut locally (what a deep-zoom viewer does)."""
    options = [(f, spec) for spec in info.tiles for f in spec.scale_factors]
    options.sort(key=lambda item: -item[0])
    factor, spec = options[-1]
    for f, s in options:
        if region.w / f >= want[0] and region.h / f >= want[1]:
            factor, spec = f, s
            break
    span_w, span_h = spec.width * factor, spec.height * factor
    col0, col1 = region.x // span_w, (region.x + region.w - 1) // span_w
    row0, row1 = region.y // span_h, (region.y + region.h - 1) // span_h
    tiles = []
    for row in range(row0, row1 + 1):
        for col in range(col0, col1 + 1):
            tx, ty = col * span_w, row * span_h
            tw, th = min(span_w, info.width - tx), min(span_h, info.height - ty)
            out_w, out_h = math.ceil(tw / factor), math.ceil(th / factor)
            size = f"{out_w},{out_h}" if info.version == 3 else f"{out_w},"
            if factor == 1 and (out_w, out_h) == (tw, th):
                size = "max" if info.version == 3 else "full"
            url = image_request_url(info, region_param(tx, ty, tw, th, info), size)
            tiles.append(TileRequest(url, (col - col0) * spec.width, (row - row0) * spec.height))
    origin_x, origin_y = col0 * span_w, row0 * span_h
    crop = Box((region.x - origin_x) // factor, (region.y - origin_y) // factor,
               max(1, math.ceil(region.w / factor)), max(1, math.ceil(region.h / factor)))
    return Plan(size=_shrink_to(want, crop), tiles=tuple(tiles), scale_factor=factor, crop=crop)
