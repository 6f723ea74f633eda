"""Console sessions: an API key is exchanged once for a signed cookie; CSRF tokens guard writes.

The key itself never leaves the sign-in request: the cookie holds the key's fingerprint
(:func:`agora.api.auth.fingerprint`), a random session id and an expiry, signed with
HMAC-SHA256 under the console secret. Each request looks the fingerprint up in the keys
configured *now* (:func:`agora.api.auth.key_table`), so removing a key or changing its scopes
takes effect on the next click. The cookie is HttpOnly and SameSite=Strict.

Every form and every htmx POST carries a CSRF token, HMAC(secret, session id) (before sign-in:
of a random pre-session cookie), sent as the ``csrf`` form field or the ``X-CSRF-Token``
header and checked here. A page asked for without a session redirects to the sign-in form; a
fragment (htmx) or an action answers 401; an action the session's key may not do answers 403.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, quote

from fastapi import HTTPException, Request, status

from agora.api.auth import IMPLIED, Principal, admit, authenticate, fingerprint, key_table
from agora.config import Settings

SESSION_COOKIE = "agora_console"
PRESESSION_COOKIE = "agora_console_pre"
CSRF_FIELD = "csrf"
CSRF_HEADER = "X-CSRF-Token"
SIGN_IN_PATH = "/console/signin"
SECRET_FILE = "console-secret"


@dataclass(frozen=True)
class ConsoleSession:
    """A signed-in operator: the key's principal (fingerprint and current scopes) and the
    session id the CSRF token is derived from."""

    principal: Principal
    session_id: str
    expires: float

    def can(self, scope: str) -> bool:
        return self.principal.allows(scope)


class SignInRequired(Exception):
    """A page was asked for without a valid session: the sign-in form answers instead."""

    def __init__(self, next_path: str):
        self.next_path = next_path


def secret(settings: Settings) -> bytes:
    """The signing key: ``console_secret`` when set, else one generated once and kept in the
    data folder (created 0600; never logged)."""
    if settings.console_secret is not None:
        return settings.console_secret.get_secret_value().encode()
    path = Path(settings.data_dir) / SECRET_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(48))
    return path.read_text().strip().encode()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(key: bytes, payload: str) -> str:
    return _b64(hmac.new(key, payload.encode(), hashlib.sha256).digest())


def session_cookie(key: bytes, principal: Principal, hours: float, now: float) -> str:
    """The cookie value of a new session for ``principal``."""
    body = {"k": principal.key_id, "s": secrets.token_urlsafe(16), "e": now + hours * 3600}
    payload = _b64(json.dumps(body, separators=(",", ":")).encode())
    return f"{payload}.{_sign(key, payload)}"


def read_session(
    settings: Settings, key: bytes, cookie: str | None, now: float
) -> ConsoleSession | None:
    """The session a cookie holds, or None (absent, altered, expired, or its key is gone)."""
    if not cookie or cookie.count(".") != 1:
        return None
    payload, signature = cookie.split(".")
    if not hmac.compare_digest(signature, _sign(key, payload)):
        return None
    try:
        body = json.loads(_unb64(payload))
        key_id, session_id, expires = str(body["k"]), str(body["s"]), float(body["e"])
    except (ValueError, KeyError, TypeError):
        return None
    if expires < now:
        return None
    for configured, scopes in key_table(settings):  # the key's scopes as configured now
        if hmac.compare_digest(fingerprint(configured), key_id):
            return ConsoleSession(Principal(key_id, scopes), session_id, expires)
    return None


def sign_in(settings: Settings, api_key: str) -> Principal | None:
    """The principal of an API key typed into the sign-in form (None: unknown key or no
    scope the console can use)."""
    principal = authenticate(settings, api_key.strip())
    if principal is None or not principal.allows("read"):
        return None
    return principal


def csrf_token(key: bytes, anchor: str) -> str:
    """The CSRF token of a session (or a pre-session) id."""
    return _sign(key, f"csrf|{anchor}")


async def form_fields(request: Request) -> dict[str, str]:
    """A urlencoded form body as a dict (first value of each field); read once, cached."""
    cached = getattr(request.state, "console_form", None)
    if cached is None:
        raw = (await request.body()).decode("utf-8", errors="replace")
        cached = {k: v[0] for k, v in parse_qs(raw, keep_blank_values=True).items()}
        request.state.console_form = cached
    return cached


async def check_csrf(request: Request, key: bytes, anchor: str | None) -> None:
    """403 unless the request carries the CSRF token of ``anchor``."""
    offered = request.headers.get(CSRF_HEADER) or (await form_fields(request)).get(CSRF_FIELD)
    if not anchor or not offered or not hmac.compare_digest(offered, csrf_token(key, anchor)):
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="missing or invalid CSRF token")


def _is_fragment(request: Request) -> bool:
    return request.headers.get("HX-Request") == "true" or request.method != "GET"


def current(request: Request) -> ConsoleSession | None:
    """The request's valid session, or None."""
    settings: Settings = request.app.state.settings
    return read_session(
        settings, secret_for(request), request.cookies.get(SESSION_COOKIE), time.time()
    )


def require(scope: str) -> Callable[[Request], Awaitable[ConsoleSession]]:
    """A dependency letting a console request through only with a session whose key holds
    ``scope``; actions (any non-GET) must also carry the session's CSRF token. Its ``scope``
    attribute is what docs/scopes.md reports, as for the API's own dependencies."""
    if scope not in IMPLIED:
        raise ValueError(f"unknown scope {scope!r}")

    async def dependency(request: Request) -> ConsoleSession:
        session = current(request)
        if session is None:
            if _is_fragment(request):
                raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail="sign in to the console")
            query = request.url.query
            raise SignInRequired(request.url.path + (f"?{query}" if query else ""))
        if request.method != "GET":
            await check_csrf(request, secret_for(request), session.session_id)
        if not session.can(scope):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN, detail=f"this API key lacks the {scope!r} scope"
            )
        admit(request, session.principal)  # as the API: who it serves, the key's rate limit
        request.state.console = session
        return session

    dependency.__name__ = f"console_{scope}"
    dependency.scope = scope  # type: ignore[attr-defined]  # read by agora.api.auth.route_scope
    return dependency


def sign_in_url(next_path: str) -> str:
    """The sign-in form, sending the operator back to ``next_path`` once signed in."""
    return f"{SIGN_IN_PATH}?next={quote(next_path)}"


def safe_next(path: str | None) -> str:
    """Where to go after sign-in or a language switch: a console path only (no open
    redirect to another site)."""
    if path and path.startswith("/console/") and not path.startswith("//") and "\\" not in path:
        return path
    return "/console/"


def csrf_for(request: Request) -> str:
    """The token forms on this response carry: of the session, else of the pre-session."""
    session = getattr(request.state, "console", None)
    anchor = session.session_id if session else request.state.console_pre
    return csrf_token(secret_for(request), anchor)


def secret_for(request: Request) -> bytes:
    """The console secret of the app serving ``request`` (read once, then kept)."""
    state = request.app.state
    key = getattr(state, "console_secret", None)
    if key is None:
        key = state.console_secret = secret(state.settings)
    return key
