"""Read documents (manifests, collections, layout files) from http(s) URLs, file:// URLs and local paths."""

from __future__ import annotations

import asyncio
import os
import random
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import unquote, urljoin, urlparse

import httpx

from .files import FileRefused, read_regular_file


class LoadError(Exception):
    """A document that could not be read; the message is the reason stored in quarantine."""


def is_remote(ref: str) -> bool:
    return urlparse(ref).scheme in ("http", "https")


def local_path(ref: str) -> Path | None:
    parsed = urlparse(ref)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    if parsed.scheme in ("", ) or (len(parsed.scheme) == 1 and ref[1:3] in (":\\", ":/")):
        return Path(ref)
    return None


class LocalAccess:
    """Which documents may name local files: the operator's own, never one read over the network.

    A local document given on the command line (and what it names, recursively) is the operator's; an http(s)
    document may only name http(s) resources, except files under an ``--allow-local`` folder. The refusal is
    decided from the reference alone, before the file system is asked anything, so its reason cannot tell
    whether a file exists.
    """

    def __init__(self, allowed_dirs: tuple[Path, ...] = ()) -> None:
        self.allowed_dirs = tuple(Path(d).resolve() for d in allowed_dirs)

    def check(self, ref: str, named_by: str | None) -> None:
        """Raise LoadError unless ``ref``, named by the document ``named_by`` (None: the operator), may be read."""
        if is_remote(ref) or named_by is None or not is_remote(named_by):
            return
        path = local_path(ref)
        if path is not None and self._allowed(path):
            return
        scheme = urlparse(ref).scheme or "a local path"
        raise LoadError(f"refused: a document read over http(s) may only name http(s) resources, not {scheme}")

    def _allowed(self, path: Path) -> bool:
        if not self.allowed_dirs or "\0" in str(path):
            return False
        resolved = Path(os.path.realpath(path))  # symlinks followed: a link must not lead out of the folder
        return any(resolved.is_relative_to(d) for d in self.allowed_dirs)


def resolve(ref: str, base: str) -> str:
    """A reference relative to the document it came from (local paths resolve against local paths)."""
    if urlparse(ref).scheme:
        return ref
    base_path = local_path(base)
    if base_path is not None and not is_remote(base):
        candidate = Path(ref)
        resolved = candidate if candidate.is_absolute() else base_path.parent / candidate
        return str(resolved)
    return urljoin(base, ref)


class DocumentLoader:
    """Fetches whole documents with a size limit, bounded concurrency and a few retries on transient errors."""

    def __init__(self, *, user_agent: str, max_bytes: int, timeout_s: float = 30.0, concurrency: int = 8,
                 retries: int = 2, transport: httpx.BaseTransport | None = None) -> None:
        self.max_bytes = max_bytes
        self.retries = retries
        self._semaphore = asyncio.Semaphore(concurrency)
        # httpx's blocking client on a few threads rather than its async client: the async path runs each
        # request through anyio and httpcore's async pool, measured at twice the CPU a document (2.0-2.1 ms
        # against 1.0-1.2 ms for ALTO pages on loopback; bench/README, "Ingest"), and ingest is CPU-bound on
        # one core. Waiting for a reply releases the GIL, so the threads overlap as the async tasks did.
        self._threads = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="ivs-load")
        self._client = httpx.Client(
            headers={"User-Agent": user_agent, "Accept": "application/ld+json, application/json, */*"},
            timeout=timeout_s, follow_redirects=True, transport=transport,
            limits=httpx.Limits(max_connections=concurrency),
        )

    async def aclose(self) -> None:
        # Threads still reading finish within their timeout; none is waited for here.
        self._threads.shutdown(wait=False, cancel_futures=True)
        self._client.close()

    async def __aenter__(self) -> DocumentLoader:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def load(self, ref: str) -> bytes:
        if is_remote(ref):
            async with self._semaphore:
                return await self._load_http(ref)
        path = local_path(ref)
        if path is None:
            raise LoadError(f"unsupported address {ref!r}: use an http(s) URL, a file:// URL or a local path")
        return await asyncio.to_thread(self._load_file, path)

    def _load_file(self, path: Path) -> bytes:
        try:
            return read_regular_file(path, self.max_bytes)
        except FileNotFoundError:
            raise LoadError(f"file not found: {path}") from None
        except FileRefused as exc:
            raise LoadError(str(exc)) from None
        except OSError as exc:
            raise LoadError(f"cannot read {path}: {exc.strerror or exc}") from None

    async def _load_http(self, url: str) -> bytes:
        attempt = 0
        while True:
            try:
                return await asyncio.get_running_loop().run_in_executor(self._threads, self._get_once, url)
            except _Transient as exc:
                attempt += 1
                if attempt > self.retries:
                    raise LoadError(str(exc)) from None
                delay = exc.retry_after if exc.retry_after is not None else 0.5 * 2 ** attempt
                await asyncio.sleep(min(delay, 30.0) + random.uniform(0, 0.25))

    def _get_once(self, url: str) -> bytes:
        host = urlparse(url).hostname or url
        try:
            with self._client.stream("GET", url) as response:
                if response.status_code == 429 or response.status_code >= 500:
                    raise _Transient(f"HTTP {response.status_code} from {host}", _retry_after(response))
                if response.status_code >= 400:
                    raise LoadError(f"HTTP {response.status_code} for {url}")
                declared = response.headers.get("content-length")
                if declared and declared.isdigit() and int(declared) > self.max_bytes:
                    raise LoadError(f"{url} is {declared} bytes, over the limit of {self.max_bytes}")
                chunks: list[bytes] = []
                total = 0
                for chunk in response.iter_bytes():
                    total += len(chunk)
                    if total > self.max_bytes:
                        raise LoadError(f"{url} is larger than the limit of {self.max_bytes} bytes")
                    chunks.append(chunk)
                return b"".join(chunks)
        except httpx.ConnectError as exc:
            raise LoadError(
                f"cannot connect to {host}: {exc or 'connection failed'} "
                "(is there a network connection? local files and file:// URLs work offline)"
            ) from None
        except httpx.TimeoutException:
            raise _Transient(f"timed out reading {url}", None) from None
        except (httpx.RemoteProtocolError, httpx.ReadError) as exc:
            raise _Transient(f"connection broke reading {url}: {exc}", None) from None


class _Transient(Exception):
    def __init__(self, message: str, retry_after: float | None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
