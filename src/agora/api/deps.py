"""Dependencies the routers use to reach what ``create_app`` put on ``app.state``.

``app.state`` holds ``settings`` (Settings), ``engine`` (Engine) and ``sessions``
(sessionmaker), which every domain reaches through the dependencies here, and the domains' own
objects (the model store, the feed cache, the ad book...), each reached through a dependency its
domain declares with :func:`from_state` (``agora.serving.views.ModelsDep``,
``agora.feed.views.FeedCacheDep``...): the kit knows no domain.
Reads use :data:`~agora.api.routing.SessionDep` (one session per request); writes take the factory
(:func:`get_session_factory`) and run their whole request in one ``db.engine.transaction`` so a
refused request stores nothing. The getters of ``app.state`` are coroutines: FastAPI runs a
plain function dependency in its thread pool, a hop that costs more than the lookup itself.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy.orm import Session, sessionmaker

from agora.api.routing import SessionDep as SessionDep
from agora.config import Settings


def from_state(name: str) -> Callable[[Request], Awaitable[Any]]:
    """A dependency answering ``app.state.<name>`` (as a coroutine: no thread-pool hop)."""

    async def get(request: Request) -> Any:
        return getattr(request.app.state, name)

    get.__name__ = f"get_{name}"
    return get


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_session_factory(request: Request) -> sessionmaker[Session]:
    return request.app.state.sessions


SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionFactoryDep = Annotated[sessionmaker[Session], Depends(get_session_factory)]
