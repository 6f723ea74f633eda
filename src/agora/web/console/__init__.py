"""The operator console at ``/console/``: server-rendered pages (Jinja2), htmx for the parts
that change in place, Apache ECharts for the charts; both scripts ship under ``web/static``.

A shell like the API: its views call the same domain services and read the same caches, and
hold no domain logic. Sessions come from signing in with an API key (:mod:`.auth`); the key's
scope decides what a session sees and may do, as on the API.

Adding a page group (see docs/console.md):

1. ``pages/<group>.py`` with ``router = APIRouter(route_class=OneHopRoute, prefix="/console")``,
   ``NAV = NavEntry("/console/<group>", "nav.<group>")`` (or ``NAV = None`` for no nav link),
   and views taking ``auth.require("read")`` (pages) or ``auth.require("write"/"admin")``
   (actions, which also check the CSRF token) and returning ``layout.render(...)``;
2. its templates under ``templates/console/`` extending ``console/base.html``;
3. its texts in both ``i18n/en.py`` and ``i18n/zh.py``;
4. the module in ``PAGE_GROUPS`` below; its pages in tests/web/console and
   bench/console_pages.py; ``python docs/gen_reference.py``.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse

from agora.web.console import auth, layout
from agora.web.console.pages import (
    analytics,
    experiments,
    items,
    market,
    models,
    moderation,
    overview,
    signin,
    users,
)

#: The page groups, in navigation order.
PAGE_GROUPS = (overview, users, items, models, moderation, market, experiments, analytics)


async def _to_sign_in(request: Request, exc: Exception) -> RedirectResponse:
    assert isinstance(exc, auth.SignInRequired)
    return RedirectResponse(auth.sign_in_url(exc.next_path), status_code=303)


def install(app: FastAPI) -> None:
    """Serve the console's routes on ``app`` (its scripts come from ``/static``)."""
    app.add_exception_handler(auth.SignInRequired, _to_sign_in)
    app.include_router(signin.router)
    layout.NAV[:] = [group.NAV for group in PAGE_GROUPS if group.NAV is not None]
    for group in PAGE_GROUPS:
        app.include_router(group.router)
