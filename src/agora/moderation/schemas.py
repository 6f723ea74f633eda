"""Shapes of the moderation API: flags in, decisions in, queue entries and item status out."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from agora.ingest.schemas import ExternalId
from agora.moderation.models import FLAG_REASONS, OUTCOMES


class FlagIn(BaseModel):
    """A user's report that an item is spam, low quality, offensive or otherwise unwanted."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    user_id: ExternalId = Field(description="External id of the flagger.")
    reason: Literal[FLAG_REASONS]  # type: ignore[valid-type]
    note: str = Field("", max_length=2000, description="Optional words from the flagger.")


class FlagOut(BaseModel):
    flag_id: int
    item_id: str
    user_id: str
    reason: str
    status: str = Field(description="open until the case is decided, then upheld or rejected.")
    created: datetime
    case_id: int = Field(description="The review case the flag joined.")
    priority: float = Field(description="The case's queue priority after this flag.")
    score: float | None = Field(description="The classifier's probability (None: unscored).")


class DecisionIn(BaseModel):
    """An admin's decision on a review case."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    outcome: Literal[OUTCOMES]  # type: ignore[valid-type]
    moderator: str | None = Field(
        None, max_length=255, description="Who decided (default: the API key's fingerprint)."
    )
    note: str = Field("", max_length=2000)


class CaseOut(BaseModel):
    case_id: int
    item_id: str
    title: str
    author_id: str | None
    status: str = Field(description="open, upheld or rejected.")
    score: float | None = Field(description="Classifier probability of spam / low quality.")
    n_flags: int = Field(description="Distinct users with an open flag on the item.")
    reasons: dict[str, int] = Field(description="Flags on this case per reason.")
    priority: float
    opened: datetime
    outcome: str | None = None
    decided: datetime | None = None
    image_score: float | None = Field(
        None, description="Highest explicit score of the item's images (NudeNet), if any."
    )
    image_parts: dict[str, float] = Field(
        default_factory=dict, description="What the detector found in that image, with scores."
    )


class DecisionOut(BaseModel):
    decision_id: int
    case: CaseOut
    event_id: str | None = Field(
        description="The flag_upheld event written for the author (None: rejected or no author)."
    )


class ItemModerationOut(BaseModel):
    item_id: str
    status: str = Field(
        description="removed (upheld), in_review (open case), cleared (rejected), scored "
        "(below the threshold, no flags) or unscored."
    )
    score: float | None
    model_version: str | None
    flags: dict[str, int] = Field(description="Flags ever raised on the item, per reason.")
    open_flags: int
    cases: list[CaseOut]


class ScanOut(BaseModel):
    scored: int = Field(description="Items scored by this scan.")
    queued: int = Field(description="Scored items now in the review queue.")
    threshold: float
    model_version: str
