"""Response shapes of the trending-topic and alert routes."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from agora.api import dp


class BurstOut(BaseModel):
    key: str
    start: datetime
    end: datetime
    peak_count: int
    baseline: float
    p_value: float
    total: int


NowSource = Literal["query", "clock", "store"]


NOW_SOURCE_DOC = (
    "Where `now` came from: `query` (given), `clock` (the wall clock), or `store`: the store's "
    "newest post or event, used when that is more than a bucket old (a historic store, such as "
    "an imported dump), so the window holds the store's data."
)


class TrendingOut(dp.Marked):
    now: datetime = Field(description="End of the window analysed.")
    now_source: NowSource = Field(description=NOW_SOURCE_DOC)
    bucket: str
    trending: list[BurstOut] = Field(description="Keys bursting in the last bucket.")
    bursts: list[BurstOut] = Field(description="Every burst in the window, strongest first.")


class RuleOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    kind: str
    tag: str | None
    bucket: str
    baseline_buckets: int
    threshold: float
    min_count: int
    enabled: bool
    created: datetime
    updated: datetime


class AlertOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    rule_id: int
    kind: str
    key: str = Field(description="The tag the alert is about.")
    status: str
    opened: datetime
    last_seen: datetime
    closed: datetime | None
    value: float = Field(description="Count (spike) or mean sentiment (drop) when it fired.")
    baseline: float
    peak: float
    detail: dict[str, Any]


class EvaluationOut(BaseModel):
    now: datetime
    now_source: NowSource = Field(description=NOW_SOURCE_DOC)
    fired: list[AlertOut]
    ongoing: list[AlertOut]
    closed: list[AlertOut]
