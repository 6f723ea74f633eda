"""Response shapes of the fake-engagement anomaly routes."""

from __future__ import annotations

from pydantic import BaseModel, Field

from agora.analytics.results.schemas import Freshness


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
