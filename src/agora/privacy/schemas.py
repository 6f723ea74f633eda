"""Request and response shapes of the privacy routes (export, erasure, the privacy budget)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field


class ErasureOut(BaseModel):
    erasure_id: int
    requested_by: str = Field(description="Fingerprint of the API key that asked ('cli': the CLI).")
    requested: datetime
    content: Literal["keep", "delete"] = Field(
        description="What became of the items they wrote: kept without author, or deleted."
    )
    removed: dict[str, int] = Field(description="Rows removed or rewritten, per table.")
    artifacts: dict[str, list[str]] = Field(
        description="Model versions on disk that knew the user and were rewritten without them."
    )
    retrain: Literal["wanted", "running", "done", "off"] = Field(
        description="The fit of every model without the user's events (item-side state)."
    )
    retrained: datetime | None = None
    retrained_versions: dict[str, str] = Field(
        default_factory=dict, description="Model -> the version fitted without them."
    )


class ErasuresOut(BaseModel):
    erasures: list[ErasureOut]
    next_before: int | None = Field(
        description="Pass as `before` for older erasures (null: no more)."
    )


class ExportOut(BaseModel):
    format: Literal["agora-user-export/1"]
    exported: datetime
    user_id: str
    profile: dict[str, Any] = Field(description="`created` and the platform's `attributes`.")
    items: list[dict[str, Any]] = Field(description="The items they wrote, every column.")
    tables: dict[str, list[dict[str, Any]]] = Field(
        description="Per table, every row that refers to them (foreign keys to users, items, "
        "groups... given as external ids)."
    )


class ReleaseOut(BaseModel):
    figure: str
    params: dict[str, Any] = Field(description="The question the figure answers.")
    epsilon: float
    mechanism: str
    released: datetime
    period: datetime = Field(description="Start of the period in which it is answered again.")


class FigureOut(BaseModel):
    figure: str
    description: str
    epsilon: float | None = Field(description="Epsilon one release of it spends.")
    max_partitions: int
    max_per_partition: int


class BudgetOut(BaseModel):
    enabled: bool = Field(description="Whether AGORA_DP_EPSILON is set.")
    day: str = Field(description="The UTC day (YYYY-MM-DD).")
    budget: float | None = Field(description="Epsilon the day may spend (null: off).")
    spent: float
    remaining: float | None
    period_hours: float = Field(description="How long a release is answered again.")
    figures: list[FigureOut] = Field(description="Every kind of figure, with its bounds.")
    releases: list[ReleaseOut] = Field(description="The day's releases, newest first.")
