"""The HTTP kit's answers to errors: the exception handlers and the body-size cap that turn
every :mod:`agora.api.errors` kind, request validation failure, database error and unexpected
exception into the status and body that module's table gives.

Kept apart from the error kinds so that the services raising those kinds (and every command
and worker importing the services) do not import FastAPI.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request, status
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, IntegrityError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agora.api.errors import (
    MAX_BODY_BYTES,
    MalformedJson,
    ServiceError,
    TooLarge,
    problem,
    problems_body,
    problems_summary,
)

log = logging.getLogger(__name__)


def _validation_problems(errors: Sequence[Any]) -> list[dict[str, Any]]:
    out = []
    for err in errors:
        loc = err.get("loc", ()) if isinstance(err, dict) else ()
        msg = err.get("msg", str(err)) if isinstance(err, dict) else str(err)
        kind = err.get("type", "value_error") if isinstance(err, dict) else "value_error"
        out.append(problem(loc, msg, kind))
    return out


async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = list(exc.errors())
    # FastAPI's own JSON parsing (routes that declare a body) reports the offset only.
    for err in errors:
        if isinstance(err, dict) and err.get("type") == "json_invalid":
            doc = exc.body if isinstance(exc.body, str) else ""
            pos = err.get("loc", ("body", 0))[-1]
            line = column = None
            if isinstance(pos, int) and doc:
                line = doc.count("\n", 0, pos) + 1
                column = pos - (doc.rfind("\n", 0, pos) + 1) + 1
            reason = (err.get("ctx") or {}).get("error", "JSON decode error")
            return await _service_error(request, MalformedJson(str(reason), line, column))
    problems = _validation_problems(errors)
    return JSONResponse(
        problems_body(problems_summary(problems), problems), status.HTTP_422_UNPROCESSABLE_CONTENT
    )


async def _service_error(_: Request, exc: ServiceError) -> JSONResponse:
    return JSONResponse(exc.body(), exc.status_code, headers=exc.headers)


async def _integrity(request: Request, exc: IntegrityError) -> JSONResponse:
    log.warning("%s %s: integrity conflict: %s", request.method, request.url.path, exc.orig)
    return JSONResponse(
        {"detail": "the request conflicts with stored data (a uniqueness or reference rule)"},
        status.HTTP_409_CONFLICT,
    )


async def _data_error(request: Request, exc: DataError) -> JSONResponse:
    log.warning("%s %s: value refused by the database: %s", request.method, request.url.path, exc)
    reason = str(exc.orig).splitlines()[0] if exc.orig is not None else "invalid value"
    return JSONResponse(
        {"detail": f"a value was refused by the database: {reason}"},
        status.HTTP_422_UNPROCESSABLE_CONTENT,
    )


def disk_full(exc: OperationalError) -> bool:
    """Whether the database refused a write for lack of disk space (SQLite's SQLITE_FULL,
    PostgreSQL's SQLSTATE 53100)."""
    orig = exc.orig
    return getattr(orig, "sqlstate", None) == "53100" or "disk is full" in str(orig)


async def _operational(request: Request, exc: OperationalError) -> JSONResponse:
    if disk_full(exc):
        log.error("%s %s: the database's disk is full", request.method, request.url.path)
        return JSONResponse(
            {"detail": "the database's disk is full: nothing of this request was stored"},
            status.HTTP_507_INSUFFICIENT_STORAGE,
            headers={"Retry-After": "60"},
        )
    log.error("%s %s: database error", request.method, request.url.path, exc_info=exc)
    return JSONResponse(
        {"detail": "the database is unavailable or busy; try again"},
        status.HTTP_503_SERVICE_UNAVAILABLE,
        headers={"Retry-After": "5"},
    )


#: The methods a 405 answer's ``Allow`` header may name.
HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def _template_regex(template: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[^}]+\})", template)
    return re.compile("".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts) + "$")


def allowed_methods(request: Request) -> list[str]:
    """The methods of the resource at the request's path: those the OpenAPI document gives the
    first path template that matches (the router's order, so ``/items/trending`` is the
    trending list, not item "trending"); for undocumented paths, every method a route serves.
    The router's own 405 names only the first route it met (routes are one per method)."""
    path = request.scope["path"]
    for template, operations in request.app.openapi().get("paths", {}).items():
        if _template_regex(template).match(path):
            return [m for m in HTTP_METHODS if m.lower() in operations]
    routes = request.app.router.routes
    return [
        method
        for method in HTTP_METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] == Match.FULL for route in routes
        )
    ]


async def _http_error(request: Request, exc: StarletteHTTPException) -> Any:
    if exc.status_code == status.HTTP_405_METHOD_NOT_ALLOWED:
        exc.headers = {**(exc.headers or {}), "Allow": ", ".join(allowed_methods(request))}
    return await http_exception_handler(request, exc)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.error("%s %s: unexpected error", request.method, request.url.path, exc_info=exc)
    return JSONResponse(
        {"detail": "internal server error (logged on the server)"},
        status.HTTP_500_INTERNAL_SERVER_ERROR,
    )


class BodyLimit:
    """ASGI middleware capping request bodies at ``max_bytes``: a larger Content-Length is
    answered 413 (JSON) at once; a chunked body raises TooLarge once it grows past the cap."""

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            response = JSONResponse({"detail": self._message()}, status.HTTP_413_CONTENT_TOO_LARGE)
            await response(scope, receive, send)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise TooLarge(self._message())
            return message

        await self.app(scope, limited, send)

    def _message(self) -> str:
        return f"the request body is larger than {self.max_bytes // (1024 * 1024)} MB"


def install(app: FastAPI) -> None:
    """Register every handler on ``app`` and the body-size cap (the OpenAPI side of these
    answers is :func:`agora.api.openapi.install`)."""
    app.add_middleware(BodyLimit, max_bytes=MAX_BODY_BYTES)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(ServiceError, _service_error)
    app.add_exception_handler(IntegrityError, _integrity)
    app.add_exception_handler(DataError, _data_error)
    app.add_exception_handler(OperationalError, _operational)
    app.add_exception_handler(Exception, _unexpected)
