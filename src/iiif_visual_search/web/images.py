"""Images that arrive with a query: uploads, ``image_url`` fetches and crops of ingested canvases.

Decoding refuses anything over a pixel limit before the pixels are decoded (decompression bombs) and only
accepts common raster formats. ``image_url`` is http(s) only; its host is resolved and every address must
be public (no loopback, private, link-local, reserved or multicast) unless the operator allows it, and the
connection goes to the address that was checked, so a DNS answer cannot change between check and use.
"""

from __future__ import annotations

import io
import ipaddress
import socket
import warnings
from pathlib import Path
from urllib.parse import unquote, urljoin, urlparse

import httpx
from PIL import Image

from .errors import ApiError

ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "TIFF", "BMP")
MAX_REDIRECTS = 3


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


def _public(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not (ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_reserved or ip.is_multicast
                or ip.is_unspecified)


def check_url(url: str, allow_private: bool) -> tuple[str, str, int]:
    """(host, address to connect to, port) for an allowed URL; ApiError 400/422 otherwise."""
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https"):
        raise ApiError(422, f"image_url must be an http or https URL, not {parsed.scheme or 'a relative'} URL")
    host = parsed.hostname
    if not host:
        raise ApiError(422, "image_url has no host")
    if parsed.username or parsed.password:
        raise ApiError(422, "image_url must not carry credentials")
    try:
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
    except ValueError:
        raise ApiError(422, "image_url has an invalid port") from None
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise ApiError(422, f"cannot resolve the host of image_url ({host}): {exc}") from None
    addresses = sorted({info[4][0] for info in infos})
    if not addresses:
        raise ApiError(422, f"the host of image_url ({host}) has no address")
    if not allow_private:
        blocked = [a for a in addresses if not _public(a)]
        if blocked:
            raise ApiError(422, f"image_url points at a non-public address ({blocked[0]}); refused")
    return host, addresses[0], port


def fetch_bytes(url: str, *, max_bytes: int, timeout_s: float, allow_private: bool,
                check: bool = True, transport: httpx.BaseTransport | None = None) -> bytes:
    """GET a URL with a size limit and a timeout, re-checking every redirect hop.

    ``check=False`` is for URLs from ingested manifests (the operator chose those hosts); those may also be
    ``file:`` URLs of a manifest ingested from disk (the local sample). Only the catalogue's URL itself may
    be a file: a redirect goes through httpx, which refuses ``file:``.
    """
    parsed = urlparse(url)
    if not check and parsed.scheme == "file":
        path = Path(unquote(parsed.path))
        try:
            size = path.stat().st_size
            if size > max_bytes:
                raise ApiError(413, f"image is {size} bytes, over the limit of {max_bytes}")
            return path.read_bytes()
        except OSError as exc:
            raise ApiError(422, f"cannot read the canvas image: {exc.strerror}") from None
    for _ in range(MAX_REDIRECTS + 1):
        headers = {"Accept": "image/*"}
        request_url, extensions = url, {}
        if check:
            host, address, port = check_url(url, allow_private)
            parsed = urlparse(url)
            literal = f"[{address}]" if ":" in address else address
            request_url = parsed._replace(netloc=f"{literal}:{port}").geturl()
            headers["Host"] = parsed.netloc.rsplit("@", 1)[-1]
            extensions = {"sni_hostname": host}
        try:
            with httpx.Client(timeout=timeout_s, transport=transport, follow_redirects=False) as client:
                with client.stream("GET", request_url, headers=headers, extensions=extensions) as response:
                    if response.is_redirect:
                        location = response.headers.get("location", "")
                        url = urljoin(url, location)
                        continue
                    if response.status_code >= 400:
                        raise ApiError(422, f"image URL answered HTTP {response.status_code}")
                    declared = response.headers.get("content-length", "")
                    if declared.isdigit() and int(declared) > max_bytes:
                        raise ApiError(413, f"image at the URL is {declared} bytes, over the limit of {max_bytes}")
                    chunks, total = [], 0
                    for chunk in response.iter_bytes():
                        total += len(chunk)
                        if total > max_bytes:
                            raise ApiError(413, f"image at the URL is over the limit of {max_bytes} bytes")
                        chunks.append(chunk)
                    return b"".join(chunks)
        except httpx.TimeoutException:
            raise ApiError(422, f"timed out fetching the image after {timeout_s:g} s") from None
        except httpx.HTTPError as exc:
            raise ApiError(422, f"cannot fetch the image: {exc}") from None
    raise ApiError(422, f"too many redirects (over {MAX_REDIRECTS})")


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
        x, y, w, h = (int(round(float(p))) for p in text.split(","))
    except ValueError:
        raise ApiError(422, f"xywh must be four integers x,y,w,h, got {value!r}") from None
    x0, y0 = max(0, x), max(0, y)
    x1, y1 = min(canvas_w, x + w), min(canvas_h, y + h)
    if x1 - x0 < 1 or y1 - y0 < 1:
        raise ApiError(422, f"xywh {value!r} lies outside the {canvas_w}x{canvas_h} canvas")
    return x0, y0, x1 - x0, y1 - y0
