"""HTTP routes of fake-engagement detection: anomalous users and items (``admin`` scope: who is
suspected of fraud is not for every reader).

They read the report the background job stored (``analytics_results``, key ``anomalies``) with
its age; before the first one exists they answer 202 and start the job."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from agora.analytics import results
from agora.analytics.results_views import Freshness, freshness, pending, pending_doc
from agora.api.auth import AdminScope
from agora.api.deps import SessionDep
from agora.api.routing import OneHopRoute

router = APIRouter(route_class=OneHopRoute, tags=["analytics"])

Top = Annotated[int, Query(ge=1, le=1000, description="How many rows.")]


class UserAnomalyOut(BaseModel):
    user_id: str
    score: float = Field(description="Noisy-OR of the weighted signals, in [0, 1].")
    flagged: bool = Field(description="Score at or above the flag threshold.")
    signals: dict[str, float] = Field(description="Each signal in [0, 1].")
    reasons: list[str] = Field(description="The signals that fired.")
    engagements: int
    clicks: int


class ItemAnomalyOut(BaseModel):
    item_id: str
    score: float
    flagged_share: float = Field(description="Share of engagements from flagged users.")
    burstiness: float = Field(description="Share of engagements inside item bursts.")
    engagements: int
    reasons: list[str]


class UserAnomaliesOut(Freshness):
    scored: int = Field(description="Users with engagements or clicks.")
    flagged: int
    threshold: float
    weights: dict[str, float]
    top: list[UserAnomalyOut]


class ItemAnomaliesOut(Freshness):
    scored: int
    top: list[ItemAnomalyOut]


@router.get(
    "/analytics/anomalies/users",
    response_model=UserAnomaliesOut,
    dependencies=[AdminScope],
    responses=pending_doc("anomalies"),
)
def get_user_anomalies(
    request: Request, session: SessionDep, top: Top = 20
) -> UserAnomaliesOut | JSONResponse:
    """Users most likely to give fake engagement, highest score first, with the reasons."""
    stored = results.read(session, "anomalies")
    if stored is None:
        return pending(request, "anomalies")
    report = stored.payload
    return UserAnomaliesOut(
        scored=report["scored_users"],
        flagged=report["flagged"],
        threshold=report["threshold"],
        weights=report["weights"],
        top=report["users"][:top],
        **freshness(stored).model_dump(),
    )


@router.get(
    "/analytics/anomalies/items",
    response_model=ItemAnomaliesOut,
    dependencies=[AdminScope],
    responses=pending_doc("anomalies"),
)
def get_item_anomalies(
    request: Request, session: SessionDep, top: Top = 20
) -> ItemAnomaliesOut | JSONResponse:
    """Items whose engagement looks most manufactured (flagged engagers, bursts)."""
    stored = results.read(session, "anomalies")
    if stored is None:
        return pending(request, "anomalies")
    report = stored.payload
    return ItemAnomaliesOut(
        scored=report["scored_items"], top=report["items"][:top], **freshness(stored).model_dump()
    )
