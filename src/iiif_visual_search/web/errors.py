"""JSON errors: every failure answers ``{"error": ..., "status": ...}`` with the right code, never a trace."""

from __future__ import annotations

import logging

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse

log = logging.getLogger("iiif_visual_search.web")


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message, "status": status}, status_code=status, headers=headers)


async def api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.message)


async def http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    message = exc.detail if exc.status_code != 404 else f"no such resource: {request.url.path}"
    # Keep the exception's headers: a 405 must say Allow (RFC 9110 15.5.6).
    return error_response(exc.status_code, str(message), exc.headers)


async def server_error(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s", request.url.path)
    return error_response(500, f"internal error ({type(exc).__name__}); see the server log")
