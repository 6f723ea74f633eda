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


#: Longest id accepted (the ``external_id`` columns hold 255 characters).
ID_MAX_LENGTH = 255
#: What an id may not contain: the Unicode categories Cc (control characters: newlines, tabs,
#: DEL...), Zl and Zp (line/paragraph separators), each character listed. Format characters stay
#: (emoji sequences need the zero-width joiner).
_ID_FORBIDDEN = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def id_problem(text: str) -> str | None:
    """Why ``text`` cannot be an id, or None: the one id rule of every write route and importer.

    An id must be addressable as one path segment by every route (``/users/{id}``) and printable
    on one line: 1-255 characters, no ``/``, no control characters or line breaks, not ``.`` or
    ``..``, no whitespace at either end. Anything else goes: digits, spaces inside, ``%?#+&``,
    any script, emoji (percent-encode them in paths).
    """
    if not text:
        return "an id must not be empty"
    if len(text) > ID_MAX_LENGTH:
        return f"an id has at most {ID_MAX_LENGTH} characters (this one has {len(text)})"
    if "/" in text:
        return "an id must not contain '/' (no route could address it)"
    if _ID_FORBIDDEN.search(text):
        return "an id must not contain control characters or line breaks"
    if text in (".", ".."):
        return "an id must not be '.' or '..' (no route could address it)"
    if text != text.strip():
        return "an id must not start or end with whitespace"
    return None


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
