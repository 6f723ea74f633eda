"""HTTP routes of engagement: points, badges, trust, leaderboards, tasks, digests, replay.

Reads never write: they show the derived tables as the last catch-up left them (``POST /events``
catches up after its commit, within ``engagement_after_write_seconds``; the background job of
``agora serve`` every few seconds) and say in ``X-Engagement-Pending-Events`` how many stored
events they do not count yet; they need the
``read`` scope. Creating tasks and replaying need ``admin``.
The rules are ``engagement_config(settings)``.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response, status
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, PlainTextResponse
from sqlalchemy.orm import Session

from agora.api import dp
from agora.api.auth import AUTH_ERRORS, AdminScope, ReadScope
from agora.api.deps import SessionFactoryDep, SettingsDep
from agora.api.errors import InvalidRequest, problem
from agora.api.routing import OneHopRoute
from agora.api.types import QueryTime
from agora.db.engine import transaction
from agora.engagement import badge_awards, ledger, tasks, trust_levels
from agora.engagement import digest as digests
from agora.engagement.config import EngagementConfig, engagement_config
from agora.engagement.schemas import (
    BadgesOut,
    DigestOut,
    LeaderboardOut,
    PointsOut,
    ReplayOut,
    TaskIn,
    TaskLeaderboardOut,
    TaskOut,
    TaskProgressOut,
    TrustOut,
)
from agora.serving.views import ModelsDep

router = APIRouter(route_class=OneHopRoute, tags=["engagement"])

UserId = Annotated[str, PathParam(min_length=1, max_length=255, description="External user id.")]
Tag = Annotated[str | None, Query(min_length=1, max_length=255)]
ERRORS = {
    **AUTH_ERRORS,
    404: {"description": "The user (or task) is not in the store."},
}


def get_config(settings: SettingsDep) -> EngagementConfig:
    """The platform's engagement rules."""
    return engagement_config(settings)


ConfigDep = Annotated[EngagementConfig, Depends(get_config)]

#: The header of every engagement read: stored events not counted yet.
PENDING_HEADER = "X-Engagement-Pending-Events"


def _pending(response: Response, session: Session, config: EngagementConfig) -> None:
    response.headers[PENDING_HEADER] = str(ledger.pending_events(session, config))


@router.get(
    "/users/{user_id}/points",
    summary="The user's points total, per rule, and latest ledger entries",
    dependencies=[ReadScope],
    responses=ERRORS,
)
def get_points(
    user_id: UserId,
    sessions: SessionFactoryDep,
    config: ConfigDep,
    response: Response,
    n: Annotated[int, Query(ge=1, le=500)] = 20,
) -> PointsOut:
    with transaction(sessions) as session:
        report = ledger.points(session, config, user_id, datetime.now(UTC), n)
        _pending(response, session, config)
    return PointsOut(**asdict(report))


@router.get(
    "/users/{user_id}/badges",
    summary="Badges the user earned and how far they are from the others",
    dependencies=[ReadScope],
    responses=ERRORS,
)
def get_badges(
    user_id: UserId, sessions: SessionFactoryDep, config: ConfigDep, response: Response
) -> BadgesOut:
    with transaction(sessions) as session:
        report = badge_awards.badges(session, config, user_id, datetime.now(UTC))
        _pending(response, session, config)
    return BadgesOut(**asdict(report))


@router.get(
    "/users/{user_id}/trust",
    summary="The user's trust level, each level's requirements and what is missing",
    dependencies=[ReadScope],
    responses=ERRORS,
)
def get_trust(
    user_id: UserId, sessions: SessionFactoryDep, config: ConfigDep, response: Response
) -> TrustOut:
    with transaction(sessions) as session:
        report = trust_levels.trust(session, config, user_id, datetime.now(UTC))
        _pending(response, session, config)
    return TrustOut(**asdict(report))


@router.get(
    "/trust/levels",
    summary="How many users hold each trust level (as of their latest activity)",
    description="With differential privacy on (`AGORA_DP_EPSILON`), non-admin keys get noisy "
    "counts (each user is in one level), marked by the `X-Privacy` header.",
    dependencies=[ReadScope],
    responses={**ERRORS, **dp.RESPONSES, 200: {"headers": dp.HEADER_DOC}},
)
def get_trust_levels(
    request: Request, sessions: SessionFactoryDep, config: ConfigDep, response: Response
) -> dict[int, int]:
    with transaction(sessions) as session:
        _pending(response, session, config)
        exact = trust_levels.trust_distribution(session, config, datetime.now(UTC))
    noisy = dp.answer(
        request,
        response,
        "trust_levels",
        {"levels": sorted(exact)},
        lambda grant: _noisy_levels(sessions, config, grant, sorted(exact)),
        lambda released: {int(k): v for k, v in released.payload["counts"].items()},
    )
    if noisy is not None:
        return noisy
    return exact


def _noisy_levels(sessions: Any, config: EngagementConfig, grant: dp.Grant, levels: list[int]):
    """Users per trust level, each user once (level 0 for users without a trust row)."""
    import numpy as np
    from sqlalchemy import select

    from agora.db.tables import User
    from agora.engagement.models import TrustState

    with sessions() as session:
        rows = session.execute(
            select(User.id, TrustState.level).outerjoin(TrustState, TrustState.user_id == User.id)
        ).all()
    users = np.asarray([r[0] for r in rows], dtype=np.int64)
    index = {level: i for i, level in enumerate(levels)}
    cells = np.asarray([index.get(int(r[1] or 0), 0) for r in rows], dtype=np.int64)
    noisy = dp.clamp_counts(grant.histogram(users, cells, len(levels), grant.epsilon))
    return {"counts": {str(level): int(noisy[i]) for level, i in index.items()}}


@router.get(
    "/leaderboards",
    summary="Users ranked by points: all time or the last 7 days, optionally on one tag",
    dependencies=[ReadScope],
    responses=ERRORS,
)
def get_leaderboard(
    sessions: SessionFactoryDep,
    config: ConfigDep,
    response: Response,
    period: Literal["all", "week"] = "all",
    tag: Tag = None,
    n: Annotated[int, Query(ge=1, le=500)] = 20,
) -> LeaderboardOut:
    with transaction(sessions) as session:
        leaders = ledger.leaderboard(session, config, datetime.now(UTC), period, tag, n)
        _pending(response, session, config)
    return LeaderboardOut(period=period, tag=tag, leaders=leaders)


@router.get("/tasks", summary="Tasks and contests", dependencies=[ReadScope], responses=ERRORS)
def get_tasks(
    sessions: SessionFactoryDep,
    active: Annotated[bool, Query(description="Only tasks running now.")] = False,
) -> list[TaskOut]:
    with sessions() as session:
        specs = tasks.list_tasks(session, datetime.now(UTC), active)
    return [TaskOut(**t.__dict__) for t in specs]


@router.post(
    "/tasks",
    summary="Create a task (a time-boxed goal); the same task again changes nothing",
    dependencies=[AdminScope],
    responses={
        **ERRORS,
        201: {"description": "Created.", "model": TaskOut},
        409: {"description": "The task id exists with another definition."},
    },
)
def post_task(
    body: TaskIn,
    response: Response,
    sessions: SessionFactoryDep,
    settings: SettingsDep,
    config: ConfigDep,
) -> TaskOut:
    known = (*settings.event_types, config.flag_event)
    if body.event_type not in known:
        message = f"unknown event type {body.event_type!r}; known: {sorted(known)}"
        raise InvalidRequest([problem(("body", "event_type"), message)])
    with transaction(sessions) as session:
        spec, created = tasks.create_task(
            session, tasks.TaskSpec(**body.model_dump()), datetime.now(UTC)
        )
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
    return TaskOut(**spec.__dict__)


@router.get(
    "/tasks/{task_id}/leaderboard",
    summary="A task's users ranked by their progress in its window",
    dependencies=[ReadScope],
    responses=ERRORS,
)
def get_task_leaderboard(
    task_id: Annotated[str, PathParam(min_length=1, max_length=64)],
    sessions: SessionFactoryDep,
    n: Annotated[int, Query(ge=1, le=500)] = 20,
) -> TaskLeaderboardOut:
    with sessions() as session:
        board = tasks.task_leaderboard(session, task_id, datetime.now(UTC), n)
    return TaskLeaderboardOut(**board)


@router.get(
    "/users/{user_id}/tasks",
    summary="The user's progress on the running tasks (all tasks with active=false)",
    dependencies=[ReadScope],
    responses=ERRORS,
)
def get_user_tasks(
    user_id: UserId, sessions: SessionFactoryDep, active: bool = True
) -> list[TaskProgressOut]:
    with sessions() as session:
        rows = tasks.user_tasks(session, user_id, datetime.now(UTC), active)
    return [TaskProgressOut(**row) for row in rows]


@router.get(
    "/users/{user_id}/digest",
    summary="What the user missed since their last activity (or `since`): text, HTML or JSON",
    dependencies=[ReadScope],
    responses={
        **ERRORS,
        200: {"content": {"text/plain": {}, "text/html": {}}, "description": "The digest."},
    },
    response_model=DigestOut,
)
def get_digest(
    user_id: UserId,
    sessions: SessionFactoryDep,
    models: ModelsDep,
    settings: SettingsDep,
    config: ConfigDep,
    format: Literal["json", "text", "html"] = "json",  # noqa: A002 - the query parameter's name
    since: Annotated[QueryTime | None, Query(description="Replies from this time.")] = None,
    n: Annotated[int, Query(ge=0, le=50, description="Feed items to suggest.")] = 5,
) -> DigestOut | Response:
    now = datetime.now(UTC)
    # reads only: the picks record no impression, and the user's state they load writes (an
    # experiment's exposure) on a session of its own, which a write lock held here would block
    with sessions() as session:
        report = digests.build_digest(session, config, user_id, now, since)
        if n:
            report.picks = digests.feed_picks(
                session, models, user_id, n, settings.feed, settings.event_weights, now,
                report.since,
            )  # fmt: skip
    if format == "text":
        return PlainTextResponse(digests.render(report, "text"))
    if format == "html":
        return HTMLResponse(digests.render(report, "html"))
    return DigestOut(**asdict(report), empty=report.empty)


@router.post(
    "/engagement/replay",
    summary="Rebuild the ledger, badges and trust levels from every event under the rules",
    dependencies=[AdminScope],
    responses=ERRORS,
)
def post_replay(sessions: SessionFactoryDep, config: ConfigDep) -> ReplayOut:
    with transaction(sessions) as session:
        applied = ledger.replay(session, config, datetime.now(UTC))
    return ReplayOut(applied=applied)
