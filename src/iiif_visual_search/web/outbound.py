"""Every request the service makes on a client's behalf goes through here: one guard for every route.

A picture URL sent by a client (``image_url``), a canvas image named by an ingested manifest (canvas + xywh
find-similar, ``/page-image``): each hop, redirects included, is resolved and refused unless every address
is globally routable, and the connection goes to the address that was checked, so a DNS answer cannot change
between check and use. IPv6 forms that carry an IPv4 address (mapped, compatible, 6to4, Teredo, NAT64) are
judged by that IPv4 address too. ``allow_private`` (``IVS_ALLOW_PRIVATE_URLS``) lifts the address rule for
deployments whose image servers sit on a private network.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import unquote, urljoin, urlparse

import httpx

from ..files import FileRefused, read_regular_file
from .errors import ApiError

MAX_REDIRECTS = 3

_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")  # RFC 8215: local use, not global


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    found = [a for a in (ip.ipv4_mapped, ip.sixtofour) if a is not None]
    if ip.teredo is not None:
        found.extend(ip.teredo)  # (server, client)
    if ip in _NAT64 or int(ip) >> 32 == 0:  # NAT64, and the deprecated IPv4-compatible ::a.b.c.d
        found.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return found


def is_public_address(address: str) -> bool:
    """Whether an IP address (and every IPv4 address it embeds) is globally routable and not multicast."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    candidates: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = [ip]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip in _NAT64_LOCAL:
            return False
        candidates.extend(_embedded_ipv4(ip))
    return all(c.is_global and not c.is_multicast for c in candidates)


def check_url(url: str, allow_private: bool) -> tuple[str, str, int]:
    """(host, address to connect to, port) for an allowed URL; ApiError 422 otherwise."""
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https"):
        raise ApiError(422, f"the image URL must be http or https, not {parsed.scheme or 'a relative'} URL")
    try:
        host = parsed.hostname
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
    except ValueError:
        raise ApiError(422, "the image URL has an invalid host or port") from None
    if not host:
        raise ApiError(422, "the image URL has no host")
    if parsed.username or parsed.password:
        raise ApiError(422, "the image URL must not carry credentials")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, ValueError) as exc:
        raise ApiError(422, f"cannot resolve the host of the image URL ({host}): {exc}") from None
    addresses = sorted({str(info[4][0]) for info in infos})
    if not addresses:
        raise ApiError(422, f"the host of the image URL ({host}) has no address")
    if not allow_private:
        blocked = [a for a in addresses if not is_public_address(a)]
        if blocked:
            raise ApiError(422, f"the image URL points at a non-public address ({blocked[0]}); refused")
    return host, addresses[0], port


def fetch_bytes(url: str, *, max_bytes: int, timeout_s: float, allow_private: bool,
                transport: httpx.BaseTransport | None = None) -> bytes:
    """GET an http(s) URL with a size limit and a timeout, checking the address of every hop."""
    for _ in range(MAX_REDIRECTS + 1):
        host, address, port = check_url(url, allow_private)
        parsed = urlparse(url)
        literal = f"[{address}]" if ":" in address else address
        request_url = parsed._replace(netloc=f"{literal}:{port}").geturl()
        headers = {"Accept": "image/*", "Host": parsed.netloc.rsplit("@", 1)[-1]}
        try:
            with httpx.Client(timeout=timeout_s, transport=transport, follow_redirects=False) as client:
                with client.stream("GET", request_url, headers=headers,
                                   extensions={"sni_hostname": host}) as response:
                    if response.is_redirect:
                        url = urljoin(url, response.headers.get("location", ""))
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


def read_catalogue_image(url: str, *, max_bytes: int, timeout_s: float, allow_private: bool) -> bytes:
    """The page image an ingested canvas names. ``file:`` URLs come only from manifests the operator ingested
    from disk (remote manifests cannot name them), and are read as regular files under the same cap; http(s)
    goes through the same guard as a client's URL, since a remote manifest chose that host."""
    parsed = urlparse(url)
    if parsed.scheme == "file":
        try:
            return read_regular_file(unquote(parsed.path), max_bytes)
        except FileRefused as exc:
            raise ApiError(413 if "limit" in str(exc) else 422, "the canvas image is too large or not a "
                                                                "regular file") from None
        except OSError as exc:
            # The message names no server path.
            raise ApiError(422, f"cannot read the canvas image: {exc.strerror}") from None
    return fetch_bytes(url, max_bytes=max_bytes, timeout_s=timeout_s, allow_private=allow_private)
