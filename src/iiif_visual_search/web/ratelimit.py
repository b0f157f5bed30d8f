"""Anonymous uploads are capped per client: ``POST /search/image`` stores the picture on disk (its search is a
permalink), so one client must not fill the disk or churn out everyone else's uploads.

A token bucket per client address: ``upload_rate_per_minute`` uploads a minute, with a burst of as many.
0 refuses anonymous uploads altogether (searching by a picture URL still works). Behind a reverse proxy
every client has the proxy's address unless the server is started with proxy headers trusted (``ivs serve``
does: uvicorn's ``proxy_headers``, for the proxies in ``FORWARDED_ALLOW_IPS``).
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict

from starlette.types import ASGIApp, Receive, Scope, Send

from .errors import error_response

UPLOAD_PATH = "/search/image"
MAX_CLIENTS = 10_000  # buckets remembered; the least recently seen go first


class UploadRateLimit:
    def __init__(self, app: ASGIApp, per_minute: int) -> None:
        self.app = app
        self.per_minute = per_minute
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # client -> (tokens, at)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") != "POST" or not scope["path"].endswith(UPLOAD_PATH):
            await self.app(scope, receive, send)
            return
        if self.per_minute <= 0:
            await error_response(403, "anonymous uploads are turned off on this service; search by a picture "
                                      "URL instead")(scope, receive, send)
            return
        client = (scope.get("client") or ("unknown", 0))[0]
        wait = self._take(client, time.monotonic())
        if wait > 0:
            await error_response(429, f"too many uploads: at most {self.per_minute} a minute; try again in "
                                      f"{math.ceil(wait)} s", {"Retry-After": str(math.ceil(wait))})(
                scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _take(self, client: str, now: float) -> float:
        """0 when the client may upload now (a token is spent), else the seconds until it may."""
        rate = self.per_minute / 60.0
        tokens, at = self._buckets.pop(client, (float(self.per_minute), now))
        tokens = min(float(self.per_minute), tokens + (now - at) * rate)
        wait = 0.0 if tokens >= 1.0 else (1.0 - tokens) / rate
        self._buckets[client] = (tokens - 1.0 if wait == 0.0 else tokens, now)
        while len(self._buckets) > MAX_CLIENTS:
            self._buckets.popitem(last=False)
        return wait
