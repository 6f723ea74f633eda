"""HTTP routes of user segments: build and store them, read them and a user's segment (admin:
behavioural profiles of people).

A stored segment is the group ``segment:<k>:<n>``: campaigns target it with
``target_segments: ["segment:<k>:<n>"]``. Building again replaces every stored segment.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi import Path as PathParam
from pydantic import ValidationError

from agora.analytics.segments import service as segments
from agora.analytics.segments.schemas import BuildIn, BuildOut, SegmentOut
from agora.api.auth import AdminScope
from agora.api.body import body_doc, read_json, validate_one
from agora.api.deps import SessionDep, SessionFactoryDep
from agora.api.errors import InvalidRequest, NotFound, problem
from agora.api.routing import OneHopRoute
from agora.db.engine import transaction

log = logging.getLogger(__name__)

router = APIRouter(route_class=OneHopRoute, tags=["analytics"])


def _segment_out(stored: dict[str, Any]) -> SegmentOut | None:
    """The stored segment as served, or None (logged) when its group row is not a valid
    segment: a row written by other means than a build must not take the route down."""
    try:
        return SegmentOut.model_validate({k: v for k, v in stored.items() if k != "kind"})
    except ValidationError as exc:
        log.warning(
            "group %r is not a valid segment (%d problem(s)); left out, rebuild the segments",
            stored["group_id"],
            exc.error_count(),
        )
        return None


def _valid(stored: list[dict[str, Any]]) -> list[SegmentOut]:
    return [out for out in map(_segment_out, stored) if out is not None]


async def build_body(request: Request) -> BuildIn:
    raw = await read_json(request) if await request.body() else {}
    return validate_one(BuildIn, raw)


@router.post(
    "/analytics/segments",
    response_model=BuildOut,
    dependencies=[AdminScope],
    openapi_extra=body_doc(BuildIn, required=False),
)
def post_segments(
    body: Annotated[BuildIn, Depends(build_body)], sessions: SessionFactoryDep
) -> BuildOut:
    """Cluster the users, describe the segments and replace the stored ones in one transaction."""
    now = datetime.now(UTC)
    with transaction(sessions) as session:
        try:
            result = segments.build_segments(session, body.k, body.seed, store=True, now=now)
        except ValueError as exc:
            raise InvalidRequest([problem(("body",), str(exc))]) from exc
        stored = _valid(segments.stored_segments(session))
    return BuildOut(
        k=result.k,
        silhouette=result.silhouette,
        silhouettes=result.silhouettes,
        users=len(result.users),
        seconds=result.seconds,
        segments=stored,
    )


@router.get("/analytics/segments", response_model=list[SegmentOut], dependencies=[AdminScope])
def get_segments(session: SessionDep) -> list[SegmentOut]:
    """The stored segments with their descriptions (empty before the first build); a group
    row that is not a valid segment is left out."""
    return _valid(segments.stored_segments(session))


@router.get(
    "/users/{user_id}/segment",
    response_model=SegmentOut,
    dependencies=[AdminScope],
    responses={404: {"description": "Unknown user, or the user is in no stored segment."}},
)
def get_user_segment(
    session: SessionDep, user_id: Annotated[str, PathParam(min_length=1, max_length=255)]
) -> SegmentOut:
    """The stored segment a user belongs to."""
    stored = segments.user_segments(session, user_id)
    valid = _valid(stored)
    if valid:
        return valid[0]
    if stored:
        names = ", ".join(repr(s["group_id"]) for s in stored)
        raise NotFound(
            f"user {user_id!r} is in group {names}, which is not a valid segment; "
            "rebuild the segments with POST /analytics/segments"
        )
    raise NotFound(f"user {user_id!r} is in no stored segment")
