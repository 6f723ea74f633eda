"""Shapes shared by the routes that read results computed in the background: the pending answer,
the age fields of a stored result, and the answer of a scheduled refresh."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field


class PendingOut(BaseModel):
    """The answer while a result has never been computed: it is being computed now."""

    status: Literal["pending"] = "pending"
    job: str
    detail: str


class Freshness(BaseModel):
    """When a stored result was computed and how to get a newer one."""

    computed_at: datetime = Field(description="When the background job computed this result.")
    age_seconds: float = Field(description="Seconds since `computed_at`.")
    compute_seconds: float = Field(description="How long computing it took.")
    refresh_requested: datetime | None = Field(
        description="A refresh asked for and not done yet (null: none)."
    )
    refresh: str = Field(description="How to ask for a fresh result.")


class ScheduledOut(BaseModel):
    scheduled: list[str]
    detail: str
