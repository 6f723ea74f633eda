"""HTTP routes of moderation: flags, the review queue, decisions, scans and an item's status.

``POST /items/{id}/flags`` needs ``write`` (platforms relay their users' reports); reading an
item's moderation status needs ``read``; the queue, decisions and scans need ``admin``. Writes
run in one transaction; bodies are read after the scope check.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response, status
from fastapi import Path as PathParam

from agora.api.auth import AUTH_ERRORS, AdminScope, ReadScope, WriteScope
from agora.api.body import body_doc, read_json, validate_one
from agora.api.deps import SessionDep, SessionFactoryDep, SettingsDep
from agora.api.routing import OneHopRoute
from agora.api.types import Offset, RowId
from agora.db.engine import transaction
from agora.ingest.schemas import as_utc
from agora.moderation import service
from agora.moderation.classifier import load_latest
from agora.moderation.schemas import (
    CaseOut,
    DecisionIn,
    DecisionOut,
    FlagIn,
    FlagOut,
    ItemModerationOut,
    ScanOut,
)
from agora.serving.service import ModelUnavailable

router = APIRouter(route_class=OneHopRoute, tags=["moderation"])

ItemId = Annotated[str, PathParam(min_length=1, max_length=255, description="External item id.")]
CaseId = Annotated[RowId, PathParam(description="Review case id (from the queue).")]
ERRORS: dict[int | str, dict[str, Any]] = {
    **AUTH_ERRORS,
}
WRITE_ERRORS: dict[int | str, dict[str, Any]] = {
    **ERRORS,
    400: {"description": "Malformed JSON."},
    422: {"description": "Invalid body; `problems` gives each location and message."},
}


async def flag_body(request: Request) -> FlagIn:
    return validate_one(FlagIn, await read_json(request))


async def decision_body(request: Request, case_id: CaseId) -> DecisionIn:
    """The decision; ``case_id`` is taken here so a bad one is reported before the body."""
    return validate_one(DecisionIn, await read_json(request))


def _case_out(view: service.CaseView) -> CaseOut:
    return CaseOut(**view.__dict__)


@router.post(
    "/items/{item_id}/flags",
    summary="Flag an item as spam, low quality, offensive or other (one open flag per user)",
    description=(
        "Puts the item into the review queue (several flaggers raise its priority). A user's "
        "repeated flag on the same item returns their open flag (200) and changes nothing. "
        "Unknown flaggers are created, as for events; an unknown item is 404."
    ),
    dependencies=[WriteScope],
    openapi_extra=body_doc(FlagIn),
    responses={
        **WRITE_ERRORS,
        404: {"description": "The item is not in the store."},
        201: {"description": "Flag stored.", "model": FlagOut},
    },
)
def post_flag(
    item_id: ItemId,
    body: Annotated[FlagIn, Depends(flag_body)],
    sessions: SessionFactoryDep,
    settings: SettingsDep,
    response: Response,
) -> FlagOut:
    classifier = load_latest(settings.data_dir)
    with transaction(sessions) as session:
        result = service.add_flag(
            session,
            item_id,
            body.user_id,
            body.reason,
            datetime.now(UTC),
            note=body.note,
            classifier=classifier,
        )
        out = FlagOut(
            flag_id=result.flag.id,
            item_id=item_id,
            user_id=body.user_id,
            reason=result.flag.reason,
            status=result.flag.status,
            created=as_utc(result.flag.created),
            case_id=result.case.id,
            priority=result.case.priority,
            score=result.case.score,
        )
    response.status_code = status.HTTP_201_CREATED if result.created else status.HTTP_200_OK
    return out


@router.get(
    "/moderation/queue",
    summary="Review cases, highest priority first (open ones by default)",
    dependencies=[AdminScope],
    responses=ERRORS,
)
def get_queue(
    session: SessionDep,
    case_status: Annotated[Literal["open", "upheld", "rejected"], Query(alias="status")] = "open",
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[Offset, Query(description="Cases to skip.")] = 0,
) -> list[CaseOut]:
    return [_case_out(v) for v in service.review_queue(session, case_status, limit, offset)]


@router.post(
    "/moderation/queue/{case_id}/decision",
    summary="Uphold or reject a review case",
    description=(
        "Uphold removes the item from feeds, labels it for retraining and writes one "
        "`flag_upheld` event (id `moderation:<decision id>`) for its author. Repeating the "
        "same decision answers 200 with it; the opposite decision is 409."
    ),
    dependencies=[AdminScope],
    openapi_extra=body_doc(DecisionIn),
    responses={
        **WRITE_ERRORS,
        404: {"description": "No such case."},
        409: {"description": "The case was decided the other way."},
        201: {"description": "Decided.", "model": DecisionOut},
    },
)
def post_decision(
    case_id: CaseId,
    body: Annotated[DecisionIn, Depends(decision_body)],
    sessions: SessionFactoryDep,
    request: Request,
    response: Response,
) -> DecisionOut:
    moderator = body.moderator or f"key:{request.state.principal.key_id}"
    with transaction(sessions) as session:
        result = service.decide(
            session, case_id, body.outcome, datetime.now(UTC), decided_by=moderator, note=body.note
        )
    response.status_code = status.HTTP_201_CREATED if result.created else status.HTTP_200_OK
    return DecisionOut(
        decision_id=result.decision_id, case=_case_out(result.case), event_id=result.event_id
    )


@router.post(
    "/moderation/scan",
    summary="Score items not scored yet and queue those above the threshold",
    dependencies=[AdminScope],
    responses={
        **ERRORS,
        503: {"description": "No classifier trained yet (run `agora moderation train`)."},
    },
)
def post_scan(
    sessions: SessionFactoryDep,
    settings: SettingsDep,
    threshold: Annotated[float | None, Query(gt=0, lt=1)] = None,
    limit: Annotated[int | None, Query(ge=1, le=100_000)] = None,
) -> ScanOut:
    classifier = load_latest(settings.data_dir)
    if classifier is None:
        raise ModelUnavailable("no moderation classifier yet; run `agora moderation train`")
    with transaction(sessions) as session:
        summary = service.scan(session, classifier, datetime.now(UTC), threshold, limit)
    return ScanOut(**summary.__dict__)


@router.get(
    "/moderation/items/{item_id}",
    summary="An item's moderation status, classifier score and flags (counts per reason)",
    dependencies=[ReadScope],
    responses={**ERRORS, 404: {"description": "The item is not in the store."}},
)
def get_item_moderation(item_id: ItemId, session: SessionDep) -> ItemModerationOut:
    state = service.item_moderation(session, item_id)
    return ItemModerationOut(
        **{k: v for k, v in state.__dict__.items() if k != "cases"},
        cases=[_case_out(c) for c in state.cases],
    )
