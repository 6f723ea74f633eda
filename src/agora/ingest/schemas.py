"""Shapes of incoming data: what the API accepts and what every importer yields."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from agora.api.types import EVENT_TYPE
from agora.config import EDGE_TYPES

ExternalId = str


def _id_text(value: Any) -> Any:
    """External ids are strings; integers are accepted and turned into their decimal text."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return str(value)
    return value


def as_utc(value: datetime | None) -> datetime | None:
    """A timezone-aware UTC datetime; naive datetimes are taken to be UTC already."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError as exc:  # e.g. 0001-01-01T00:00+01:00 lies before year 1 in UTC
        raise ValueError(f"{value.isoformat()} is out of range once converted to UTC") from exc


def _text_fault(text: str) -> str | None:
    if "\x00" in text:
        return "NUL (\\u0000) characters are not allowed"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "lone surrogate escapes (\\ud800-\\udfff) are not valid text"
    return None


def unstorable_text(data: Any, root: tuple[str | int, ...] = ()) -> list[tuple[tuple, str]]:
    """(location, message) of every string or key no database can store or JSON answer can
    carry: NUL characters (PostgreSQL text refuses them) and lone UTF-16 surrogates."""
    found = []
    stack: list[tuple[tuple[str | int, ...], Any]] = [(root, data)]
    while stack:
        loc, value = stack.pop()
        if isinstance(value, str):
            if fault := _text_fault(value):
                found.append((loc, f"text: {fault}"))
        elif isinstance(value, dict):
            for key, item in value.items():
                if fault := _text_fault(key):
                    found.append((loc, f"key: {fault}"))
                    continue  # the key cannot be shown in a location
                stack.append(((*loc, key), item))
        elif isinstance(value, list):
            stack.extend(((*loc, i), item) for i, item in enumerate(value))
    return sorted(found, key=lambda found_at: [str(part) for part in found_at[0]])


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class UserIn(_Strict):
    """A community member, keyed by the platform's own id."""

    user_id: ExternalId = Field(min_length=1, max_length=255)
    created: datetime | None = None
    attributes: dict[str, Any] = Field(default_factory=dict)

    _ids = field_validator("user_id", mode="before")(_id_text)
    _utc = field_validator("created", mode="after")(as_utc)


class ItemIn(_Strict):
    """A piece of content: a post, question, answer, track, movie."""

    item_id: ExternalId = Field(min_length=1, max_length=255)
    author_id: ExternalId | None = Field(None, min_length=1, max_length=255)
    title: str = ""
    body: str = ""
    tags: list[str] = Field(default_factory=list)
    language: str | None = Field(None, max_length=16)
    created: datetime | None = None
    media: dict[str, Any] = Field(default_factory=dict)
    attributes: dict[str, Any] = Field(default_factory=dict)

    _ids = field_validator("item_id", "author_id", mode="before")(_id_text)
    _utc = field_validator("created", mode="after")(as_utc)


class EventIn(_Strict):
    """One behaviour event; re-sending the same event_id stores it once."""

    event_id: ExternalId = Field(min_length=1, max_length=255)
    user_id: ExternalId = Field(min_length=1, max_length=255)
    item_id: ExternalId = Field(min_length=1, max_length=255)
    type: str = Field(min_length=1, max_length=32, json_schema_extra=EVENT_TYPE)
    value: float | None = Field(None, allow_inf_nan=False)
    timestamp: datetime | None = None
    context: dict[str, Any] = Field(default_factory=dict)

    _ids = field_validator("event_id", "user_id", "item_id", mode="before")(_id_text)
    _utc = field_validator("timestamp", mode="after")(as_utc)


class EdgeIn(_Strict):
    """A directed social relation between two users (friend edges are stored both ways)."""

    source_id: ExternalId = Field(min_length=1, max_length=255)
    target_id: ExternalId = Field(min_length=1, max_length=255)
    type: str = Field(min_length=1, max_length=32, json_schema_extra={"enum": list(EDGE_TYPES)})
    weight: float = Field(1.0, allow_inf_nan=False)
    created: datetime | None = None

    _ids = field_validator("source_id", "target_id", mode="before")(_id_text)
    _utc = field_validator("created", mode="after")(as_utc)


class GroupIn(_Strict):
    """A group, circle or sub-community users can be members of."""

    group_id: ExternalId = Field(min_length=1, max_length=255)
    name: str = ""
    created: datetime | None = None
    attributes: dict[str, Any] = Field(default_factory=dict)

    _ids = field_validator("group_id", mode="before")(_id_text)
    _utc = field_validator("created", mode="after")(as_utc)


class MembershipIn(_Strict):
    """A user's membership of a group."""

    group_id: ExternalId = Field(min_length=1, max_length=255)
    user_id: ExternalId = Field(min_length=1, max_length=255)
    role: str = Field("member", max_length=32)
    created: datetime | None = None

    _ids = field_validator("group_id", "user_id", mode="before")(_id_text)
    _utc = field_validator("created", mode="after")(as_utc)


class Dataset(BaseModel):
    """Everything one import brings, in the order it must be written (users before items...)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    users: list[UserIn] = Field(default_factory=list)
    groups: list[GroupIn] = Field(default_factory=list)
    items: list[ItemIn] = Field(default_factory=list)
    events: list[EventIn] = Field(default_factory=list)
    edges: list[EdgeIn] = Field(default_factory=list)
    memberships: list[MembershipIn] = Field(default_factory=list)

    def counts(self) -> dict[str, int]:
        """Number of records of each kind."""
        return {
            "users": len(self.users),
            "groups": len(self.groups),
            "items": len(self.items),
            "events": len(self.events),
            "edges": len(self.edges),
            "memberships": len(self.memberships),
        }
