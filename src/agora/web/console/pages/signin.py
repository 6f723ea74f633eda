"""Sign-in with an API key, sign-out, and the language switch (the console's open routes)."""

from __future__ import annotations

import secrets
import time
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from agora.api.routing import OneHopRoute
from agora.web.console import auth
from agora.web.console.i18n import LANG_COOKIE, LANGUAGES
from agora.web.console.layout import render

router = APIRouter(route_class=OneHopRoute, prefix="/console")
Next = Annotated[str | None, Query(max_length=500)]
COOKIE = {"httponly": True, "samesite": "strict", "path": "/console"}


def _pre_session(request: Request) -> str:
    """The pre-session id the sign-in form's CSRF token is tied to (kept in a cookie)."""
    pre = request.cookies.get(auth.PRESESSION_COOKIE)
    if not pre or len(pre) > 64:
        pre = secrets.token_urlsafe(16)
    request.state.console_pre = pre
    return pre


def _form(request: Request, next_path: str, error: str | None, code: int) -> HTMLResponse:
    pre = _pre_session(request)
    answer = render(request, "signin.html", {"next": next_path, "error": error}, code)
    answer.set_cookie(auth.PRESESSION_COOKIE, pre, **COOKIE, secure=request.url.scheme == "https")
    return answer


@router.get("/signin", response_class=HTMLResponse, include_in_schema=False)
def sign_in_form(request: Request, next: Next = None) -> HTMLResponse:
    """The sign-in form (an API key)."""
    return _form(request, auth.safe_next(next), None, status.HTTP_200_OK)


@router.post("/signin", include_in_schema=False)
async def sign_in(request: Request) -> Response:
    """Exchange an API key for a session cookie; the key itself is not kept."""
    fields = await auth.form_fields(request)
    key = auth.secret_for(request)
    await auth.check_csrf(request, key, request.cookies.get(auth.PRESESSION_COOKIE))
    next_path = auth.safe_next(fields.get("next"))
    settings = request.app.state.settings
    principal = auth.sign_in(settings, fields.get("api_key", "")[:512])
    if principal is None:
        return _form(request, next_path, "signin.refused", status.HTTP_401_UNAUTHORIZED)
    cookie = auth.session_cookie(key, principal, settings.console_session_hours, time.time())
    answer = RedirectResponse(next_path, status.HTTP_303_SEE_OTHER)
    answer.set_cookie(
        auth.SESSION_COOKIE,
        cookie,
        max_age=int(settings.console_session_hours * 3600),
        secure=request.url.scheme == "https",
        **COOKIE,
    )
    answer.delete_cookie(auth.PRESESSION_COOKIE, path="/console")
    return answer


@router.post("/signout", include_in_schema=False)
async def sign_out(
    request: Request, _: Annotated[auth.ConsoleSession, Depends(auth.require("read"))]
) -> Response:
    """End the session (its cookie is dropped)."""
    answer = RedirectResponse(auth.SIGN_IN_PATH, status.HTTP_303_SEE_OTHER)
    answer.delete_cookie(auth.SESSION_COOKIE, path="/console")
    return answer


@router.get("/language/{lang}", include_in_schema=False)
def switch_language(request: Request, lang: str, next: Next = None) -> Response:
    """Remember the chosen language (a cookie) and go back to the page."""
    answer = RedirectResponse(auth.safe_next(next), status.HTTP_303_SEE_OTHER)
    if lang in LANGUAGES:
        answer.set_cookie(
            LANG_COOKIE, lang, max_age=365 * 86400, httponly=True, samesite="lax", path="/"
        )
    return answer
