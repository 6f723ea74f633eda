"""Request and response shapes of the segment routes."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from agora.api.types import Seed, json_int


class BuildIn(BaseModel):
    """How to build segments: ``k`` clusters, or null to pick k by silhouette."""

    model_config = ConfigDict(extra="forbid")

    k: json_int(1, 100) | None = Field(  # type: ignore[valid-type]
        None, description="Number of segments (null: by silhouette)."
    )
    seed: Seed = Field(0, description="Random seed of the clustering.")


class TagOut(BaseModel):
    tag: str
    lift: float = Field(
        description="The tag's share of the members' tag engagements over the population's."
    )
    coverage: float = Field(description="Share of members who engaged with the tag.")


class EventTypeOut(BaseModel):
    type: str
    share: float = Field(description="Mean share of the members' events of this type.")


class SegmentOut(BaseModel):
    group_id: str = Field(description="Group external id, usable in a campaign's target_segments.")
    label: str
    size: int
    top_tags: list[TagOut]
    median_events: float
    median_active_days: float
    top_event_types: list[EventTypeOut]
    examples: list[str] = Field(description="The most central members.")
    built: datetime | None = None
    silhouette: float | None = None


class BuildOut(BaseModel):
    k: int
    silhouette: float | None
    silhouettes: dict[int, float] = Field(description="Silhouette of each k tried.")
    users: int = Field(description="Users segmented (those with events).")
    seconds: dict[str, float]
    segments: list[SegmentOut]
