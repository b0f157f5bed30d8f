"""ASGI middleware of the service: request body limits, and CORS on every answer."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import ApiError, error_response, log


class BodyLimit:
    """Refuses request bodies over the limit with 413, by Content-Length and by counting what arrives."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                await error_response(413, f"request body over the limit of {self.max_bytes} bytes")(
                    scope, receive, send)
                return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise ApiError(413, f"request body over the limit of {self.max_bytes} bytes")
            return message

        await self.app(scope, limited, send)


class AddHeaders:
    """Adds headers to every HTTP answer; subclasses say which in ``add`` (the headers already set are given)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    def add(self, headers: list[tuple[bytes, bytes]]) -> None:
        raise NotImplementedError

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                self.add(headers)
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


class AlwaysCors(AddHeaders):
    """``Access-Control-Allow-Origin: *`` on every response, not only when the request sent an Origin
    (IIIF asks for CORS on all JSON, and caches then hold one variant)."""

    def add(self, headers: list[tuple[bytes, bytes]]) -> None:
        if not any(k.lower() == b"access-control-allow-origin" for k, _ in headers):
            headers.append((b"access-control-allow-origin", b"*"))


class CatchErrors:
    """An unexpected exception becomes the JSON 500 here, inside the CORS middleware: Starlette's own
    last-resort handler sits outside every middleware, so its 500 had no CORS header (a browser viewer saw a
    network error) and, re-raising, made uvicorn reset the connection."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_tracking(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, send_tracking)
        except Exception as exc:
            if started:
                raise
            log.exception("unhandled error on %s", scope.get("path"))
            await error_response(500, f"internal error ({type(exc).__name__}); see the server log")(
                scope, receive, send)
