"""Value types for what requests carry, bounded so that the OpenAPI schema states the bounds and a
value out of them is a 422 naming its place, before it reaches a database or a library (or, for
query times, held to a window where every answer is the same).

Integers: a 64-bit database column holds at most 2⁶³-1 (SQLite raises OverflowError past it,
PostgreSQL a DataError), so every integer taken from a request has bounds; ids and offsets use
the column's, counts and page sizes a real maximum of their own (given where they are declared).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field

#: The largest value a signed 64-bit column (SQLite INTEGER, PostgreSQL BIGINT) holds.
MAX_INT64 = 2**63 - 1

#: A row id issued by the store (review cases, ad impressions, alert rules...): 1 .. 2⁶³-1.
RowId = Annotated[int, Field(ge=1, le=MAX_INT64)]
#: How many rows to skip in a listing: 0 .. 2⁶³-1.
Offset = Annotated[int, Field(ge=0, le=MAX_INT64)]


def _not_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("expected a number, not true or false")
    return value


def json_int(ge: int, le: int) -> Any:
    """A JSON integer in ``ge .. le`` (``3`` or ``3.0``, as JSON Schema counts them), never
    ``true``/``false`` (pydantic would take those as 1 and 0). The bounds come before the check
    so that the schema shows them as ``minimum``/``maximum``."""
    return Annotated[int, Field(ge=ge, le=le), BeforeValidator(_not_bool)]


#: A JSON number, never ``true``/``false`` (pydantic would take those as 1.0 and 0.0).
JsonNumber = Annotated[float, BeforeValidator(_not_bool)]


#: A random seed numpy and scikit-learn accept: 0 .. 2³²-1.
Seed = json_int(0, 2**32 - 1)


#: Marks a schema whose values are this deployment's event types (the settings': the document is
#: completed per app by :func:`agora.api.openapi.fill_enum`).
EVENT_TYPE_MARK = "x-agora-event-type"
EVENT_TYPE = {EVENT_TYPE_MARK: True}


#: The window query times are held to: before it or after it, every store answers the same.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)

_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$", re.ASCII
)


def _rfc3339(value: Any) -> Any:
    if not isinstance(value, str) or not _RFC3339.match(value):
        raise ValueError(
            "expected an RFC 3339 date-time with its offset, e.g. 2024-05-01T12:00:00Z"
        )
    return value


def _clamped_utc(value: datetime) -> datetime:
    try:
        value = value.astimezone(UTC)
    except OverflowError:  # a year-1 time east of UTC, or year 9999 west of it
        return EARLIEST if value.year < 2000 else LATEST
    return min(max(value, EARLIEST), LATEST)


#: A time given in a query (``since``, ``until``, ``now``): an RFC 3339 date-time with its offset
#: (as the OpenAPI ``date-time`` format says; a bare number is refused), in UTC, held to
#: 1970-01-01 .. 2200-01-01 (any date-time is accepted; one outside means the same as the edge).
QueryTime = Annotated[datetime, BeforeValidator(_rfc3339), AfterValidator(_clamped_utc)]
