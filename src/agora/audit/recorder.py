"""What records admin actions as they are answered: the ``after_answer`` hook of
:class:`agora.api.middleware.RequestContext`.

A request is audited when its method changes something (not GET, HEAD, OPTIONS; but a
person's export, :data:`agora.audit.service.AUDITED_READS`, is audited too), its route needs
the ``admin`` scope and its key holds that scope (the auth dependency accepted it), whatever the
status (a 422 or a 429 is an attempt worth seeing). The row is written in a pool thread after the
answer's last byte is sent, so the client does not wait for it; any other request returns from
the hook after a method check (GET) or a dictionary look-up. A failed write is logged (the
route template, the status and the error's class: never the path) and the answer stands.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from fastapi.routing import APIRoute
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool
from starlette.types import Scope

from agora.api.auth import route_scope
from agora.api.middleware import AfterAnswer
from agora.audit import service

log = logging.getLogger(__name__)


def recorder(sessions: sessionmaker[Session]) -> AfterAnswer:
    """The hook writing one :class:`~agora.audit.service.AdminAction` per audited request."""
    admin_routes: dict[int, bool] = {}  # id(route): whether it needs the admin scope

    async def after_answer(scope: Scope, status: int, request_id: str) -> None:
        method = scope.get("method", "")
        route = scope.get("route")
        if method in service.READ_METHODS and (
            not isinstance(route, APIRoute) or (method, route.path) not in service.AUDITED_READS
        ):
            return
        if not isinstance(route, APIRoute):
            return
        admin = admin_routes.get(id(route))
        if admin is None:  # routes live as long as the app
            admin = admin_routes[id(route)] = route_scope(route.dependant) == "admin"
        principal = (scope.get("state") or {}).get("principal")
        if not admin or principal is None or not principal.allows("admin"):
            return
        action = service.AdminAction(
            at=datetime.now(UTC),
            key_id=principal.key_id,
            method=method,
            route=route.path,
            status=status,
            request_id=request_id,
            path_params=service.kept_path_params(
                method, route.path, scope.get("path_params", {}), status
            ),
        )
        try:
            await run_in_threadpool(service.record, sessions, action)
        except Exception as exc:  # the answer is out; the failure is the log's to tell
            log.error(
                "audit: could not record %s %s (status %s): %s",
                method,
                route.path,
                status,
                type(exc).__name__,
            )

    return after_answer
