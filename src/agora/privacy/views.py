"""HTTP routes of people's data: export everything about a user, erase them (from the tables
and the trained models), and the erasures' audit trail. All need the ``admin`` scope: they are
the operator's answers to a member's request ("export everything about me", "forget me")."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response, status
from fastapi import Path as PathParam
from sqlalchemy.orm import Session, sessionmaker

from agora.api.auth import AUTH_ERRORS, AdminScope
from agora.api.deps import SessionDep, SessionFactoryDep, SettingsDep
from agora.api.errors import NotFound
from agora.api.routing import OneHopRoute
from agora.config import Settings
from agora.feed.store import candidate_store
from agora.ingest.views import UserId
from agora.privacy import service
from agora.privacy.schemas import ErasureOut, ErasuresOut, ExportOut

router = APIRouter(route_class=OneHopRoute, tags=["privacy"])
NOT_FOUND = {404: {"description": "The user is not in the store."}}


def _out(record: service.ErasureRecord) -> ErasureOut:
    return ErasureOut(
        erasure_id=record.id,
        requested_by=record.requested_by,
        requested=record.requested,
        content=record.content,  # type: ignore[arg-type]
        removed=record.removed,
        artifacts=record.artifacts,
        retrain=record.retrain,  # type: ignore[arg-type]
        retrained=record.retrained,
        retrained_versions=record.retrained_versions,
    )


@router.get(
    "/users/{user_id}/export",
    summary="Everything stored about a user, as one JSON document",
    dependencies=[AdminScope],
    responses={**AUTH_ERRORS, **NOT_FOUND},
)
def get_export(user_id: UserId, session: SessionDep) -> ExportOut:
    """The profile, every row of every table that refers to the user (events, edges both
    ways, memberships and segments, feed settings, feedback and impressions, points, badges,
    trust, tasks, flags they raised, experiment exposures, ad impressions, clicks and
    conversions) with other rows named by their external ids, and the items they wrote."""
    document = service.export_user(session, user_id)
    if document is None:
        raise NotFound(f"user {user_id!r} not found")
    return ExportOut.model_validate(document)


def erase_asked(
    request: Request,
    sessions: sessionmaker[Session],
    settings: Settings,
    user_id: str,
    content: service.Content = "keep",
) -> service.ErasureRecord | None:
    """The erasure of ``user_id`` asked by this request's key (None: no such user), with what
    this process holds of them dropped at once (the others learn it from the store)."""
    record = service.erase(
        sessions,
        settings.model_dir,
        candidate_store(settings.redis_url, sessions),
        user_id,
        requested_by=request.state.principal.key_id,
        content=content,
        retrain=settings.erasure_retrain_seconds > 0,
    )
    if record is not None:
        for forget in request.app.state.after_erasures:
            forget(record.user_pk)
    return record


@router.delete(
    "/users/{user_id}",
    tags=["users"],
    summary="Erase a user: every row about them, and them from the trained models",
    status_code=status.HTTP_204_NO_CONTENT,
    dependencies=[AdminScope],
    responses={
        **AUTH_ERRORS,
        **NOT_FOUND,
        204: {
            "description": "Erased; `Location` names the erasure's record in the audit trail.",
            "headers": {"Location": {"schema": {"type": "string"}}},
        },
    },
)
def delete_user(
    user_id: UserId,
    request: Request,
    sessions: SessionFactoryDep,
    settings: SettingsDep,
    content: Annotated[
        Literal["keep", "delete"],
        Query(description="The items they wrote: kept without author (default), or deleted."),
    ] = "keep",
) -> Response:
    """Removes the user's rows from every table in one transaction, then their id and
    per-user rows from every model version on disk (older versions included), at once; the
    models are fitted again without their events `erasure_retrain_seconds` later. The
    erasure is recorded (who asked, when, what was removed, never the removed data)."""
    record = erase_asked(request, sessions, settings, user_id, content)
    if record is None:
        raise NotFound(f"user {user_id!r} not found")
    return Response(
        status_code=status.HTTP_204_NO_CONTENT,
        headers={"Location": f"/admin/erasures/{record.id}"},
    )


@router.get(
    "/admin/erasures",
    summary="The erasures' audit trail, newest first",
    dependencies=[AdminScope],
    responses=AUTH_ERRORS,
)
def get_erasures(
    session: SessionDep,
    before: Annotated[
        int | None, Query(ge=1, le=2**62, description="Only erasures older than this id.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> ErasuresOut:
    records = service.erasures(session, before, limit)
    more = len(records) == limit and records[-1].id > 1
    return ErasuresOut(
        erasures=[_out(r) for r in records], next_before=records[-1].id if more else None
    )


@router.get(
    "/admin/erasures/{erasure_id}",
    summary="One erasure's record",
    dependencies=[AdminScope],
    responses={**AUTH_ERRORS, 404: {"description": "No such erasure."}},
)
def get_erasure(
    erasure_id: Annotated[int, PathParam(ge=1, le=2**62)], session: SessionDep
) -> ErasureOut:
    record = service.erasure(session, erasure_id)
    if record is None:
        raise NotFound(f"erasure {erasure_id} not found")
    return _out(record)
