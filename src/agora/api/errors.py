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

This module holds the kinds the services raise and the body they give, without FastAPI (every
command and worker imports the services); :mod:`agora.api.error_handlers` answers them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from http import HTTPStatus
from typing import Any, ClassVar

from pydantic import BaseModel, Field

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

    status_code: ClassVar[int] = HTTPStatus.INTERNAL_SERVER_ERROR.value
    headers: ClassVar[dict[str, str] | None] = None

    def body(self) -> dict[str, Any]:
        """The JSON body of the answer."""
        return {"detail": str(self)}


class MalformedJson(ServiceError, ValueError):
    """The body is not JSON: says where (1-based line and column) when it is known."""

    status_code = HTTPStatus.BAD_REQUEST.value

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

    status_code = HTTPStatus.UNPROCESSABLE_ENTITY.value
    where: ClassVar[Location] = ("body",)

    def __init__(self, message: str, problems: list[dict[str, Any]] | None = None):
        self.problems = problems if problems is not None else [problem(self.where, message)]
        super().__init__(message)

    def body(self) -> dict[str, Any]:
        return problems_body(problems_summary(self.problems), self.problems)


class InvalidRequest(Invalid):
    """The body (or a query value) does not have the expected shape; one problem per bad field."""

    def __init__(self, problems: list[dict[str, Any]]):
        super().__init__(f"{len(problems)} problem(s) in the request", problems)


class TooLarge(ServiceError, ValueError):
    """The request carries more than the server accepts at once."""

    status_code = HTTPStatus.REQUEST_ENTITY_TOO_LARGE.value


class NotFound(ServiceError, LookupError):
    """A user, item or group named in the path (or, with ``problems``, in the body) does not
    exist."""

    status_code = HTTPStatus.NOT_FOUND.value

    def __init__(self, message: str, problems: list[dict[str, Any]] | None = None):
        self.problems = problems or []
        super().__init__(message)

    def body(self) -> dict[str, Any]:
        return problems_body(str(self), self.problems) if self.problems else super().body()


class Conflict(ServiceError, ValueError):
    """The request contradicts what is stored (409): the same id with other settings, a case
    decided the other way."""

    status_code = HTTPStatus.CONFLICT.value


class Unavailable(ServiceError, LookupError):
    """What the request needs is not there yet (503), e.g. a model not trained: the message
    says which command makes it."""

    status_code = HTTPStatus.SERVICE_UNAVAILABLE.value
    headers = {"Retry-After": "60"}


class RecordsRejected(ServiceError, ValueError):
    """A write refused as a whole: each of ``problems`` names a record (``index``), a
    ``field`` and a ``message``."""

    status_code = HTTPStatus.UNPROCESSABLE_ENTITY.value
    problems: Sequence[Any]

    def body(self) -> dict[str, Any]:
        return problems_body(str(self), _rejected_problems(self))


class BodyRejected(ServiceError, ValueError):
    """A :class:`RecordsRejected`, with each problem placed in the request body.

    ``single`` says the body was one object rather than a list (so problem 0 sits at
    ``body.<field>`` rather than ``body.0.<field>``).
    """

    status_code = HTTPStatus.UNPROCESSABLE_ENTITY.value

    def __init__(self, rejected: RecordsRejected, single: bool):
        self.rejected = rejected
        self.single = single
        super().__init__(str(rejected))

    def body(self) -> dict[str, Any]:
        problems = _rejected_problems(self.rejected, self.single)
        return problems_body(problems_summary(problems), problems)


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


def problems_body(detail: str, problems: list[dict[str, Any]]) -> dict[str, Any]:
    """An error body listing ``problems`` (at most ``MAX_PROBLEMS``, with the total if cut)."""
    shown = problems[:MAX_PROBLEMS]
    body: dict[str, Any] = {"detail": detail, "problems": shown}
    if len(problems) > len(shown):
        body["total_problems"] = len(problems)
    return body


def problems_summary(problems: list[dict[str, Any]]) -> str:
    """The one-line ``detail`` of an error body listing ``problems``: how many, and the first."""
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
