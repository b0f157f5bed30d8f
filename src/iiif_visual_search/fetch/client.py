"""A polite asynchronous HTTP client for image servers that other people run.

Per-host and global concurrency limits, timeouts, retries with exponential backoff and jitter on timeouts,
429 and 5xx (a ``Retry-After`` pauses the whole host, not just the one request), an identifying User-Agent,
a response size cap, and images decoded and verified before anyone stores them. ``file://`` URLs and local
paths are read from disk through the same interface.
"""

from __future__ import annotations

import asyncio
import io
import json
import random
import time
import warnings
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from PIL import Image, ImageFile

from ..files import FileRefused, read_regular_file
from ..loader import local_path, parse_retry_after

RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


class FetchError(Exception):
    """A request that failed for good; ``reason`` is what quarantine stores."""

    def __init__(self, reason: str, url: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.url = url


class _Retryable(Exception):
    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


@dataclass(frozen=True)
class ClientConfig:
    user_agent: str
    timeout_s: float = 30.0
    per_host: int = 4
    global_limit: int = 16
    retries: int = 4  # attempts after the first
    backoff_base_s: float = 1.0
    backoff_max_s: float = 60.0
    retry_after_max_s: float = 600.0  # a server asking for longer than this is treated as a failure
    max_bytes: int = 50_000_000
    max_pixels: int = 100_000_000  # decompression-bomb limit for decoded images


@dataclass(frozen=True)
class CheckedImage:
    """Image bytes that passed the checks. ``image`` is the decoded picture (RGB or L), or None when the bytes
    are a JPEG of the size the caller asked to keep: then they can be stored as they are, with no re-encoding."""

    data: bytes
    format: str  # Pillow's name: JPEG, PNG, ...
    width: int
    height: int
    image: Image.Image | None

    @property
    def storable_as_is(self) -> bool:
        return self.image is None


# EXIF orientation: a stored JPEG must look the same as the decoded pixels it replaces.
_ORIENTATION = 0x0112


def check_image(data: bytes, max_pixels: int, keep_size: tuple[int, int] | None = None) -> CheckedImage:
    """Check image bytes: a known format, within the pixel limit, complete.

    When ``keep_size`` is given and the bytes are an upright RGB/greyscale JPEG of exactly that size,
    the check decodes every entropy-coded block at 1/8 scale (libjpeg's DCT scaling: the Huffman data, where
    truncation and corruption show, is read in full; only the inverse DCT is cheaper) and keeps the bytes
    undecoded. Anything else is decoded in full and returned as ``image``.
    """
    try:
        with warnings.catch_warnings():
            # Our own limit below applies (Pillow's hard error at twice its global limit stays as a backstop).
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            probe = Image.open(io.BytesIO(data))
            width, height = probe.size
            if width * height > max_pixels:
                raise FetchError(f"decompression bomb: {width}x{height} pixels exceeds the limit of {max_pixels}")
            fmt, mode = probe.format or "", probe.mode
            keep = (keep_size is not None and fmt == "JPEG" and mode in ("RGB", "L")
                    and (width, height) == keep_size
                    and probe.getexif().get(_ORIENTATION, 1) == 1)
            probe.verify()
            image = Image.open(io.BytesIO(data))
            if keep:
                image.draft(mode, (max(1, width // 8), max(1, height // 8)))
            # verify() does not decode JPEG scans; load() does and raises on a truncated file.
            image.load()
    except FetchError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise FetchError(f"decompression bomb: {exc}") from None
    except Image.UnidentifiedImageError:
        raise FetchError("not an image: Pillow cannot identify the bytes") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise FetchError(f"broken image: {exc}") from None
    if keep:
        return CheckedImage(data, fmt, width, height, None)
    if image.mode not in ("RGB", "L"):
        image = image.convert("RGB")
    return CheckedImage(data, fmt, width, height, image)


def decode_image(data: bytes, max_pixels: int) -> Image.Image:
    """Decode and check image bytes: a known format, within the pixel limit, complete. Returns an RGB/L image."""
    image = check_image(data, max_pixels).image
    assert image is not None  # no keep_size: always decoded
    return image


if ImageFile.LOAD_TRUNCATED_IMAGES:  # pragma: no cover - a global someone else set would hide truncation
    warnings.warn("PIL.ImageFile.LOAD_TRUNCATED_IMAGES is on: truncated images will not be detected")


class PoliteClient:
    """One per fetch run. ``sleep``, ``clock`` and ``rng`` are injectable so tests can check the delays."""

    def __init__(
        self,
        config: ClientConfig,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.config = config
        self._sleep = sleep
        self._clock = clock
        self._rng = rng
        self._global = asyncio.Semaphore(config.global_limit)
        self._hosts: dict[str, asyncio.Semaphore] = {}
        self._not_before: dict[str, float] = {}
        self.requests = 0
        self.retries = 0
        self.delays: list[float] = []  # every pause taken, for tests and the run summary
        limits = httpx.Limits(max_connections=config.global_limit,
                              max_keepalive_connections=config.global_limit)
        self._http = httpx.AsyncClient(
            headers={"User-Agent": config.user_agent, "Accept": "image/*, application/json;q=0.9, */*;q=0.1"},
            timeout=httpx.Timeout(config.timeout_s), follow_redirects=True, limits=limits, transport=transport,
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> PoliteClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # --- public ---------------------------------------------------------------------------------

    async def get_bytes(self, url: str, expect: str = "image") -> bytes:
        """The body of ``url``; ``expect`` ("image" or "json") rejects answers of the wrong content type."""
        path = local_path(url)
        if path is not None:
            return await asyncio.to_thread(self._read_file, path)
        return await self._get_with_retries(url, expect)

    async def get_json(self, url: str) -> dict[str, Any]:
        data = await self.get_bytes(url, expect="json")
        try:
            doc = json.loads(data)
        except ValueError as exc:
            raise FetchError(f"invalid JSON: {exc}", url) from None
        if not isinstance(doc, dict):
            raise FetchError("JSON document is not an object", url)
        return doc

    async def get_image(self, url: str) -> Image.Image:
        checked = await self.get_checked(url)
        assert checked.image is not None
        return checked.image

    async def get_checked(self, url: str, keep_size: tuple[int, int] | None = None) -> CheckedImage:
        """The image at ``url``, checked off the event loop; a JPEG of ``keep_size`` comes back undecoded
        (see ``check_image``)."""
        data = await self.get_bytes(url, expect="image")
        try:
            return await asyncio.to_thread(check_image, data, self.config.max_pixels, keep_size)
        except FetchError as exc:
            raise FetchError(exc.reason, url) from None

    # --- internals ------------------------------------------------------------------------------

    def _read_file(self, path: Path) -> bytes:
        try:
            return read_regular_file(path, self.config.max_bytes)  # no FIFOs or devices, the download cap
        except FileRefused as exc:
            raise FetchError(f"too large or not a regular file: {exc}", str(path)) from None
        except OSError as exc:
            raise FetchError(f"cannot read {path}: {exc.strerror or exc}", str(path)) from None

    def _host_semaphore(self, host: str) -> asyncio.Semaphore:
        if host not in self._hosts:
            self._hosts[host] = asyncio.Semaphore(self.config.per_host)
        return self._hosts[host]

    def _backoff(self, attempt: int) -> float:
        # Full jitter (AWS architecture blog): spreads retries of many clients over the whole window.
        ceiling = min(self.config.backoff_max_s, self.config.backoff_base_s * 2**attempt)
        return ceiling / 2 + self._rng() * ceiling / 2

    async def _pause(self, seconds: float) -> None:
        if seconds > 0:
            self.delays.append(seconds)
            await self._sleep(seconds)

    async def _get_with_retries(self, url: str, expect: str) -> bytes:
        host = urlsplit(url).netloc
        last = ""
        for attempt in range(self.config.retries + 1):
            # Honour a host-wide pause another request on this host was told about.
            wait = self._not_before.get(host, 0.0) - self._clock()
            if wait > 0:
                await self._pause(wait)
            try:
                async with self._host_semaphore(host), self._global:
                    self.requests += 1
                    return await self._get_once(url, expect)
            except _Retryable as exc:
                last = exc.reason
                if attempt == self.config.retries:
                    break
                self.retries += 1
                delay = self._backoff(attempt)
                if exc.retry_after is not None:
                    if exc.retry_after > self.config.retry_after_max_s:
                        raise FetchError(f"{exc.reason}; Retry-After {exc.retry_after:.0f}s is too long", url)
                    delay = max(delay, exc.retry_after)
                    self._not_before[host] = max(self._not_before.get(host, 0.0), self._clock() + delay)
                await self._pause(delay)
        raise FetchError(f"{last} (gave up after {self.config.retries + 1} attempts)", url)

    async def _get_once(self, url: str, expect: str) -> bytes:
        try:
            async with self._http.stream("GET", url) as response:
                status = response.status_code
                if status in RETRY_STATUSES:
                    retry_after = parse_retry_after(response.headers.get("Retry-After"))
                    raise _Retryable(f"HTTP {status}", retry_after)
                if status >= 400:
                    raise FetchError(f"HTTP {status}", url)
                ctype = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
                if not _content_type_ok(ctype, expect):
                    raise FetchError(f"wrong content type: {ctype or 'none'} (expected {expect})", url)
                declared = response.headers.get("Content-Length")
                if declared and declared.isdigit() and int(declared) > self.config.max_bytes:
                    raise FetchError(f"too large: {declared} bytes > {self.config.max_bytes}", url)
                chunks: list[bytes] = []
                total = 0
                async for chunk in response.aiter_bytes():
                    total += len(chunk)
                    if total > self.config.max_bytes:
                        raise FetchError(f"too large: more than {self.config.max_bytes} bytes", url)
                    chunks.append(chunk)
                return b"".join(chunks)
        except httpx.TimeoutException as exc:
            raise _Retryable(f"timeout ({type(exc).__name__})") from None
        except (httpx.RemoteProtocolError, httpx.ReadError, httpx.ConnectError) as exc:
            # A dropped connection or a body cut short by the server: worth another try.
            raise _Retryable(f"connection error: {type(exc).__name__}: {exc}") from None
        except httpx.HTTPError as exc:
            raise FetchError(f"HTTP error: {type(exc).__name__}: {exc}", url) from None


def _content_type_ok(ctype: str, expect: str) -> bool:
    if not ctype or ctype == "application/octet-stream":
        return True  # let the decoder decide
    if expect == "json":
        return ctype in ("application/json", "application/ld+json") or ctype.endswith("+json") \
            or ctype == "text/plain"
    return ctype.startswith("image/")
