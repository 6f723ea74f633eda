"""Refusing query parameters a route does not take, on every route at once.

A misspelt or outdated name (``?top=`` where the route takes ``n``) would otherwise be ignored
silently and the client would get an answer to a question it did not ask. :func:`check_query`
is installed as an app-wide dependency by :func:`install`: each route's accepted names are read
from its own declared parameters (its dependencies' included), so nothing is listed by hand.
"""

from __future__ import annotations

from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from agora.api.auth import authenticate, route_scope
from agora.api.errors import InvalidRequest, problem


def _query_names(dependant: Dependant) -> list[str]:
    """The query parameter names ``dependant`` and its sub-dependencies read, in order."""
    names = [field.alias for field in dependant.query_params]
    for sub in dependant.dependencies:
        names += _query_names(sub)
    return list(dict.fromkeys(names))


def _refused(request: Request, route: APIRoute) -> bool:
    """Whether the route's auth will refuse this request (it answers 401/403 first, so that a
    caller without the scope learns nothing about the route's parameters). An accepted key is
    charged its rate limit here (a 429 before the 422), as the route's auth would have."""
    scope = route_scope(route.dependant)
    if scope is None:
        return False
    kind, _, token = request.headers.get("authorization", "").partition(" ")
    principal = authenticate(request.app.state.settings, token.strip())
    if kind.lower() != "bearer" or principal is None or not principal.allows(scope):
        return True
    request.state.principal = principal  # as the route's auth would (access log, audit)
    limiter = getattr(request.app.state, "limiter", None)
    if limiter is not None:
        limiter.charge(request, principal)
    return False


async def check_query(request: Request) -> None:
    """Raise InvalidRequest (422, ``query.<name>``) for each query parameter the route ignores
    (after authentication: a refused caller gets the route's 401 or 403). A coroutine that
    never awaits: it runs on the event loop, not in a thread-pool hop, before every route."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    accepted = getattr(route, "_agora_query_names", None)
    if accepted is None:
        accepted = _query_names(route.dependant)
        route._agora_query_names = accepted  # type: ignore[attr-defined]  # computed once
    unknown = [name for name in dict.fromkeys(request.query_params) if name not in accepted]
    if unknown and not _refused(request, route):
        takes = (
            f"accepted: {', '.join(accepted)}"
            if accepted
            else "this route takes no query parameters"
        )
        raise InvalidRequest(
            [
                problem(
                    ("query", name), f"unknown query parameter {name!r}; {takes}", "extra_forbidden"
                )
                for name in unknown
            ]
        )


def install(app: FastAPI) -> None:
    """Check every route's query string (routes included after this call are covered too), and
    document the 422 on every operation (call before ``error_handlers.install``, which gives
    every error answer its ``ErrorOut`` body in the schema)."""
    app.router.dependencies.append(Depends(check_query))
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = generate()
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                answers = operation.setdefault("responses", {})
                answers.setdefault("422", {"description": "Validation Error"})
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
