"""A IIIF Image API level-1 service for the page images of books ingested from local files.

A browser cannot load ``file:`` URLs, so a book read from disk (the offline demo's sample, ``ivs ingest
./my-book.json`` on one's own scans) would show blank pages in any viewer. Its page images are served here
instead: ``/image/{3|2}/{canvas}/info.json`` and ``/image/{3|2}/{canvas}/{region}/{size}/0/default.jpg``,
cropped and scaled with Pillow, with ``sizes`` and ``tiles`` so viewers can zoom.

Only canvases of manifests that were themselves read from a local file are served, and only their painting
image, resolved as ingest resolved it: a remote manifest never makes this route read a local file.

The service's full size is the size the manifest gives the image (else the canvas's), so that region boxes
in canvas pixels map onto it as they map onto any library's image service; the file is scaled to it.
"""

from __future__ import annotations

import io
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .errors import ApiError
from .local_books import local_image_file
from .state import state

IMAGE2_CONTEXT = "http://iiif.io/api/image/2/context.json"
IMAGE3_CONTEXT = "http://iiif.io/api/image/3/context.json"
TILE = 512
MAX_SIDE = 4096          # largest answer side: enough for any screen, bounded work per request
DECODED_KEEP = 4         # decoded page images kept in memory (a viewer asks for many tiles of one page)
FORMATS = {"jpg": ("JPEG", "image/jpeg"), "png": ("PNG", "image/png")}


@dataclass(frozen=True)
class LocalImage:
    path: Path
    width: int   # the service's full size (see the module docstring)
    height: int


@dataclass(frozen=True)
class ImageRequest:
    box: tuple[int, int, int, int]   # in the service's full-size pixels
    size: tuple[int, int]
    format: str


def _size_of(size: str, w: int, h: int) -> tuple[int, int]:
    """The answer's pixel size for an Image API size parameter over a ``w`` x ``h`` region."""
    text = size.lstrip("^")
    if text in ("max", "full"):
        return w, h
    if text.startswith("pct:"):
        pct = float(text[4:])
        if not 0 < pct <= 100 * 16:
            raise ValueError(size)
        return max(1, round(w * pct / 100)), max(1, round(h * pct / 100))
    best_fit = text.startswith("!")
    sw, comma, sh = text.lstrip("!").partition(",")
    if not comma:
        raise ValueError(size)
    if best_fit:
        scale = min(int(sw) / w, int(sh) / h)
        return max(1, round(w * scale)), max(1, round(h * scale))
    if sw and sh:
        return int(sw), int(sh)
    if sw:
        return int(sw), max(1, round(h * int(sw) / w))
    return max(1, round(w * int(sh) / h)), int(sh)


def parse_request(image: LocalImage, region: str, size: str, rotation: str, quality: str) -> ImageRequest:
    """An Image API 2/3 request against ``image``; ApiError 400 for anything level 1 does not offer."""
    name, _, fmt = quality.rpartition(".")
    if fmt not in FORMATS or name not in ("default", "color", "native"):
        raise ApiError(400, f"quality.format must be default.jpg or default.png, got {quality[:40]!r}")
    if rotation not in ("0", "0.0"):
        raise ApiError(400, "this image service does not rotate (level 1)")
    try:
        if region == "full":
            box = (0, 0, image.width, image.height)
        elif region == "square":
            side = min(image.width, image.height)
            box = ((image.width - side) // 2, (image.height - side) // 2, side, side)
        else:
            pct = region.startswith("pct:")
            x, y, w, h = (float(v) for v in region[4 if pct else 0:].split(","))
            if pct:
                x, w = x * image.width / 100, w * image.width / 100
                y, h = y * image.height / 100, h * image.height / 100
            x0, y0 = max(0, round(x)), max(0, round(y))
            x1, y1 = min(image.width, round(x + w)), min(image.height, round(y + h))
            if x1 <= x0 or y1 <= y0:
                raise ApiError(400, f"region {region!r} lies outside the {image.width}x{image.height} image")
            box = (x0, y0, x1 - x0, y1 - y0)
        out = _size_of(size, box[2], box[3])
    except (ValueError, ZeroDivisionError):
        raise ApiError(400, f"cannot read region {region[:60]!r} / size {size[:60]!r}") from None
    if not size.startswith("^") and (out[0] > box[2] or out[1] > box[3]):
        raise ApiError(400, f"size {size!r} is larger than the region; ask with ^ to upscale")
    if out[0] > MAX_SIDE or out[1] > MAX_SIDE or out[0] < 1 or out[1] < 1:
        raise ApiError(400, f"answers are at most {MAX_SIDE} pixels a side")
    return ImageRequest(box, out, fmt)


def info(image: LocalImage, service_id: str, version: int) -> dict[str, Any]:
    """info.json: level 1, the full size, powers-of-two ``sizes`` and 512-pixel tiles."""
    sizes, factors = [], []
    factor = 1
    while True:
        w, h = -(-image.width // factor), -(-image.height // factor)
        if w <= MAX_SIDE and h <= MAX_SIDE:
            sizes.append({"width": w, "height": h})
        factors.append(factor)
        if w <= TILE and h <= TILE:
            break
        factor *= 2
    sizes.reverse()
    tiles = [{"width": TILE, "height": TILE, "scaleFactors": factors}]
    if version == 2:
        return {"@context": IMAGE2_CONTEXT, "@id": service_id, "protocol": "http://iiif.io/api/image",
                "width": image.width, "height": image.height, "sizes": sizes, "tiles": tiles,
                "profile": ["http://iiif.io/api/image/2/level1.json",
                            {"formats": ["jpg", "png"], "qualities": ["default"],
                             "maxWidth": MAX_SIDE, "maxHeight": MAX_SIDE}]}
    return {"@context": IMAGE3_CONTEXT, "id": service_id, "type": "ImageService3", "protocol":
            "http://iiif.io/api/image", "profile": "level1", "width": image.width, "height": image.height,
            "maxWidth": MAX_SIDE, "maxHeight": MAX_SIDE, "sizes": sizes, "tiles": tiles,
            "extraFormats": ["png"]}


LOCAL_PAGE_MAX_BYTES = 256_000_000


class _Decoded:
    """The last few decoded page images: a viewer asks for many tiles of the same page at once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: OrderedDict[tuple[str, int], Image.Image] = OrderedDict()

    def get(self, path: Path, max_pixels: int, max_bytes: int) -> Image.Image:
        key = (str(path), path.stat().st_mtime_ns)
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        from ..files import FileRefused, read_regular_file
        from .images import decode_image

        try:  # the same rules as every local read: a regular file, under the download cap
            data = read_regular_file(path, max_bytes)
        except FileRefused:
            raise ApiError(413, "the page image is too large or not a regular file") from None
        image = decode_image(data, max_pixels)
        with self._lock:
            self._items[key] = image
            while len(self._items) > DECODED_KEEP:
                self._items.popitem(last=False)
        return image


_decoded = _Decoded()
_CANVAS_ID = re.compile(r"^[A-Za-z0-9_.-]{1,80}$")


def _local_image(request: Request) -> LocalImage:
    st = state(request)
    cid, version = request.path_params["canvas"], request.path_params["version"]
    if version not in (2, 3) or not _CANVAS_ID.match(cid):
        raise ApiError(404, "no such image service")
    row = st.catalogue.query_one(
        "SELECT c.*, m.url AS manifest_url FROM canvas c JOIN manifest m ON m.id = c.manifest_id "
        "WHERE c.id=? AND m.status='ok'", (cid,))
    path = local_image_file(row["manifest_url"], row["image_url"]) if row is not None else None
    if row is None or path is None:
        raise ApiError(404, f"no local page image for canvas {cid!r}")
    return LocalImage(path, int(row["image_width"] or row["width"]), int(row["image_height"] or row["height"]))


def info_route(request: Request) -> Response:
    image = _local_image(request)
    version = request.path_params["version"]
    service_id = state(request).urls.image_service(request.path_params["canvas"], version)
    media = f'application/ld+json;profile="{IMAGE3_CONTEXT if version == 3 else IMAGE2_CONTEXT}"'
    return JSONResponse(info(image, service_id, version), media_type=media,
                        headers={"Cache-Control": "public, max-age=3600"})


def image_route(request: Request) -> Response:
    image = _local_image(request)
    p = request.path_params
    req = parse_request(image, p["region"], p["size"], p["rotation"], p["quality"])
    opts = state(request).options
    # The operator's own scans (often TIFF masters) may exceed the download cap; pixels are still capped.
    page = _decoded.get(image.path, opts.max_image_pixels, max(opts.max_fetch_bytes, LOCAL_PAGE_MAX_BYTES))
    sx, sy = page.width / image.width, page.height / image.height
    x, y, w, h = req.box
    crop = page.crop((int(x * sx), int(y * sy), max(int(x * sx) + 1, round((x + w) * sx)),
                      max(int(y * sy) + 1, round((y + h) * sy))))
    if crop.size != req.size:
        crop = crop.resize(req.size, Image.Resampling.LANCZOS, reducing_gap=2.0)
    pil_format, media = FORMATS[req.format]
    buf = io.BytesIO()
    crop.convert("RGB").save(buf, pil_format, **({"quality": 85} if pil_format == "JPEG" else {}))
    return Response(buf.getvalue(), media_type=media, headers={"Cache-Control": "public, max-age=86400"})


def redirect_to_info(request: Request) -> Response:
    p = request.path_params
    from starlette.responses import RedirectResponse

    return RedirectResponse(state(request).urls.image_service(p["canvas"], p["version"]) + "/info.json", 303)


ROUTES = [
    Route("/image/{version:int}/{canvas}/info.json", info_route),
    Route("/image/{version:int}/{canvas}", redirect_to_info),
    Route("/image/{version:int}/{canvas}/{region}/{size}/{rotation}/{quality}", image_route),
]
