"""The API's error answers as exceptions: the status, the one-line ``detail`` and, for bad input,
where each problem is (``problems``: ``location`` such as ``body.3.timestamp``, ``message``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a request, and where: ``location`` as the API gives it
    (``query.n``, ``body.3.timestamp``)."""

    location: str
    message: str


class AgoraError(Exception):
    """An answer the API gave with a 4xx or 5xx status."""

    def __init__(self, status: int, detail: str, problems: list[Problem], body: Any) -> None:
        where = "; ".join(f"{p.location}: {p.message}" for p in problems[:5])
        super().__init__(f"{status}: {detail}" + (f" ({where})" if where else ""))
        self.status = status
        self.detail = detail
        self.problems = problems
        self.body = body


class Unauthorized(AgoraError):
    """401: no API key, or one the server does not know."""


class Forbidden(AgoraError):
    """403: the key lacks the scope the route needs."""


class NotFound(AgoraError):
    """404: the user, item, campaign... is not in the store."""


class InvalidRequest(AgoraError):
    """400, 413 or 422: the request itself is wrong; ``problems`` says where."""


class RateLimited(AgoraError):
    """429, still after the client's retries."""


class Unavailable(AgoraError):
    """503: no trained model yet, or the database is busy or down (after the retries)."""


class ServerError(AgoraError):
    """Any other 5xx."""


_BY_STATUS: dict[int, type[AgoraError]] = {
    400: InvalidRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    413: InvalidRequest,
    422: InvalidRequest,
    429: RateLimited,
    503: Unavailable,
}


def error_of(response: httpx.Response) -> AgoraError:
    """The exception an error answer stands for (its JSON body read when there is one)."""
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text
    detail = body.get("detail") if isinstance(body, dict) else None
    problems = [
        Problem(str(p.get("location", "")), str(p.get("message", "")))
        for p in (body.get("problems") or [] if isinstance(body, dict) else [])
        if isinstance(p, dict)
    ]
    kind = _BY_STATUS.get(response.status_code)
    if kind is None:
        kind = ServerError if response.status_code >= 500 else AgoraError
    return kind(response.status_code, str(detail or response.reason_phrase), problems, body)
