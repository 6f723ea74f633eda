"""API keys and scopes.

Keys come from :class:`~agora.config.Settings`: ``api_key`` is the admin key (every scope) and
``api_keys`` maps further keys to their scopes, e.g. ``{"reader-key": ["read"]}``. A request
carries its key as ``Authorization: Bearer <key>``.

Scopes are nested: ``admin ⊇ write ⊇ read``. A ``write`` key can therefore also read (a client
that posts events usually wants their recommendations too) and an ``admin`` key can do
everything. Unknown scope names in the configuration are ignored with a warning.

* no ``Authorization`` header, a scheme other than Bearer, or an unknown key → **401** with
  ``WWW-Authenticate: Bearer``;
* a valid key without the scope the route needs → **403**;
* a key past its rate limit for the route's class → **429** (:mod:`agora.api.limits`; a refused
  key is not charged).

Auth is a FastAPI dependency (:func:`require`) that routes declare before anything else, and
write routes read their body only after it, so a refused request is never parsed or written.
Keys are compared with :func:`hmac.compare_digest` against every configured key (no early exit).
With no key configured at all, every protected route answers 401.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request, Security, status
from fastapi.dependencies.models import Dependant
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from agora.config import Settings

log = logging.getLogger(__name__)

SCOPES: tuple[str, ...] = ("read", "write", "admin", "metrics")

#: What holding a scope grants: admin ⊇ write ⊇ read; ``metrics`` (scraping ``/metrics``) is
#: held by admin keys and by keys given only that scope (a Prometheus scraper's key).
IMPLIED: dict[str, frozenset[str]] = {
    "read": frozenset({"read"}),
    "write": frozenset({"write", "read"}),
    "admin": frozenset({"admin", "write", "read", "metrics"}),
    "metrics": frozenset({"metrics"}),
}

#: The OpenAPI security scheme ("Authorize" in /docs); errors are raised by :func:`require`.
bearer = HTTPBearer(
    auto_error=False,
    scheme_name="ApiKey",
    description="An Agora API key: `Authorization: Bearer <key>`.",
)
#: The same keys as Gorse's clients send them (``X-API-Key``), on the Gorse-compatible routes.
api_key_header = APIKeyHeader(
    name="X-API-Key",
    auto_error=False,
    scheme_name="XApiKey",
    description="An Agora API key as Gorse clients send it (the /api/ routes only).",
)


@dataclass(frozen=True)
class Principal:
    """Who is calling: a fingerprint of the key (never the key itself) and its scopes."""

    key_id: str
    scopes: frozenset[str]

    def allows(self, scope: str) -> bool:
        return scope in self.scopes


#: OpenAPI descriptions of the answers every keyed route can give; routers add their own.
AUTH_ERRORS: dict[int | str, dict[str, str]] = {
    401: {"description": "Missing or unknown API key."},
    403: {"description": "The API key lacks the needed scope."},
}


def expand(scopes: list[str] | tuple[str, ...]) -> frozenset[str]:
    """The scopes granted by a configured list (implied ones added, unknown ones dropped)."""
    granted: set[str] = set()
    for scope in scopes:
        granted |= IMPLIED.get(str(scope).strip().lower(), frozenset())
    return frozenset(granted)


def key_table(settings: Settings) -> list[tuple[bytes, frozenset[str]]]:
    """Every configured key (as bytes) with the scopes it grants; empty keys are skipped."""
    table: list[tuple[bytes, frozenset[str]]] = []
    if settings.api_key:
        table.append((settings.api_key.encode(), IMPLIED["admin"]))
    for key, scopes in settings.api_keys.items():
        if key:
            table.append((key.encode(), expand(scopes)))
    return table


def check_settings(settings: Settings) -> None:
    """Log configuration problems: no key at all, unknown scope names, keys without scopes."""
    if not key_table(settings):
        log.warning("no API key configured (AGORA_API_KEY): every protected route answers 401")
    for key, scopes in settings.api_keys.items():
        unknown = [s for s in scopes if str(s).strip().lower() not in IMPLIED]
        if unknown:
            log.warning("API key %s: unknown scopes %s ignored", fingerprint(key), unknown)
        if not expand(scopes):
            log.warning("API key %s grants no scope", fingerprint(key))


def fingerprint(key: str | bytes) -> str:
    """A short, non-reversible name for a key, safe to log."""
    raw = key.encode() if isinstance(key, str) else key
    return hashlib.sha256(raw).hexdigest()[:8]


def authenticate(settings: Settings, token: str) -> Principal | None:
    """The principal holding ``token``, or None; compares against every key in constant time."""
    offered = token.encode()
    found: frozenset[str] | None = None
    for key, scopes in key_table(settings):
        if hmac.compare_digest(offered, key) and found is None:
            found = scopes
    if found is None:
        return None
    return Principal(fingerprint(offered), found)


def _unauthorized(detail: str, error: str | None = None) -> HTTPException:
    challenge = "Bearer" if error is None else f'Bearer error="{error}"'
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED, detail=detail, headers={"WWW-Authenticate": challenge}
    )


def admit(request: Request, principal: Principal) -> None:
    """Let ``principal`` in: the request knows who it serves (differential privacy, audit and
    access log read it) and its key pays the rate limit (:mod:`agora.api.limits`: a 429)."""
    request.state.principal = principal
    limiter = getattr(request.app.state, "limiter", None)
    if limiter is not None:
        limiter.charge(request, principal)


def _admitted(request: Request, token: str | None, scope: str) -> Principal:
    """The caller holding ``token``, let in (:func:`admit`) if it has ``scope``; else the 401
    or 403 to answer."""
    if token is None:
        raise _unauthorized("missing API key: send 'Authorization: Bearer <key>'")
    settings: Settings = request.app.state.settings
    principal = authenticate(settings, token)
    if principal is None:
        raise _unauthorized("invalid API key", error="invalid_token")
    if not principal.allows(scope):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            detail=f"this API key lacks the {scope!r} scope",
            headers={"WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{scope}"'},
        )
    admit(request, principal)
    return principal


def _checked(scope: str) -> None:
    if scope not in IMPLIED:
        raise ValueError(f"unknown scope {scope!r}; known: {list(SCOPES)}")


def require(scope: str) -> Callable[..., Awaitable[Principal]]:
    """A dependency that lets a request through only with a key holding ``scope``."""
    _checked(scope)

    async def dependency(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)],
    ) -> Principal:
        return _admitted(request, credentials.credentials if credentials else None, scope)

    dependency.__name__ = f"require_{scope}"
    dependency.scope = scope  # type: ignore[attr-defined]  # read by declared_scopes
    return dependency


def require_key_header(scope: str) -> Callable[..., Awaitable[Principal]]:
    """:func:`require` for clients that send the key as ``X-API-Key`` (Gorse's clients); a
    Bearer key is taken too. The same keys, scopes and rate limits."""
    _checked(scope)

    async def dependency(
        request: Request,
        key: Annotated[str | None, Security(api_key_header)],
        credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)],
    ) -> Principal:
        return _admitted(request, key or (credentials.credentials if credentials else None), scope)

    dependency.__name__ = f"require_{scope}_by_key_header"
    dependency.scope = scope  # type: ignore[attr-defined]  # read by declared_scopes
    return dependency


def declared_scopes(dependant: Dependant | None) -> set[str]:
    """The scopes named by :func:`require` dependencies anywhere under ``dependant``."""
    found: set[str] = set()
    if dependant is None:
        return found
    for sub in dependant.dependencies:
        scope = getattr(sub.call, "scope", None)
        if scope in IMPLIED:
            found.add(scope)
        found |= declared_scopes(sub)
    return found


def route_scope(dependant: Dependant | None) -> str | None:
    """The scope a route needs (the widest its dependencies name), None for an open route."""
    scopes = declared_scopes(dependant)
    return max(scopes, key=lambda s: len(IMPLIED[s])) if scopes else None


#: Ready-made dependencies for route decorators: ``dependencies=[ReadScope]``.
ReadScope = Depends(require("read"))
WriteScope = Depends(require("write"))
AdminScope = Depends(require("admin"))
MetricsScope = Depends(require("metrics"))
