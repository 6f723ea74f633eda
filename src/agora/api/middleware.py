"""Per-request context: request id, access log, HTTP metrics, and a clean 500.

:class:`RequestContext` wraps the whole app (inside Starlette's outermost error layer):

* the request id is the client's ``X-Request-ID`` when it is a short token
  (:data:`REQUEST_ID`), else a new one; it is set in :data:`agora.api.logs.request_id` (so every
  line logged meanwhile carries it), echoed in the ``X-Request-ID`` response header, and added
  as ``request_id`` to every JSON error body (status >= 400);
* one ``agora.access`` line per request: method, route template, status, duration (ms), the
  API key's fingerprint when one was accepted. Never the raw path (it may hold a user id), the
  query string (it may hold personal data) or the key itself;
* the ``RateLimit-Limit``, ``RateLimit-Remaining``, ``RateLimit-Reset`` headers of the API key's
  bucket when :mod:`agora.api.limits` charged the request;
* a ``Server-Timing: app;dur=<ms>`` response header: the server's own time from receiving the
  request to starting the answer, so a client can tell it from network and queueing time;
* ``agora_http_requests_total`` and ``agora_http_request_duration_seconds``, by route template;
* ``after_answer`` (when given) runs once the answer is sent, with the status it had;
* an exception no handler took becomes a complete JSON 500 here. Starlette's own last resort
  answers and then re-raises, and uvicorn then drops the kept-alive connection, so the client's
  next request on it failed too; answered here, the connection stays usable.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agora.api import logs, metrics

log = logging.getLogger(__name__)
access = logging.getLogger("agora.access")

#: What a client-given request id may look like (anything else is replaced by a new id).
REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
INTERNAL_ERROR = "internal server error (logged on the server)"


def _route_template(scope: Scope, root_path: str) -> str:
    """The matched route's template; a mount (static files) as ``<prefix>/{path}``."""
    path = getattr(scope.get("route"), "path", None)
    if isinstance(path, str) and path:
        return path
    mounted = scope.get("root_path", root_path)
    if mounted != root_path:
        return mounted.removeprefix(root_path) + "/{path}"
    return "unmatched"


def _request_id(scope: Scope) -> str:
    for name, value in scope.get("headers") or []:
        if name == b"x-request-id":
            offered = value.decode("latin-1")
            if REQUEST_ID.fullmatch(offered):
                return offered
    return uuid.uuid4().hex


def _with_request_id(body: bytes, rid: str) -> bytes:
    try:
        parsed = json.loads(body)
    except ValueError:
        return body
    if not isinstance(parsed, dict):
        return body
    parsed["request_id"] = rid
    return json.dumps(parsed, ensure_ascii=False).encode()


#: What runs once a request is answered, with its scope, status and request id (the audit log
#: of admin actions): awaited after the answer's last byte is sent, under the request's id.
AfterAnswer = Callable[[Scope, int, str], Awaitable[None]]


class RequestContext:
    """ASGI middleware: see the module docstring."""

    def __init__(self, app: ASGIApp, after_answer: AfterAnswer | None = None):
        self.app = app
        self.after_answer = after_answer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = _request_id(scope)
        root_path = scope.get("root_path", "")
        token = logs.request_id.set(rid)
        started = time.perf_counter()
        answer = _Answer(scope, send, rid, started)
        try:
            await self.app(scope, receive, answer.send)
        except Exception as exc:
            if answer.sent_start:  # half an answer is out: only closing the connection is honest
                log.error("error after the response started", exc_info=exc)
                raise
            log.error(
                "unhandled error in %s %s",
                scope.get("method"),
                _route_template(scope, root_path),
                exc_info=exc,
            )
            await answer.internal_error()
        finally:
            _record(scope, _route_template(scope, root_path), answer.status, started)
            try:
                if self.after_answer is not None:
                    await self.after_answer(scope, answer.status, rid)
            finally:
                logs.request_id.reset(token)


class _Answer:
    """One request's answer on its way out: every start gets the request id, the rate limit
    and the server timing; a JSON error is held until its body carries the request id too."""

    def __init__(self, scope: Scope, send: Send, rid: str, started: float):
        self.scope = scope
        self._send = send
        self.rid = rid
        self.started = started
        self.status = 500
        self.sent_start = False
        self.held_start: Message | None = None  # an error's start, until its body is rewritten
        self.held_body = b""

    async def send(self, message: Message) -> None:
        """The ``send`` the app is given."""
        if message["type"] == "http.response.start":
            await self._start(message)
        elif message["type"] == "http.response.body" and self.held_start is not None:
            await self._error_body(message)
        else:
            await self._send(message)

    async def _start(self, message: Message) -> None:
        self.status = message["status"]
        headers = [(k, v) for k, v in message.get("headers", []) if k != b"x-request-id"]
        headers.append((b"x-request-id", self.rid.encode()))
        rate_limit = (self.scope.get("state") or {}).get("rate_limit")
        if rate_limit:  # agora.api.limits: the key's bucket for this route
            headers += rate_limit
        headers.append(
            (b"server-timing", b"app;dur=%.2f" % ((time.perf_counter() - self.started) * 1000))
        )
        message = {**message, "headers": headers}
        content_type = dict(headers).get(b"content-type", b"")
        json_error = self.status >= 400 and content_type.startswith(b"application/json")
        if json_error and self.scope.get("method") != "HEAD":  # HEAD answers carry no body
            self.held_start = message
            return
        self.sent_start = True
        await self._send(message)

    async def _error_body(self, message: Message) -> None:
        assert self.held_start is not None
        self.held_body += message.get("body", b"")
        if message.get("more_body", False):
            return
        body = _with_request_id(self.held_body, self.rid)
        headers = [(k, v) for k, v in self.held_start["headers"] if k != b"content-length"]
        headers.append((b"content-length", str(len(body)).encode()))
        self.sent_start = True
        await self._send({**self.held_start, "headers": headers})
        self.held_start = None
        await self._send({"type": "http.response.body", "body": body})

    async def internal_error(self) -> None:
        """Answer 500 with the generic message (nothing of the app's answer went out)."""
        self.status = 500
        self.held_start = None
        body = json.dumps({"detail": INTERNAL_ERROR}).encode()
        await self.send(
            {
                "type": "http.response.start",
                "status": 500,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await self.send({"type": "http.response.body", "body": body})


def _record(scope: Scope, route: str, status: int, started: float) -> None:
    """Count the request in the metrics and write its access log line."""
    seconds = time.perf_counter() - started
    method = scope.get("method", "")
    metrics.HTTP_REQUESTS.labels(method, route, str(status)).inc()
    metrics.HTTP_DURATION.labels(method, route).observe(seconds)
    principal = (scope.get("state") or {}).get("principal")
    access.info(
        "%s %s %s",
        method,
        route,
        status,
        extra={
            "fields": {
                "method": method,
                "route": route,
                "status": status,
                "duration_ms": round(seconds * 1000, 2),
                "key": getattr(principal, "key_id", None),
            }
        },
    )
