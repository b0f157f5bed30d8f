"""Read documents (manifests, collections, layout files) from http(s) URLs, file:// URLs and local paths."""

from __future__ import annotations

import asyncio
import email.utils
import logging
import os
import random
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urljoin, urlparse
from urllib.request import getproxies, proxy_bypass

import urllib3
from urllib3.exceptions import (
    HTTPError,
    LocationValueError,
    MaxRetryError,
    NewConnectionError,
    ProxySchemeUnknown,
    ResponseError,
    SSLError,
)
from urllib3.exceptions import TimeoutError as Urllib3Timeout

from .files import FileRefused, read_regular_file

log = logging.getLogger(__name__)


class LoadError(Exception):
    """A document that could not be read; the message is the reason stored in quarantine."""


def is_remote(ref: str) -> bool:
    return urlparse(ref).scheme in ("http", "https")


def local_path(ref: str) -> Path | None:
    """The file a ``file://`` URL or a plain path (relative, absolute, or with a Windows drive letter) names;
    None for anything else (http(s), data:, ...). Layout files and region images are read through it alike."""
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
                 retries: int = 2, pool: urllib3.PoolManager | None = None) -> None:
        """``pool``: a ready connection pool (tests answer from memory with one)."""
        self.max_bytes = max_bytes
        self.retries = retries
        self._semaphore = asyncio.Semaphore(concurrency)
        # urllib3's blocking pool on a few threads. Ingest is CPU-bound, and a document's GET is a large part
        # of a page's CPU: on loopback ALTO pages, httpx's async client took 2.0-2.1 ms a document, its blocking
        # client 1.0-1.1 ms and urllib3 0.5 ms (bench/README, "Ingest"). Waiting for a reply releases the GIL,
        # so the threads overlap as async tasks would. Retries are ours (below), redirects urllib3's.
        self._threads = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="ivs-load")
        settings: dict[str, Any] = dict(
            num_pools=64, maxsize=concurrency,
            headers={"User-Agent": user_agent, "Accept": "application/ld+json, application/json, */*",
                     "Accept-Encoding": urllib3.util.make_headers(accept_encoding=True)["accept-encoding"]},
            timeout=urllib3.Timeout(connect=timeout_s, read=timeout_s),
            retries=urllib3.Retry(total=None, connect=0, read=0, status=0, other=0, redirect=MAX_REDIRECTS,
                                  raise_on_status=False),
        )
        self._pool = pool or urllib3.PoolManager(**settings)
        # A library's network often reaches the outside through a proxy: HTTP_PROXY, HTTPS_PROXY and NO_PROXY
        # are honoured, as by curl, pip and httpx.
        proxies = {} if pool is not None else getproxies()
        self._proxied: dict[str, urllib3.ProxyManager] = {}
        for scheme in ("http", "https"):
            if scheme in proxies:
                address = proxies[scheme] if "://" in proxies[scheme] else f"http://{proxies[scheme]}"  # as curl
                try:
                    self._proxied[scheme] = urllib3.ProxyManager(address, **settings)
                except ProxySchemeUnknown:  # socks5:// and the like need a package we do not carry
                    log.warning("ignoring the %s proxy %s: only http:// and https:// proxies are supported",
                                scheme, address)

    async def aclose(self) -> None:
        # Threads still reading finish within their timeout; none is waited for here.
        self._threads.shutdown(wait=False, cancel_futures=True)
        for pool in (self._pool, *self._proxied.values()):
            pool.clear()

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
        parsed = urlparse(url)
        host = parsed.hostname or url
        pool = self._proxied.get(parsed.scheme, self._pool) if self._proxied and not proxy_bypass(host) else self._pool
        try:
            response = pool.request("GET", url, preload_content=False, decode_content=True)
        except HTTPError as exc:  # a malformed address (LocationValueError) too
            raise _failure(exc, url, host) from None
        try:
            if response.status == 429 or response.status >= 500:
                raise _Transient(f"HTTP {response.status} from {host}", parse_retry_after(response.headers.get("retry-after")))
            if response.status >= 400:
                raise LoadError(f"HTTP {response.status} for {url}")
            declared = response.headers.get("content-length")
            if declared and declared.isdigit() and int(declared) > self.max_bytes:
                raise LoadError(f"{url} is {declared} bytes, over the limit of {self.max_bytes}")
            chunks: list[bytes] = []
            total = 0
            for chunk in response.stream(_CHUNK):  # decoded: the limit holds for what a compressed body becomes
                total += len(chunk)
                if total > self.max_bytes:
                    raise LoadError(f"{url} is larger than the limit of {self.max_bytes} bytes")
                chunks.append(chunk)
            return b"".join(chunks)
        except HTTPError as exc:
            raise _failure(exc, url, host) from None
        finally:
            response.release_conn()


MAX_REDIRECTS = 10
_CHUNK = 65_536


def _failure(exc: Exception, url: str, host: str) -> Exception:
    """The reason a GET failed, in words fit for quarantine: a refused connection or an unknown host is
    final, a timeout or a broken connection worth another try (``_Transient``)."""
    reason = exc.reason if isinstance(exc, MaxRetryError) and exc.reason is not None else exc
    if isinstance(reason, NewConnectionError):  # before timeouts: urllib3 counts it as one
        cause = reason.__cause__ or reason  # the operating system's words, without urllib3's object
        return LoadError(f"cannot connect to {host}: {cause} "
                         "(is there a network connection? local files and file:// URLs work offline)")
    if isinstance(reason, Urllib3Timeout):
        return _Transient(f"timed out reading {url}", None)
    if isinstance(reason, SSLError):  # a certificate or TLS failure does not mend itself in a few seconds
        return LoadError(f"cannot connect securely to {host}: {reason}")
    if isinstance(reason, LocationValueError):
        return LoadError(f"not a usable address: {url} ({reason})")
    if isinstance(reason, ResponseError):  # the one retry budget urllib3 keeps: redirects
        return LoadError(f"more than {MAX_REDIRECTS} redirects from {url}")
    return _Transient(f"connection broke reading {url}: {reason}", None)


class _Transient(Exception):
    def __init__(self, message: str, retry_after: float | None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))