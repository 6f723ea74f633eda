"""Response shapes of the engagement analytics routes."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from agora.api import dp


class ActiveOut(BaseModel):
    start: datetime = Field(description="Start of the day or Monday-aligned week (UTC).")
    users: int = Field(description="Distinct users with any event in the bucket.")
    events: int


class RateOut(BaseModel):
    key: str = Field(description="The item's or the author's external id.")
    items: int
    events: int = Field(description="Events by other users on the item(s).")
    users: int = Field(description="Distinct other users with an event.")
    rate: float = Field(description="Events per item-day since the item was created.")


class CohortOut(BaseModel):
    start: datetime = Field(description="The cohort's first week (Monday, UTC).")
    users: int
    retention: list[float | None] = Field(
        description="Share of the cohort active in week N after (null: past the data)."
    )


class RetentionOut(dp.Marked):
    weeks: int
    cohorts: list[CohortOut]
    overall: list[float | None] = Field(
        description="Week-N retention over the cohorts that reached week N, size-weighted."
    )


class ResponseTimesOut(dp.Marked):
    items: int
    answered: int
    share_answered: float
    median_seconds: float | None
    p90_seconds: float | None
    mean_seconds: float | None


class ConcentrationOut(BaseModel):
    population: int
    engaged: int = Field(description="Members with at least one event.")
    events: int
    gini: float = Field(description="0 = attention shared equally, towards 1 = concentrated.")
    top1_share: float = Field(description="Share of events going to the top 1%.")
    top10_share: float = Field(description="Share of events going to the top 10%.")
    lorenz: list[list[float]] = Field(description="[population share, attention share] points.")


class AttentionOut(dp.Marked):
    event_types: list[str] | None
    include_zero: bool
    items: ConcentrationOut
    creators: ConcentrationOut
