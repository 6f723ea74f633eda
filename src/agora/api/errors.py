"""Turning every kind of bad input into a 4xx with a body that says what was wrong and where.

All error bodies share one shape: ``{"detail": "<one line>", ...}``; validation failures add
``"problems": [{"location": "body.3.timestamp", "message": "...", "type": "..."}]`` (service
rejections also give ``index`` and ``field``). Status codes:

=====  ==============================================================================
400    malformed JSON (with line and column), a body that is not UTF-8
401    missing or unknown API key (raised by :mod:`agora.api.auth`)
403    key without the needed scope
404    unknown user, item, group (reads, deletes): a service's :class:`NotFound`
405    a method the path does not serve; ``Allow`` lists every method it does serve
409    a service's :class:`Conflict`, a database integrity conflict (``IntegrityError``)
413    a list longer than ``settings.max_batch_events`` or a body over ``MAX_BODY_BYTES``
422    request validation (types, lengths, query values), a service's ``Invalid``/``Rejected``
429    an API key past its rate limit (raised by :mod:`agora.api.limits`, with ``Retry-After``)
503    a service's :class:`Unavailable` (e.g. a model not trained), database unreachable
507    the database's disk is full (nothing of the request was stored)
500    anything else: logged with its traceback, answered with a generic message
=====  ==============================================================================
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

from fastapi import FastAPI, Request, status
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.exc import DataError, IntegrityError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)

#: Largest request body accepted, in bytes (a raw cap in front of the per-list batch limit).
MAX_BODY_BYTES = 10 * 1024 * 1024
#: How many problems an error body lists at most (the total is always given).
MAX_PROBLEMS = 100

Location = Sequence[str | int]


class ServiceError(Exception):
    """An error the HTTP kit answers with its own status and body.

    Services raise subclasses of the kinds below (:class:`NotFound`, :class:`Conflict`,
    :class:`Invalid`, :class:`Unavailable`, :class:`RecordsRejected`): they say what went
    wrong and where, and one handler turns any of them into the answer, so no view maps a
    domain's errors itself and this kit knows no domain.
    """

    status_code: ClassVar[int] = status.HTTP_500_INTERNAL_SERVER_ERROR
    headers: ClassVar[dict[str, str] | None] = None

    def body(self) -> dict[str, Any]:
        """The JSON body of the answer."""
        return {"detail": str(self)}


class MalformedJson(ServiceError, ValueError):
    """The body is not JSON: says where (1-based line and column) when it is known."""

    status_code = status.HTTP_400_BAD_REQUEST

    def __init__(self, message: str, line: int | None = None, column: int | None = None):
        self.line = line
        self.column = column
        where = f" at line {line} column {column}" if line is not None else ""
        super().__init__(f"malformed JSON{where}: {message}")

    def body(self) -> dict[str, Any]:
        body = super().body()
        if self.line is not None:
            body.update(line=self.line, column=self.column)
        return body


class Invalid(ServiceError, ValueError):
    """A value the service refuses (422): ``where`` places the one problem in the request
    (a subclass sets it, e.g. ``("query", "cursor")``), or ``problems`` lists several."""

    status_code = status.HTTP_422_UNPROCESSABLE_CONTENT
    where: ClassVar[Location] = ("body",)

    def __init__(self, message: str, problems: list[dict[str, Any]] | None = None):
        self.problems = problems if problems is not None else [problem(self.where, message)]
        super().__init__(message)

    def body(self) -> dict[str, Any]:
        return _problems_body(_summary(self.problems), self.problems)


class InvalidRequest(Invalid):
    """The body (or a query value) does not have the expected shape; one problem per bad field."""

    def __init__(self, problems: list[dict[str, Any]]):
        super().__init__(f"{len(problems)} problem(s) in the request", problems)


class TooLarge(ServiceError, ValueError):
    """The request carries more than the server accepts at once."""

    status_code = status.HTTP_413_CONTENT_TOO_LARGE


class NotFound(ServiceError, LookupError):
    """A user, item or group named in the path (or, with ``problems``, in the body) does not
    exist."""

    status_code = status.HTTP_404_NOT_FOUND

    def __init__(self, message: str, problems: list[dict[str, Any]] | None = None):
        self.problems = problems or []
        super().__init__(message)

    def body(self) -> dict[str, Any]:
        return _problems_body(str(self), self.problems) if self.problems else super().body()


class Conflict(ServiceError, ValueError):
    """The request contradicts what is stored (409): the same id with other settings, a case
    decided the other way."""

    status_code = status.HTTP_409_CONFLICT


class Unavailable(ServiceError, LookupError):
    """What the request needs is not there yet (503), e.g. a model not trained: the message
    says which command makes it."""

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    headers = {"Retry-After": "60"}


class RecordsRejected(ServiceError, ValueError):
    """A write refused as a whole: each of ``problems`` names a record (``index``), a
    ``field`` and a ``message``."""

    status_code = status.HTTP_422_UNPROCESSABLE_CONTENT
    problems: Sequence[Any]

    def body(self) -> dict[str, Any]:
        return _problems_body(str(self), _rejected_problems(self))


class BodyRejected(ServiceError, ValueError):
    """A :class:`RecordsRejected`, with each problem placed in the request body.

    ``single`` says the body was one object rather than a list (so problem 0 sits at
    ``body.<field>`` rather than ``body.0.<field>``).
    """

    status_code = status.HTTP_422_UNPROCESSABLE_CONTENT

    def __init__(self, rejected: RecordsRejected, single: bool):
        self.rejected = rejected
        self.single = single
        super().__init__(str(rejected))

    def body(self) -> dict[str, Any]:
        problems = _rejected_problems(self.rejected, self.single)
        return _problems_body(_summary(problems), problems)


class ProblemOut(BaseModel):
    """One thing wrong with a request, and where."""

    location: str = Field(examples=["body.3.timestamp"])
    message: str
    type: str
    index: int | None = Field(None, description="Position of the record in a list body.")
    field: str | None = None


class ErrorOut(BaseModel):
    """The body of every error answer."""

    detail: str = Field(description="One line saying what went wrong.")
    problems: list[ProblemOut] = Field(
        default_factory=list, description="Every problem found (validation failures)."
    )
    total_problems: int | None = Field(None, description="Set when `problems` was cut short.")
    request_id: str | None = Field(
        None, description="The request's id (also in the `X-Request-ID` header and the logs)."
    )


def location(loc: Iterable[str | int]) -> str:
    """``("body", 3, "timestamp")`` → ``"body.3.timestamp"``."""
    return ".".join(str(part) for part in loc)


def problem(loc: Location, message: str, kind: str = "value_error", **extra: Any) -> dict:
    """One entry of an error body's ``problems`` list."""
    return {"location": location(loc), "message": message, "type": kind, **extra}


def _problems_body(detail: str, problems: list[dict[str, Any]]) -> dict[str, Any]:
    shown = problems[:MAX_PROBLEMS]
    body: dict[str, Any] = {"detail": detail, "problems": shown}
    if len(problems) > len(shown):
        body["total_problems"] = len(problems)
    return body


def _summary(problems: list[dict[str, Any]]) -> str:
    first = problems[0] if problems else None
    head = f"{len(problems)} problem(s) in the request"
    if first:
        head += f"; first: {first['location']}: {first['message']}"
    return head


def _rejected_problems(exc: RecordsRejected, single: bool = False) -> list[dict[str, Any]]:
    out = []
    for p in exc.problems:
        loc: list[str | int] = ["body"] if single else ["body", p.index]
        loc.append(p.field)
        out.append(problem(loc, p.message, "rejected", index=p.index, field=p.field))
    return out


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
        _problems_body(_summary(problems), problems), status.HTTP_422_UNPROCESSABLE_CONTENT
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
