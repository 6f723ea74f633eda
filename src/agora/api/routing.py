"""The route class every router uses, and the read session it looks after.

A kit below the domains: it knows FastAPI and SQLAlchemy, nothing of Agora's domains.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterator
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from sqlalchemy.orm import Session


async def get_session(request: Request) -> Session:
    """A read session for one request (nothing is committed). Opening one does no I/O; the
    route's own thread closes it when the route returns (see :class:`OneHopRoute`)."""
    if not isinstance(request.scope.get("route"), OneHopRoute):
        raise RuntimeError("a route that takes a session must be a OneHopRoute")
    return request.app.state.sessions()


def _closing_sessions(endpoint: Callable[..., Any]) -> Callable[..., Any]:
    """``endpoint`` closing the sessions it was given when it returns, in its own thread."""

    @functools.wraps(endpoint)
    def run(**kwargs: Any) -> Any:
        try:
            return endpoint(**kwargs)
        finally:
            for value in kwargs.values():
                if isinstance(value, Session):
                    value.close()

    return run


def _takes_session(dependant: Dependant) -> bool:
    return any(d.call is get_session for d in dependant.dependencies)


def _nested(dependant: Dependant) -> Iterator[Dependant]:
    for below in dependant.dependencies:
        yield below
        yield from _nested(below)


class OneHopRoute(APIRoute):
    """A route whose read session lives and dies in the thread that runs the route.

    FastAPI runs a plain generator dependency's exit in a thread-pool hop of its own, after
    the route's. Under load every pool thread can be a route waiting for a database connection
    while the sessions holding the connections wait for a thread to close them: a deadlock
    until the connection pool's timeout, answered 500. Here the session is made in the event
    loop (no I/O) and closed by the route's own thread as it returns. Only a plain (sync)
    route may take the session, and only as its own parameter, so every session has a closer:
    both are checked when the route is made."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        is_async = inspect.iscoroutinefunction(endpoint)
        super().__init__(path, endpoint if is_async else _closing_sessions(endpoint), **kwargs)
        if any(_takes_session(d) for d in _nested(self.dependant)):
            raise TypeError(f"{path}: only a route itself may take a SessionDep")
        if is_async and _takes_session(self.dependant):
            raise TypeError(f"{path}: an async route may not take a SessionDep")


SessionDep = Annotated[Session, Depends(get_session)]
