"""The engagement API's shapes: points, badges, trust, leaderboards, tasks, digests."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, model_validator

from agora.ingest.schemas import Timestamp

#: Marks the task event type, whose values are the deployment's event types and the moderation
#: event (filled in per app by :func:`agora.api.openapi.fill_enum`).
TASK_EVENT_TYPE_MARK = "x-agora-task-event-type"
TASK_EVENT_TYPE = {TASK_EVENT_TYPE_MARK: True}


class LedgerEntryOut(BaseModel):
    rule: str
    points: int
    capped: bool = Field(description="The rule's daily cap cut these points short.")
    item_id: str | None
    created: datetime


class PointsOut(BaseModel):
    user_id: str
    total: int = Field(description="Always the sum of the user's ledger entries.")
    by_rule: dict[str, int]
    recent: list[LedgerEntryOut]


class BadgeOut(BaseModel):
    badge: str
    title: str
    level: str | None
    item_id: str | None = Field(description="The post, for badges earned per post.")
    item_title: str | None
    awarded: datetime


class ProgressOut(BaseModel):
    badge: str
    title: str
    level: str
    have: int | float | None = Field(description="The count (or best attribute) so far.")
    need: int | float | str | bool | None
    message: str = Field(description="e.g. \"12 more likes on 'X' to reach Good Post\".")


class BadgesOut(BaseModel):
    user_id: str
    earned: list[BadgeOut]
    progress: list[ProgressOut]


class RequirementOut(BaseModel):
    metric: str
    need: int
    have: int
    met: bool
    missing: str | None


class LevelOut(BaseModel):
    level: int
    name: str
    met: bool
    requirements: list[RequirementOut]


class TrustOut(BaseModel):
    user_id: str
    level: int
    name: str
    metrics: dict[str, int]
    levels: list[LevelOut]
    next_level: str | None = Field(description="What the next level still needs.")
    substituted: dict[str, str] = Field(
        default_factory=dict,
        description="Requirements the store has no data for (e.g. no view events in an "
        "imported dump) and what is counted in their place.",
    )


class LeaderOut(BaseModel):
    rank: int
    user_id: str
    points: int


class LeaderboardOut(BaseModel):
    period: str
    tag: str | None
    leaders: list[LeaderOut]


class TaskIn(BaseModel):
    """A time-boxed goal: ``target`` events of ``event_type`` between ``starts`` and ``ends``
    (optionally on items tagged ``tag``; with ``first_on_item`` only events that were the first
    of their type on their item, e.g. answers to unanswered questions). Posting the same task
    again changes nothing."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    task_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")
    title: str = Field(min_length=1, max_length=200)
    event_type: str = Field(min_length=1, max_length=32, json_schema_extra=TASK_EVENT_TYPE)
    target: int = Field(ge=1, le=1_000_000)
    starts: Timestamp
    ends: Timestamp
    tag: str | None = Field(None, min_length=1, max_length=255)
    first_on_item: bool = Field(False, description="Count only the first such event per item.")

    @model_validator(mode="after")
    def _window(self) -> TaskIn:
        if self.ends <= self.starts:
            raise ValueError("ends must lie after starts")
        return self


class TaskOut(BaseModel):
    task_id: str
    title: str
    event_type: str
    target: int
    starts: Timestamp
    ends: Timestamp
    tag: str | None
    first_on_item: bool


class TaskProgressOut(TaskOut):
    progress: int = Field(description="Matching events, up to the target.")
    count: int = Field(description="Matching events in the window.")
    done: bool
    message: str


class TaskLeaderOut(BaseModel):
    rank: int
    user_id: str
    count: int
    done: bool


class TaskLeaderboardOut(TaskOut):
    completed: int = Field(description="Users who reached the target.")
    leaders: list[TaskLeaderOut]


class ReplayOut(BaseModel):
    applied: int = Field(description="Events applied under the current rules.")


class DigestOut(BaseModel):
    user_id: str
    since: datetime
    now: datetime
    replies: list[dict]
    replies_total: int
    likes_received: int
    points: int
    badges: list[dict]
    picks: list[dict]
    empty: bool
