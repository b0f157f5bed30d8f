"""Images that arrive with a query: uploads, ``image_url`` fetches and crops of ingested canvases.

Decoding refuses anything over a pixel limit before the pixels are decoded (decompression bombs) and only
accepts common raster formats. Fetching goes through ``outbound`` (the one guard against server-side request
forgery).
"""

from __future__ import annotations

import io
import math
import warnings

from PIL import Image

from .errors import ApiError

ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "TIFF", "BMP")


def decode_image(data: bytes, max_pixels: int) -> Image.Image:
    """An RGB image from bytes, or ApiError 413 (too many pixels) / 415 (not a supported image)."""
    if not data:
        raise ApiError(422, "the image is empty")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
            width, height = image.size
            if width * height > max_pixels:
                raise ApiError(413, f"image is {width}x{height} pixels, over the limit of {max_pixels} pixels")
            image.load()
    except ApiError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ApiError(413, f"image refused as a decompression bomb: {exc}") from None
    except Image.UnidentifiedImageError:
        raise ApiError(415, f"not a supported image (accepted: {', '.join(ALLOWED_FORMATS)})") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ApiError(422, f"broken image: {exc}") from None
    return image.convert("RGB") if image.mode != "RGB" else image


def crop_canvas_box(image: Image.Image, box: tuple[int, int, int, int], canvas_w: int, canvas_h: int) -> Image.Image:
    """Crop a canvas-pixel box from an image of the whole canvas at any resolution."""
    sx, sy = image.width / canvas_w, image.height / canvas_h
    x, y, w, h = box
    left, top = int(x * sx), int(y * sy)
    right, bottom = max(left + 1, int(round((x + w) * sx))), max(top + 1, int(round((y + h) * sy)))
    return image.crop((left, top, min(right, image.width), min(bottom, image.height)))


def parse_xywh(value: str, canvas_w: int, canvas_h: int) -> tuple[int, int, int, int]:
    """``x,y,w,h`` (optionally ``xywh=`` prefixed) as integers clipped to the canvas; ApiError 422 if empty."""
    text = value.strip()
    if text.startswith("xywh="):
        text = text[5:]
    if text.startswith("pixel:"):
        text = text[6:]
    try:
        numbers = [float(p) for p in text.split(",")]
    except ValueError:
        numbers = []
    # inf and NaN are floats too: int(round(inf)) raised OverflowError, a 500.
    if len(numbers) != 4 or not all(math.isfinite(n) and abs(n) <= 1e9 for n in numbers):
        raise ApiError(400, f"xywh must be four integers x,y,w,h, got {value!r}")
    x, y, w, h = (int(round(n)) for n in numbers)
    x0, y0 = max(0, x), max(0, y)
    x1, y1 = min(canvas_w, x + w), min(canvas_h, y + h)
    if x1 - x0 < 1 or y1 - y0 < 1:
        raise ApiError(422, f"xywh {value!r} lies outside the {canvas_w}x{canvas_h} canvas")
    return x0, y0, x1 - x0, y1 - y0
