"""HTTP routes of fake-engagement detection: anomalous users and items
(``admin`` scope: who is suspected of fraud is not for every reader)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from agora.analytics import anomalies
from agora.api.auth import AdminScope
from agora.api.deps import SessionDep

router = APIRouter(tags=["analytics"])

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


class UserAnomaliesOut(BaseModel):
    scored: int = Field(description="Users with engagements or clicks.")
    flagged: int
    threshold: float
    weights: dict[str, float]
    top: list[UserAnomalyOut]


class ItemAnomaliesOut(BaseModel):
    scored: int
    top: list[ItemAnomalyOut]


@router.get(
    "/analytics/anomalies/users", response_model=UserAnomaliesOut, dependencies=[AdminScope]
)
def get_user_anomalies(session: SessionDep, top: Top = 20) -> UserAnomaliesOut:
    """Users most likely to give fake engagement, highest score first, with the reasons."""
    report = anomalies.detect(session)
    threshold = report.params.flag_at
    return UserAnomaliesOut(
        scored=len(report.users),
        flagged=len(report.flagged()),
        threshold=threshold,
        weights=anomalies.WEIGHTS,
        top=[UserAnomalyOut(flagged=u.score >= threshold, **vars(u)) for u in report.users[:top]],
    )


@router.get(
    "/analytics/anomalies/items", response_model=ItemAnomaliesOut, dependencies=[AdminScope]
)
def get_item_anomalies(session: SessionDep, top: Top = 20) -> ItemAnomaliesOut:
    """Items whose engagement looks most manufactured (flagged engagers, bursts)."""
    report = anomalies.detect(session)
    return ItemAnomaliesOut(
        scored=len(report.items), top=[ItemAnomalyOut(**vars(i)) for i in report.items[:top]]
    )
