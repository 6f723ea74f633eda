"""``GET /admin/audit``: the audit log of admin actions, newest first (admin scope)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from agora.api.auth import AUTH_ERRORS, AdminScope
from agora.api.routing import OneHopRoute, SessionDep
from agora.api.types import QueryTime, RowId
from agora.audit import service
from agora.audit.schemas import AuditEntryOut, AuditPageOut

router = APIRouter(route_class=OneHopRoute, tags=["operations"])


@router.get(
    "/admin/audit",
    summary="The audit log of admin actions, newest first",
    dependencies=[AdminScope],
    responses=AUTH_ERRORS,
)
def get_audit(
    session: SessionDep,
    since: Annotated[QueryTime | None, Query(description="Only entries from this time.")] = None,
    route: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=255,
            pattern=r"^/[A-Za-z0-9_.{}/-]*$",
            description="Only this route template, e.g. `/users/{user_id}`.",
        ),
    ] = None,
    key_id: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=16,
            pattern="^[0-9a-f]+$",
            description="Only requests with the key of this fingerprint.",
        ),
    ] = None,
    cursor: Annotated[RowId | None, Query(description="The previous page's `next_cursor`.")] = None,
    limit: Annotated[
        int, Query(ge=1, le=service.MAX_PAGE, description="Most entries on the page.")
    ] = 100,
) -> AuditPageOut:
    """Every request that used the admin scope with a method that changes something (POST,
    PUT, PATCH, DELETE), however it was answered: time, key fingerprint, method, route template,
    path ids, status, request id. Bodies and query strings are never kept."""
    page, next_cursor = service.entries(
        session, since=since, route=route, key_id=key_id, before=cursor, limit=limit
    )
    return AuditPageOut(
        entries=[AuditEntryOut(**entry.__dict__) for entry in page], next_cursor=next_cursor
    )
