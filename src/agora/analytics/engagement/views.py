"""HTTP routes of engagement analytics (``read`` scope): active users, interaction rates,
retention cohorts, time to first response and the concentration of attention."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response
from pydantic import Field

from agora.analytics import dp_figures
from agora.analytics.engagement import service as eg
from agora.analytics.engagement.schemas import (
    ActiveOut,
    AttentionOut,
    CohortOut,
    ConcentrationOut,
    RateOut,
    ResponseTimesOut,
    RetentionOut,
)
from agora.analytics.http import DP_ANSWER
from agora.api import dp
from agora.api.auth import ReadScope
from agora.api.deps import SessionDep, SettingsDep
from agora.api.errors import InvalidRequest, problem
from agora.api.routing import OneHopRoute
from agora.api.types import EVENT_TYPE, QueryTime
from agora.config import Settings

router = APIRouter(
    route_class=OneHopRoute,
    tags=["analytics"],
    dependencies=[ReadScope],
    responses=DP_ANSWER,
)


def _concentration(c: eg.Concentration) -> ConcentrationOut:
    return ConcentrationOut(
        population=c.population,
        engaged=c.engaged,
        events=c.events,
        gini=c.gini,
        top1_share=c.top1_share,
        top10_share=c.top10_share,
        lorenz=c.lorenz,
    )


@router.get("/analytics/engagement/active", response_model=list[ActiveOut])
def active(
    request: Request,
    response: Response,
    session: SessionDep,
    bucket: Annotated[Literal["day", "week"], Query(description="DAU or WAU.")] = "day",
    since: Annotated[QueryTime | None, Query(description="Only events from this time.")] = None,
    until: Annotated[QueryTime | None, Query(description="Only events before this time.")] = None,
) -> list[ActiveOut]:
    """Daily or weekly active users (noisy under differential privacy: header `X-Privacy`)."""
    noisy = dp.answer(
        request,
        response,
        "active_users",
        {"bucket": bucket, "since": since, "until": until},
        lambda grant: dp_figures.active_payload(session, grant, bucket, since, until),
        lambda released: [ActiveOut(**p) for p in released.payload["points"]],
    )
    if noisy is not None:
        return noisy
    points = eg.active_users(session, bucket, since, until)
    return [ActiveOut(start=p.start, users=p.users, events=p.events) for p in points]


@router.get("/analytics/engagement/rates", response_model=list[RateOut])
def rates(
    request: Request,
    response: Response,
    session: SessionDep,
    by: Annotated[Literal["item", "author"], Query(description="Per post or per author.")] = "item",
    n: Annotated[int, Query(ge=1, le=1000, description="Rows returned.")] = 20,
) -> list[RateOut]:
    """Posts or authors with the highest interaction rate (ranked by noisy counts under
    differential privacy: header `X-Privacy`)."""
    noisy = dp.answer(
        request,
        response,
        "interaction_rates",
        {"by": by},
        lambda grant: dp_figures.rates_payload(session, grant, by),
        lambda released: [RateOut(**r) for r in released.payload["rows"][:n]],
    )
    if noisy is not None:
        return noisy
    return [RateOut(**vars(r)) for r in eg.interaction_rates(session, by, n)]


@router.get("/analytics/engagement/retention", response_model=RetentionOut)
def retention(
    request: Request,
    response: Response,
    session: SessionDep,
    weeks: Annotated[int, Query(ge=0, le=104, description="Weeks after the first.")] = 8,
) -> RetentionOut:
    """Weekly cohorts by first event and their week-N retention."""
    noisy = dp.answer(
        request,
        response,
        "retention",
        {"weeks": weeks},
        lambda grant: dp_figures.retention_payload(session, grant, weeks),
        lambda released: RetentionOut(weeks=weeks, **released.payload, privacy=released.privacy),
    )
    if noisy is not None:
        return noisy
    result = eg.retention_cohorts(session, weeks)
    return RetentionOut(
        weeks=weeks,
        cohorts=[CohortOut(**vars(c)) for c in result.cohorts],
        overall=result.overall,
    )


def _known_event_types(values: list[str], settings: Settings, name: str) -> None:
    """422 for event types this deployment does not know (the enum the schema shows)."""
    unknown = [v for v in values if v not in settings.event_types]
    if unknown:
        raise InvalidRequest(
            [
                problem(("query", name), f"unknown event type {v!r}; known: {settings.event_types}")
                for v in unknown
            ]
        )


@router.get("/analytics/engagement/response-times", response_model=ResponseTimesOut)
def response_times(
    request: Request,
    response: Response,
    session: SessionDep,
    settings: SettingsDep,
    of: Annotated[
        str | None,
        Query(
            description="Only posts with an event of this type (ask = questions).",
            json_schema_extra=EVENT_TYPE,
        ),
    ] = None,
) -> ResponseTimesOut:
    """Time from a post to the first answer or comment by someone else."""
    _known_event_types([of] if of is not None else [], settings, "of")
    noisy = dp.answer(
        request,
        response,
        "response_times",
        {"of": of},
        lambda grant: dp_figures.response_times_payload(session, grant, of),
        lambda released: ResponseTimesOut(**released.payload, privacy=released.privacy),
    )
    if noisy is not None:
        return noisy
    r = eg.time_to_first_response(session, of=of)
    return ResponseTimesOut(
        items=r.items,
        answered=r.answered,
        share_answered=r.share_answered,
        median_seconds=r.median_seconds,
        p90_seconds=r.p90_seconds,
        mean_seconds=r.mean_seconds,
    )


@router.get("/analytics/engagement/attention", response_model=AttentionOut)
def attention(
    request: Request,
    response: Response,
    session: SessionDep,
    settings: SettingsDep,
    event_type: Annotated[
        list[Annotated[str, Field(json_schema_extra=EVENT_TYPE)]] | None,
        Query(max_length=64, description="Event types counted (repeat; default all; at most 64)."),
    ] = None,
    include_zero: Annotated[
        bool, Query(description="Count items and creators nobody engaged with.")
    ] = True,
) -> AttentionOut:
    """Gini coefficient and Lorenz curve of engagement across items and creators."""
    _known_event_types(event_type or [], settings, "event_type")
    types = sorted(set(event_type)) if event_type is not None else None
    noisy = dp.answer(
        request,
        response,
        "attention",
        {"event_type": types, "include_zero": include_zero},
        lambda grant: dp_figures.attention_payload(session, grant, types, include_zero),
        lambda released: AttentionOut(
            event_types=event_type,
            include_zero=include_zero,
            items=ConcentrationOut(**released.payload["items"]),
            creators=ConcentrationOut(**released.payload["creators"]),
            privacy=released.privacy,
        ),
    )
    if noisy is not None:
        return noisy
    a = eg.attention_gini(session, event_type, include_zero)
    return AttentionOut(
        event_types=a.event_types,
        include_zero=a.include_zero,
        items=_concentration(a.items),
        creators=_concentration(a.creators),
    )
