"""What every console page shares: the templates, the navigation and the render helper.

A page group is a module of :mod:`agora.web.console.pages` with a ``router`` and a ``NAV``
entry; :mod:`agora.web.console` includes them in the order of ``PAGE_GROUPS``. Views call
:func:`render` with their template and data; the layout (``templates/console/base.html``)
adds the navigation, the language switch, the signed-in key's scope and sign-out.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from fastapi import HTTPException, Request, status
from fastapi.responses import HTMLResponse, Response
from fastapi.templating import Jinja2Templates
from markupsafe import Markup
from pydantic import ValidationError

from agora.web.console import auth
from agora.web.console.i18n import LANG_COOKIE, LANGUAGES, language, translator

log = logging.getLogger(__name__)
TEMPLATES = Jinja2Templates(directory=Path(__file__).parent / "templates")


def listed(value: object) -> list[str]:
    """A stored list (tags) as texts; anything else a row may hold reads as empty."""
    return [str(v) for v in value] if isinstance(value, list) else []


TEMPLATES.env.filters["listed"] = listed


@dataclass(frozen=True)
class NavEntry:
    """A page in the navigation bar: its path and the catalogue key of its label."""

    path: str
    label: str


#: Filled by :func:`agora.web.console.install` from the page groups, in their order.
NAV: list[NavEntry] = []


T = TypeVar("T")


def panel(read: Callable[[], T], what: str) -> T | None:
    """One panel's data, or None when its rows cannot be read (logged by error class only,
    never the data): one odd stored row must not take the whole page down."""
    try:
        return read()
    except Exception as exc:  # noqa: BLE001 - the page still shows the other panels
        log.warning("console: the %s panel could not be read (%s)", what, type(exc).__name__)
        return None


def unprocessable(exc: ValueError) -> HTTPException:
    """A 422 naming each problem of a form (field: message), from a pydantic validation
    error or a plain ``ValueError`` raised while reading the fields."""
    errors = exc.errors() if isinstance(exc, ValidationError) else [{"msg": str(exc)}]
    message = "; ".join(
        f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e['msg']}".lstrip(": ") for e in errors
    )
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=message)


def go_to(path: str) -> Response:
    """The answer of an htmx action whose result shows on a page: the browser goes there
    (``HX-Redirect``), a fresh load of what the change did."""
    return Response(status_code=status.HTTP_204_NO_CONTENT, headers={"HX-Redirect": path})


def chart(option: dict[str, Any]) -> Markup:
    """An ECharts option as the ``data-chart`` attribute value console.js draws from."""
    text = json.dumps(option, ensure_ascii=False, default=str)
    return Markup('data-chart="{}"').format(text)


def age(moment: datetime | str | None, t: Any) -> str:
    """How long ago ``moment`` was, in the page's language ("3 h", "2 d")."""
    if moment is None:
        return "–"
    if isinstance(moment, str):
        try:
            moment = datetime.fromisoformat(moment)
        except ValueError:
            return "–"
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    seconds = max(0.0, (datetime.now(UTC) - moment).total_seconds())
    if seconds < 3600:
        return t("age.minutes", n=int(seconds // 60))
    if seconds < 86400:
        return t("age.hours", n=int(seconds // 3600))
    return t("age.days", n=int(seconds // 86400))


def texts(request: Request) -> Callable[..., str]:
    """The translator of the language the request's cookie chose."""
    return translator(language(request.cookies.get(LANG_COOKIE)))


def context(request: Request) -> dict[str, Any]:
    """What the layout needs on every page: texts, language, session, CSRF token, nav."""
    lang = language(request.cookies.get(LANG_COOKIE))
    session = getattr(request.state, "console", None)
    return {
        "t": translator(lang),
        "lang": lang,
        "languages": LANGUAGES,
        "session": session,
        "can_write": bool(session and session.can("write")),
        "can_admin": bool(session and session.can("admin")),
        "csrf": auth.csrf_for(request),
        "nav": NAV,
        "path": request.url.path,
        "chart": chart,
        "age": age,
    }


def render(
    request: Request, template: str, data: dict[str, Any], status_code: int = 200
) -> HTMLResponse:
    """``template`` (under ``templates/console/``) with the layout's context and ``data``."""
    return TEMPLATES.TemplateResponse(
        request, f"console/{template}", {**context(request), **data}, status_code=status_code
    )
