"""What a browser may do with our pages: links from documents are http(s) only, and every answer carries a
strict Content-Security-Policy (HTML), ``X-Content-Type-Options: nosniff`` and a Referrer-Policy.

The search pages run no inline script or style: scripts and styles come from ``/static``, settings travel
in ``<meta>`` or JSON data blocks. A ``javascript:`` link that slipped through (a manifest's homepage) could
not run under this policy either. The viewer page gets its own policy (``VIEWER_POLICY``): Mirador reads
manifests and images from any IIIF server, and its styling library inserts ``<style>`` elements.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from .middleware import AddHeaders

PAGE_POLICY = "; ".join([
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' https: http: data: blob:",  # thumbnails come straight from the IIIF image servers
    "connect-src 'self'",
    "font-src 'self'",
    "form-action 'self'",
    "base-uri 'none'",
    "frame-ancestors 'self'",
])
VIEWER_POLICY = "; ".join([
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self' 'unsafe-inline'",  # Mirador's CSS-in-JS (emotion) writes <style> elements; no scripts
    "img-src 'self' https: http: data: blob:",
    "connect-src 'self' https: http:",  # manifests, info.json and annotations from any IIIF server
    "font-src 'self' data:",
    "worker-src 'self' blob:",
    "form-action 'self'",
    "base-uri 'none'",
    "frame-ancestors 'self'",
])
REFERRER_POLICY = "strict-origin-when-cross-origin"  # image servers see our origin, never a reader's query


def safe_link(url: object) -> str:
    """``url`` when it is an absolute http(s) URL, else ``""``: never a ``javascript:`` or ``data:`` link."""
    if not isinstance(url, str):
        return ""
    text = url.strip()
    try:
        parts = urlsplit(text)
    except ValueError:
        return ""
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc or any(c in text for c in "\r\n\t\0"):
        return ""
    return text


class SecurityHeaders(AddHeaders):
    """Adds the headers above to every answer; an answer that set its own CSP (the viewer) keeps it."""

    def add(self, headers: list[tuple[bytes, bytes]]) -> None:
        names = {k.lower() for k, _ in headers}
        ctype = next((v for k, v in headers if k.lower() == b"content-type"), b"")
        if ctype.startswith(b"text/html") and b"content-security-policy" not in names:
            headers.append((b"content-security-policy", PAGE_POLICY.encode()))
        if b"x-content-type-options" not in names:
            headers.append((b"x-content-type-options", b"nosniff"))
        if b"referrer-policy" not in names:
            headers.append((b"referrer-policy", REFERRER_POLICY.encode()))
