"""Per-key rate limits: a token bucket per API key and route class.

A key's bucket for a class holds up to ``burst`` tokens and gains ``rate`` tokens a second; each
request takes one, and a request finding less than one token is answered **429** with
``Retry-After`` (whole seconds, rounded up, until a token is there). Every answer to a keyed
request carries ``RateLimit-Limit`` (the burst), ``RateLimit-Remaining`` (whole tokens left) and
``RateLimit-Reset`` (seconds until the bucket is full again), after the IETF draft
(draft-ietf-httpapi-ratelimit-headers).

* **Which bucket**: the key is named by its fingerprint (:class:`~agora.api.auth.Principal`'s
  ``key_id``, never the key); the route class is the scope the route needs (``read``, ``write``,
  ``admin``, ``metrics``) unless ``LimitsConfig.routes`` gives the route one of its own
  (``POST /events`` is ``events``). Rates come from ``AGORA_LIMITS`` (see
  :class:`~agora.config.LimitsConfig`); open routes (``/health``, ``/docs``...) have no bucket.
* **Where it runs**: :func:`agora.api.auth.require` calls :meth:`RateLimiter.charge` once the key
  is known and holds the scope, so every keyed route is limited without saying so; a request is
  charged once however many scope dependencies it has. A refused key (401/403) costs nothing.
* **Shared or not**: without ``AGORA_REDIS_URL`` each worker keeps its buckets in memory (with
  N workers a key gets up to N times the rate). With it, the buckets live in Redis and every
  worker takes from the same one: one Lua script (one round trip) refills by Redis's own clock,
  takes the token and sets the key's expiry. While Redis does not answer, requests are served
  without limits (fail open): Redis is asked again after ``RETRY_SECONDS`` and a warning is
  logged at most once per ``WARN_SECONDS``.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Iterable
from typing import Any

from fastapi import FastAPI, HTTPException, Request, status
from fastapi.routing import APIRoute

from agora.api import metrics
from agora.api.auth import Principal, route_scope
from agora.api.scopes_doc import iter_route_contexts
from agora.config import LimitsConfig, RateLimit

log = logging.getLogger(__name__)

#: After a Redis error, how long requests are served without asking Redis (fail open).
RETRY_SECONDS = 5.0
#: At most one warning about an unreachable Redis per this many seconds.
WARN_SECONDS = 60.0
#: How long a Redis call may take before the request is served without it.
REDIS_TIMEOUT_SECONDS = 0.1

#: One bucket in Redis: refill by Redis's clock, take one token if there is one, expire the key
#: once it would be full anyway. Returns {1 if taken else 0, tokens left as a string}.
TAKE = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local held = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(held[1])
local at = tonumber(held[2])
if tokens == nil or at == nil then
  tokens = burst
else
  tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
end
local taken = 0
if tokens >= 1 then
  tokens = tokens - 1
  taken = 1
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) / rate * 1000) + 1000)
return {taken, tostring(tokens)}
"""


class LocalBuckets:
    """Buckets in this process's memory (one per key and class; keys are the configured ones,
    so their number is bounded)."""

    def __init__(self) -> None:
        self._buckets: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def take(self, name: str, limit: RateLimit) -> tuple[bool, float]:
        """Take a token from bucket ``name``: (taken, tokens left)."""
        now = time.monotonic()
        with self._lock:
            bucket = self._buckets.get(name)
            if bucket is None:
                bucket = self._buckets[name] = [float(limit.burst), now]
            tokens = min(limit.burst, bucket[0] + (now - bucket[1]) * limit.rate)
            taken = tokens >= 1
            if taken:
                tokens -= 1
            bucket[0], bucket[1] = tokens, now
        return taken, tokens


class RedisBuckets:
    """Buckets in Redis, shared by every worker using the same Redis and database; None from
    :meth:`take` while Redis fails (the request is served)."""

    def __init__(self, redis_url: str, prefix: str) -> None:
        import redis

        self._errors = (redis.RedisError, OSError)
        client = redis.Redis.from_url(
            redis_url,
            socket_timeout=REDIS_TIMEOUT_SECONDS,
            socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
        )
        self._take = client.register_script(TAKE)
        self._prefix = prefix
        self._asleep_until = -math.inf
        self._warned = -math.inf

    def take(self, name: str, limit: RateLimit) -> tuple[bool, float] | None:
        now = time.monotonic()
        if now < self._asleep_until:
            return None
        try:
            taken, tokens = self._take(keys=[self._prefix + name], args=[limit.rate, limit.burst])
        except self._errors as exc:
            self._asleep_until = now + RETRY_SECONDS
            if now - self._warned >= WARN_SECONDS:
                self._warned = now
                log.warning(
                    "rate limits not enforced: Redis does not answer (%s: %s); requests are "
                    "served without limits, Redis is asked again every %g s",
                    type(exc).__name__,
                    exc,
                    RETRY_SECONDS,
                )
            return None
        return bool(taken), float(tokens)


def _headers(limit: RateLimit, tokens: float) -> list[tuple[bytes, bytes]]:
    reset = math.ceil(max(0.0, limit.burst - tokens) / limit.rate)
    return [
        (b"ratelimit-limit", b"%d" % limit.burst),
        (b"ratelimit-remaining", b"%d" % max(0, math.floor(tokens))),
        (b"ratelimit-reset", b"%d" % reset),
    ]


class RateLimiter:
    """The app's limiter (``app.state.limiter``): see the module docstring."""

    def __init__(self, config: LimitsConfig, redis_url: str | None = None, prefix: str = ""):
        self.config = config
        self.buckets: LocalBuckets | RedisBuckets = (
            RedisBuckets(redis_url, prefix) if redis_url else LocalBuckets()
        )
        self._classes: dict[tuple[int, str], str | None] = {}  # (id(route), method): class

    def route_class(self, route: Any, method: str) -> str | None:
        """The class of ``method`` on ``route`` (None: an open route, never limited)."""
        found = self._classes.get((id(route), method), "")
        if found == "":
            found = None
            if isinstance(route, APIRoute):
                scope = route_scope(route.dependant)
                asked = "GET" if method == "HEAD" else method
                named = self.config.routes.get(f"{asked} {route.path}")
                found = (named or scope) if scope is not None else None
            self._classes[(id(route), method)] = found  # routes live as long as the app
        return found

    def limited(self, route_class: str) -> bool:
        """Whether some key can get a 429 on routes of ``route_class``."""
        return self.config.classes.get(route_class) is not None or any(
            own.get(route_class) is not None for own in self.config.keys.values()
        )

    def charge(self, request: Request, principal: Principal) -> None:
        """Take a token for this request from its key's bucket (once per request): 429 when
        the bucket is empty. The RateLimit headers go in ``request.state.rate_limit`` (the
        request context middleware adds them to the answer)."""
        state = request.scope.setdefault("state", {})
        if "rate_limit" in state:
            return
        state["rate_limit"] = None
        route_class = self.route_class(request.scope.get("route"), request.method)
        if route_class is None:
            return
        limit = self.config.bucket(principal.key_id, route_class)
        if limit is None:
            return
        outcome = self.buckets.take(f"{principal.key_id}:{route_class}", limit)
        if outcome is None:  # Redis is down: served
            return
        taken, tokens = outcome
        state["rate_limit"] = _headers(limit, tokens)
        if not taken:
            metrics.RATE_LIMITED.labels(route_class).inc()
            retry = max(1, math.ceil((1 - tokens) / limit.rate))
            raise HTTPException(
                status.HTTP_429_TOO_MANY_REQUESTS,
                detail=f"rate limit {route_class!r} of this API key exceeded: {limit.rate:g} "
                f"requests a second, bursts of {limit.burst}; retry after {retry} s",
                headers={"Retry-After": str(retry)},
            )


#: The 429 answer in the OpenAPI document.
TOO_MANY = {
    "description": "The API key's rate limit for this route's class is used up (`detail` names "
    "it); retry after `Retry-After` seconds.",
    "headers": {
        "Retry-After": {
            "description": "Seconds until the request can succeed (rounded up).",
            "required": True,
            "schema": {"type": "integer", "minimum": 1},
        },
        "RateLimit-Limit": {
            "description": "The bucket's size (requests at once).",
            "schema": {"type": "integer", "minimum": 1},
        },
        "RateLimit-Remaining": {
            "description": "Whole requests left in the bucket.",
            "schema": {"type": "integer", "minimum": 0},
        },
        "RateLimit-Reset": {
            "description": "Seconds until the bucket is full again.",
            "schema": {"type": "integer", "minimum": 0},
        },
    },
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}},
}


def _operations(app: FastAPI) -> Iterable[tuple[APIRoute, str, str]]:
    """(route as requests see it, method, path in the document) of every documented route."""
    for context in iter_route_contexts(app.routes):
        route = getattr(context, "original_route", context)
        if isinstance(route, APIRoute) and route.include_in_schema:
            for method in route.methods:
                yield route, method, context.path_format


def install(app: FastAPI, limiter: RateLimiter | None) -> None:
    """Put ``limiter`` on ``app.state`` (None: no limits) and document a 429 on every operation
    whose route class has a bucket (call after :func:`agora.api.openapi.install`)."""
    app.state.limiter = limiter
    if limiter is None:
        return
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = generate()
        for route, method, path in _operations(app):
            route_class = limiter.route_class(route, method)
            operation = schema["paths"].get(path, {}).get(method.lower())
            if operation is None or route_class is None or not limiter.limited(route_class):
                continue
            responses = dict(operation.get("responses", {}))
            other = responses.get("429")  # the route's own 429 (a spent privacy budget)
            responses["429"] = (
                TOO_MANY
                if other is None
                else {**TOO_MANY, "description": f"{TOO_MANY['description']} Or: "
                      f"{other.get('description', '')}"}
            )  # fmt: skip
            operation["responses"] = dict(sorted(responses.items()))
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
