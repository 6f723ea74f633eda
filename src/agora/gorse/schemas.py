"""Gorse's JSON shapes, field for field (``UserId``, ``Labels``, ``RowAffected``...).

Incoming objects ignore fields they do not know, as Gorse's Go decoder does (pygorse sends a
feedback ``Value`` that older servers ignore); ids follow Agora's id rule (no ``/``, which no
Gorse route could address either). Times are text in any of the forms Gorse's clients send
(RFC 3339, a date, unix seconds) and are parsed by :func:`agora.gorse.service.parse_time`.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from agora.api.types import JsonNumber
from agora.ingest.schemas import ExternalId

#: Longest feedback type kept (Gorse's own column holds 256 characters).
TYPE_MAX_LENGTH = 255


class _GorseIn(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)


class UserIn(_GorseIn):
    """A Gorse user: its id, labels (any JSON), subscriptions and a comment."""

    UserId: ExternalId
    Labels: Any = None
    Subscribe: list[str] | None = None
    Comment: str = ""


class UserPatch(_GorseIn):
    """The fields of a user to change (null or absent: unchanged)."""

    Labels: Any = None
    Subscribe: list[str] | None = None
    Comment: str | None = None


class ItemIn(_GorseIn):
    """A Gorse item: hidden items are never recommended; categories name the item's streams."""

    ItemId: ExternalId
    IsHidden: bool = False
    Categories: list[str] | None = None
    Timestamp: str = ""
    Labels: Any = None
    Comment: str = ""


class ItemPatch(_GorseIn):
    """The fields of an item to change (null or absent: unchanged)."""

    IsHidden: bool | None = None
    Categories: list[str] | None = None
    Timestamp: str | None = None
    Labels: Any = None
    Comment: str | None = None


class FeedbackIn(_GorseIn):
    """One feedback: unique per (type, user, item)."""

    FeedbackType: str = Field(min_length=1, max_length=TYPE_MAX_LENGTH)
    UserId: ExternalId
    ItemId: ExternalId
    Value: JsonNumber | None = Field(None, allow_inf_nan=False)
    Timestamp: str = ""
    Comment: str = ""


class UserOut(BaseModel):
    UserId: str
    Labels: Any
    Subscribe: list[str] | None
    Comment: str


class ItemOut(BaseModel):
    ItemId: str
    IsHidden: bool
    Categories: list[str] | None
    Timestamp: str
    Labels: Any
    Comment: str


class FeedbackOut(BaseModel):
    FeedbackType: str
    UserId: str
    ItemId: str
    Value: float
    Timestamp: str
    Comment: str


class RowAffected(BaseModel):
    """What a write did, as Gorse counts it."""

    RowAffected: int


class Score(BaseModel):
    """An item (or user) id with its score."""

    Id: str
    Score: float


class Users(BaseModel):
    Cursor: str = Field(description="Pass it back for the next page; empty on the last one.")
    Users: list[UserOut]


class Items(BaseModel):
    Cursor: str = Field(description="Pass it back for the next page; empty on the last one.")
    Items: list[ItemOut]


class Feedbacks(BaseModel):
    Cursor: str = Field(description="Pass it back for the next page; empty on the last one.")
    Feedback: list[FeedbackOut]
