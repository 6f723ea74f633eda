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
        status = 500
        sent_start = False
        held_start: Message | None = None  # an error's start, held until its body is rewritten
        held_body = b""

        async def send_with_id(message: Message) -> None:
            nonlocal status, sent_start, held_start, held_body
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [(k, v) for k, v in message.get("headers", []) if k != b"x-request-id"]
                headers.append((b"x-request-id", rid.encode()))
                rate_limit = (scope.get("state") or {}).get("rate_limit")
                if rate_limit:  # agora.api.limits: the key's bucket for this route
                    headers += rate_limit
                headers.append(
                    (b"server-timing", b"app;dur=%.2f" % ((time.perf_counter() - started) * 1000))
                )
                message = {**message, "headers": headers}
                content_type = dict(headers).get(b"content-type", b"")
                json_error = status >= 400 and content_type.startswith(b"application/json")
                if json_error and scope.get("method") != "HEAD":  # HEAD answers carry no body
                    held_start = message
                    return
                sent_start = True
                await send(message)
                return
            if message["type"] == "http.response.body" and held_start is not None:
                held_body += message.get("body", b"")
                if message.get("more_body", False):
                    return
                body = _with_request_id(held_body, rid)
                headers = [(k, v) for k, v in held_start["headers"] if k != b"content-length"]
                headers.append((b"content-length", str(len(body)).encode()))
                sent_start = True
                await send({**held_start, "headers": headers})
                held_start = None
                await send({"type": "http.response.body", "body": body})
                return
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            if sent_start:  # half an answer is out: only closing the connection is honest
                log.error("error after the response started", exc_info=exc)
                raise
            log.error(
                "unhandled error in %s %s",
                scope.get("method"),
                _route_template(scope, root_path),
                exc_info=exc,
            )
            status = 500
            held_start = None
            body = json.dumps({"detail": INTERNAL_ERROR}).encode()
            await send_with_id(
                {
                    "type": "http.response.start",
                    "status": 500,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                    ],
                }
            )
            await send_with_id({"type": "http.response.body", "body": body})
        finally:
            seconds = time.perf_counter() - started
            route = _route_template(scope, root_path)
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
            try:
                if self.after_answer is not None:
                    await self.after_answer(scope, status, rid)
            finally:
                logs.request_id.reset(token)
