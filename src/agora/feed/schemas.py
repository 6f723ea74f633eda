"""Request and response shapes of the feed's routes (pages, controls, interests, feedback)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from agora.feed.models import FEEDBACK_KINDS
from agora.ingest.schemas import ExternalId

Tag = Annotated[str, Field(min_length=1, max_length=255)]


TARGETS = ("item_id", "author_id", "tag")


def _feedback_target(kind: str) -> str:
    """The one field a feedback kind names."""
    if kind in ("not_interested", "hide"):
        return "item_id"
    return "author_id" if kind.endswith("_author") else "tag"


def _one_target_per_kind(schema: dict) -> None:
    """The schema says what the validator checks: each kind with its one target, no other."""
    branches = []
    for target in TARGETS:
        kinds = [k for k in FEEDBACK_KINDS if _feedback_target(k) == target]
        others = {f: {"type": "null"} for f in TARGETS if f != target}
        branches.append(
            {
                "properties": {
                    "kind": {"enum": kinds},
                    target: {"not": {"type": "null"}},
                    **others,
                },
                "required": ["kind", target],
            }
        )
    schema["oneOf"] = branches


class FeedItemOut(BaseModel):
    item_id: str
    score: float = Field(description="Ranking score after boosts and suppression.")
    source: str = Field(description="Candidate source that put the item here.")
    reason: str = Field(description="Why the item is in the feed, in one sentence.")
    title: str | None = None
    author_id: str | None = None
    tags: list[str] = Field(default_factory=list)
    created: datetime | None = None
    new_creator: bool = Field(False, description="The author's first post is recent.")
    because: list[dict] | None = Field(
        None, description="With explain=true: past items that carried the model's score."
    )
    ad: bool = Field(False, description="A paid placement (source 'ad').")
    campaign_id: str | None = Field(None, description="For an ad: its campaign.")
    impression_id: int | None = Field(
        None, description="For an ad: send as `impression_id` to POST /ads/clicks on a click."
    )


class FeedPageOut(BaseModel):
    user_id: str
    page: int
    items: list[FeedItemOut]
    next_cursor: str = Field(description="Pass as `cursor` for the next page of this session.")
    sources: dict[str, int] = Field(description="Items on this page per candidate source.")
    model: str | None = Field(
        None, description="The ranking model (absent: no personal model yet)."
    )


class ControlsOut(BaseModel):
    diversity: float
    social_weight: float
    freshness: float
    exploration: float
    followed_tags: list[str]
    muted_tags: list[str]
    muted_authors: list[str] = Field(
        description="Authors whose posts the feed leaves out (mute_author feedback adds here)."
    )


class ControlsIn(BaseModel):
    """Only the fields given change; null resets a number to the platform default."""

    model_config = ConfigDict(extra="forbid", strict=True)

    diversity: float | None = Field(None, ge=0, le=1)
    social_weight: float | None = Field(None, ge=0, le=5)
    freshness: float | None = Field(None, ge=0, le=5)
    exploration: float | None = Field(None, ge=0, le=0.5)
    followed_tags: list[Tag] | None = Field(None, max_length=500)
    muted_tags: list[Tag] | None = Field(None, max_length=500)
    muted_authors: list[Annotated[str, Field(min_length=1, max_length=255)]] | None = Field(
        None, max_length=500, description="External user ids; each must be in the store."
    )


class InterestsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tags: list[Tag] = Field(min_length=1, max_length=100, description="Topics to follow.")


class FeedbackIn(BaseModel):
    """``not_interested`` and ``hide`` name an item; ``(un)mute_author`` an author;
    ``(un)mute_tag`` a tag. Mutes and unmutes change the user's feed settings (``muted_tags``,
    ``muted_authors``)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_one_target_per_kind)

    kind: Literal[FEEDBACK_KINDS]  # type: ignore[valid-type]
    item_id: ExternalId | None = None
    author_id: ExternalId | None = None
    tag: Tag | None = None

    @model_validator(mode="after")
    def _target_matches_kind(self) -> FeedbackIn:
        needed = _feedback_target(self.kind)
        given = [f for f in TARGETS if getattr(self, f) is not None]
        if given != [needed]:
            raise ValueError(f"kind {self.kind!r} takes exactly one target: {needed}")
        return self
