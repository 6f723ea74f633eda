"""Shapes of incoming data: what the API accepts and what every importer yields."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
)

from agora.api.types import (
    EVENT_TYPE,
    ID_MAX_LENGTH,
    JsonNumber,
    id_problem,
)
from agora.config import EDGE_TYPES
from agora.db.tables import TIME_CEILING, TIME_FLOOR, as_utc

#: Fields of incoming records that hold a time.
TIME_FIELDS = ("timestamp", "created")


def _checked_id(value: Any) -> Any:
    """Integers (64-bit; JSON's ``3.0`` is the integer 3) become their decimal text; text must
    pass :func:`id_problem`."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        if not -(2**63) <= value < 2**63:
            raise ValueError("an integer id must fit in 64 bits (or send it as text)")
        return str(value)
    if isinstance(value, str) and (fault := id_problem(value)):
        raise ValueError(fault)
    return value  # not text: the str validation reports it


#: :func:`id_problem` as a JSON Schema pattern (ECMAScript), so the API documents the rule.
ID_PATTERN = r"^(?!\.\.?$)(?!\s)(?!.*\s$)[^/\u0000-\u001f\u007f-\u009f\u2028\u2029]{1,255}$"

#: An external id (user, item, event, group, campaign...): see :func:`id_problem`.
ExternalId = Annotated[
    str,
    BeforeValidator(_checked_id),
    Field(min_length=1, max_length=ID_MAX_LENGTH),
    WithJsonSchema(
        {
            "anyOf": [
                {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": ID_MAX_LENGTH,
                    "pattern": ID_PATTERN,
                },
                {"type": "integer", "minimum": -(2**63), "maximum": 2**63 - 1},
            ],
            "description": "An id: text (no '/', control characters or outer spaces, not '.' "
            "or '..'), or an integer, stored as its decimal text.",
        }
    ),
]


def time_problem(
    value: datetime,
    earliest: datetime = TIME_FLOOR,
    max_future_seconds: float | None = None,
    now: datetime | None = None,
) -> str | None:
    """Why ``value`` (aware) is not an acceptable time, or None: the one rule every write route
    and importer applies. Not before ``earliest`` (``AGORA_EARLIEST_TIMESTAMP``, never before
    1970), not more than ``max_future_seconds`` past ``now``, never past the engine's span."""
    if value < earliest:
        return (
            f"{value.isoformat()} is before {earliest.isoformat()}, the earliest accepted time "
            "(AGORA_EARLIEST_TIMESTAMP)"
        )
    now = now or datetime.now(UTC)
    # a limit past the engine's span (AGORA_MAX_FUTURE_SECONDS=1e12) is no limit: the span's
    # own ceiling below still holds
    limited = (
        max_future_seconds is not None and max_future_seconds < (TIME_CEILING - now).total_seconds()
    )
    if limited and value > now + timedelta(seconds=max_future_seconds):
        ahead = (value - now).total_seconds()
        return (
            f"{value.isoformat()} lies {ahead:,.0f} s in the future (limit "
            f"{max_future_seconds:g} s after {now.isoformat()}; AGORA_MAX_FUTURE_SECONDS)"
        )
    if value >= TIME_CEILING:
        return (
            f"{value.isoformat()} is not before {TIME_CEILING.isoformat()}, the latest time stored"
        )
    return None


def record_time_problems(
    record: BaseModel,
    earliest: datetime = TIME_FLOOR,
    max_future_seconds: float | None = None,
    now: datetime | None = None,
) -> list[tuple[str, str]]:
    """(field, message) for each time of an incoming record that :func:`time_problem` refuses."""
    found = []
    for name in TIME_FIELDS:
        value = getattr(record, name, None)
        if value is not None and (fault := time_problem(value, earliest, max_future_seconds, now)):
            found.append((name, fault))
    return found


def in_span(value: datetime) -> datetime:
    """A UTC time within the engine's span (the policy bounds are checked by the services)."""
    value = as_utc(value)  # type: ignore[assignment]
    if fault := time_problem(value):
        raise ValueError(fault)
    return value


#: A time a client sends: an RFC 3339 date-time (without an offset: UTC) or unix seconds, made
#: UTC, and refused before 1970 or from 2100 on (the configured bounds are checked by services).
Timestamp = Annotated[
    datetime,
    AfterValidator(in_span),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "format": "date-time"},
                {"type": "number", "minimum": 0, "maximum": TIME_CEILING.timestamp() - 1},
            ],
            "description": "An RFC 3339 date-time or unix seconds, from 1970 (or "
            "AGORA_EARLIEST_TIMESTAMP) to AGORA_MAX_FUTURE_SECONDS past the server clock.",
        }
    ),
]


#: Most tags one item carries (Stack Exchange allows 5, MovieLens films have up to 10 genres).
MAX_TAGS = 100


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class UserIn(_Strict):
    """A community member, keyed by the platform's own id."""

    user_id: ExternalId
    created: Timestamp | None = None
    attributes: dict[str, Any] = Field(default_factory=dict)


class ItemIn(_Strict):
    """A piece of content: a post, question, answer, track, movie."""

    item_id: ExternalId
    author_id: ExternalId | None = None
    title: str = ""
    body: str = ""
    tags: list[str] = Field(default_factory=list, max_length=MAX_TAGS)
    language: str | None = Field(None, max_length=16)
    created: Timestamp | None = None
    media: dict[str, Any] = Field(default_factory=dict)
    attributes: dict[str, Any] = Field(default_factory=dict)


class EventIn(_Strict):
    """One behaviour event; re-sending the same event_id stores it once."""

    event_id: ExternalId
    user_id: ExternalId
    item_id: ExternalId
    type: str = Field(min_length=1, max_length=32, json_schema_extra=EVENT_TYPE)
    value: JsonNumber | None = Field(None, allow_inf_nan=False)
    timestamp: Timestamp | None = None
    context: dict[str, Any] = Field(default_factory=dict)


class EdgeIn(_Strict):
    """A directed social relation between two users (friend edges are stored both ways)."""

    source_id: ExternalId
    target_id: ExternalId
    type: str = Field(min_length=1, max_length=32, json_schema_extra={"enum": list(EDGE_TYPES)})
    weight: JsonNumber = Field(1.0, ge=0, le=1e6, allow_inf_nan=False)
    created: Timestamp | None = None


class GroupIn(_Strict):
    """A group, circle or sub-community users can be members of."""

    group_id: ExternalId
    name: str = ""
    created: Timestamp | None = None
    attributes: dict[str, Any] = Field(default_factory=dict)


class MembershipIn(_Strict):
    """A user's membership of a group."""

    group_id: ExternalId
    user_id: ExternalId
    role: str = Field("member", max_length=32)
    created: Timestamp | None = None


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


# -- response shapes -------------------------------------------------------------------------
class UserOut(BaseModel):
    user_id: str
    created: datetime
    attributes: dict[str, Any]
    n_events: int = Field(description="Events stored for this user.")


class ItemOut(BaseModel):
    item_id: str
    author_id: str | None
    title: str
    body: str
    tags: list[str]
    language: str | None
    created: datetime
    media: dict[str, Any]
    attributes: dict[str, Any]


class EdgeOut(BaseModel):
    source_id: str
    target_id: str
    type: str
    weight: float
    created: datetime


class GroupOut(BaseModel):
    group_id: str
    name: str
    created: datetime | None
    attributes: dict[str, Any]


class EventsAccepted(BaseModel):
    accepted: int = Field(description="Events newly stored by this request.")
    duplicates: int = Field(description="Events skipped: their event_id was already stored.")


class Written(BaseModel):
    written: int = Field(description="Rows created or updated (a friend edge counts twice).")


class EdgeKey(BaseModel):
    """Which edge to delete; ``source``/``target`` are accepted for the ``_id`` names."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    source_id: str = Field(
        min_length=1, max_length=255, validation_alias=AliasChoices("source_id", "source")
    )
    target_id: str = Field(
        min_length=1, max_length=255, validation_alias=AliasChoices("target_id", "target")
    )
    type: str = Field(min_length=1, max_length=32, json_schema_extra={"enum": list(EDGE_TYPES)})
