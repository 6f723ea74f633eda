"""Agora's own import format: JSON Lines (any mix of record kinds) and CSV (one kind per file).

See ``docs/import-format.md`` for the documented format. Every line is validated against the
schemas in :mod:`agora.ingest.schemas` plus file-level checks (encoding, duplicate event ids,
unknown event types, timestamps in the future, truncated last line). All problems are collected and
raised together as one :class:`~agora.ingest.errors.ImportFailed`, so a bad file yields nothing.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from agora.api.types import id_problem, unstorable_text
from agora.config import BUILTIN_EVENT_TYPES, EDGE_TYPES
from agora.db.tables import TIME_CEILING, TIME_FLOOR
from agora.ingest.errors import ProblemCollector
from agora.ingest.event_ids import OFFSET_EVERY, CompactEventIds, EventIds, duplicate_message
from agora.ingest.schemas import (
    Dataset,
    EdgeIn,
    EventIn,
    GroupIn,
    ItemIn,
    MembershipIn,
    UserIn,
    as_utc,
    record_time_problems,
)

#: Record kinds and their schema, in the order a Dataset is written.
KINDS: dict[str, type[BaseModel]] = {
    "user": UserIn,
    "group": GroupIn,
    "item": ItemIn,
    "event": EventIn,
    "edge": EdgeIn,
    "membership": MembershipIn,
}
#: Which Dataset list each kind goes into.
KIND_LISTS: dict[str, str] = {
    "user": "users",
    "group": "groups",
    "item": "items",
    "event": "events",
    "edge": "edges",
    "membership": "memberships",
}
#: Event types accepted when the caller passes none: the built-in ones plus the default custom ones.
DEFAULT_EVENT_TYPES: tuple[str, ...] = BUILTIN_EVENT_TYPES + ("ask", "answer", "accept")
#: Default tolerance for timestamps past "now" (same as ``Settings.max_future_seconds``).
DEFAULT_MAX_FUTURE_SECONDS = 300.0
#: CSV columns holding a list, written as ``a|b|c``.
LIST_FIELDS = frozenset({"tags"})
#: CSV columns holding a JSON object as text.
JSON_FIELDS = frozenset({"attributes", "context", "media"})

JSONL_SUFFIXES = (".jsonl", ".ndjson")

#: The fields of an event record, and the ISO 8601 times :meth:`_Checker.quick_event` reads itself
#: (any other spelling goes through the schema).
_EVENT_FIELDS = frozenset(EventIn.model_fields)
_PLAIN_ISO_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})?")
#: Ids :func:`id_problem` accepts at a glance (ASCII letters, digits and ``_:.@+-``).
_PLAIN_ID = re.compile(r"[\w:.@+\-]{1,255}", re.ASCII)
#: Unix times up to this are seconds (pydantic reads larger numbers as milliseconds).
_UNIX_SECONDS_MAX = 2e10


@dataclass(frozen=True, slots=True)
class EventRow:
    """One sound event line as the bulk path stores it: values exactly as :class:`EventIn`
    would hold them (``timestamp`` None: the time of the write), ``context`` as JSON text."""

    line: int
    event_id: str
    user_id: str
    item_id: str
    type: str
    value: float | None
    timestamp: datetime | None
    context: str

    @classmethod
    def of(cls, event: EventIn, line: int) -> EventRow:
        """The row of an event the schema validated."""
        return cls(
            line,
            event.event_id,
            event.user_id,
            event.item_id,
            event.type,
            event.value,
            event.timestamp,
            json.dumps(event.context),
        )


CSV_SUFFIXES = (".csv",)


# --------------------------------------------------------------------------------------------
# validation shared by both readers


@dataclass
class _Checker:
    """File-level validation state: allowed types, clock, event ids seen so far (``ids``)."""

    problems: ProblemCollector
    event_types: frozenset[str]
    edge_types: frozenset[str]
    max_future_seconds: float | None
    now: datetime
    earliest: datetime = TIME_FLOOR
    ids: EventIds = field(default_factory=EventIds)

    def record(self, kind: str, data: dict[str, Any], line: int) -> BaseModel | None:
        """Validate one record; report all its problems and return it only when it is sound."""
        ok = True
        before = self.problems.total
        for loc, message in unstorable_text(data):
            self.problems.add(line, message, field=_loc(loc) if loc else None)
            ok = False
        if kind == "event":
            ok = self._event(data, line, before) and ok
        elif kind == "edge":
            edge_type = _text(data.get("type"))
            if edge_type and edge_type not in self.edge_types:
                allowed = ", ".join(sorted(self.edge_types))
                self.problems.add(
                    line, f"unknown edge type {edge_type!r} (allowed: {allowed})", field="type"
                )
                ok = False
        try:
            model = KINDS[kind].model_validate(data)
        except ValidationError as exc:
            for err in exc.errors():
                self.problems.add(line, _describe_error(err, kind), field=_loc(err["loc"]))
            return None
        for name, message in record_time_problems(
            model, self.earliest, self.max_future_seconds, self.now
        ):
            self.problems.add(line, message, field=name)
            ok = False
        return model if ok else None

    def quick_event(self, data: dict[str, Any], line: int) -> EventRow | None:
        """The row of an event line in the plain shape big files hold (text or integer ids, a
        known type, a number or nothing as value, unix seconds or a plain ISO 8601 time, an
        object as context), checked here in a few microseconds; None for anything else, which
        :meth:`record` then validates (and reports) through the schema. Accepts only what the
        schema accepts and yields the same values, so the bulk path stores what the normal
        one does."""
        if not data.keys() <= _EVENT_FIELDS:
            return None
        try:
            event_id = _quick_id(data["event_id"])
            user_id = _quick_id(data["user_id"])
            item_id = _quick_id(data["item_id"])
            event_type = data["type"]
        except KeyError:
            return None
        if event_id is None or user_id is None or item_id is None:
            return None
        if type(event_type) is not str or event_type not in self.event_types:
            return None
        if len(event_type) > 32:
            return None
        value = data.get("value")
        if value is not None:
            if type(value) not in (int, float):
                return None
            try:
                value = float(value)
            except OverflowError:
                return None
            if not math.isfinite(value):
                return None
        timestamp = _quick_time(data.get("timestamp"))
        if timestamp is False:
            return None
        if timestamp is not None and not self._time_window[0] <= timestamp <= self._time_window[1]:
            return None  # time_problem's message comes from the schema's path
        context = data.get("context")
        if context is None:
            if "context" in data:
                return None
            context_text = "{}"
        elif type(context) is not dict or (context and unstorable_text(context)):
            return None
        else:
            context_text = json.dumps(context) if context else "{}"
        if not self.ids.add_new(event_id, line):
            return None  # the schema's path reports the duplicate
        return EventRow(
            line, event_id, user_id, item_id, event_type, value, timestamp, context_text
        )

    @cached_property
    def _time_window(self) -> tuple[datetime, datetime]:
        """The earliest and the latest time :func:`time_problem` accepts (checked on both)."""
        latest = TIME_CEILING - timedelta(microseconds=1)
        if self.max_future_seconds is not None:
            latest = min(latest, self.now + timedelta(seconds=self.max_future_seconds))
        return self.earliest, latest

    def _event(self, data: dict[str, Any], line: int, before: int) -> bool:
        """Checks made on the raw event, so they are reported even when other fields are bad
        (``before``: the number of problems recorded before this line's)."""
        ok = True
        event_type = _text(data.get("type"))
        if event_type and event_type not in self.event_types:
            self.problems.add(
                line,
                f"unknown event type {event_type!r} "
                f"(allowed: {', '.join(sorted(self.event_types))})",
                field="type",
            )
            ok = False
        event_id = _text(data.get("event_id"))
        if event_id:
            first = self.ids.check(event_id, line, self.problems.total - before)
            if first is not None:
                self.problems.add(line, duplicate_message(event_id, first), field="event_id")
                ok = False
        return ok


def _quick_id(value: Any) -> str | None:
    """An id as the schema makes it (integers as their decimal text), or None when the schema
    must judge it."""
    if type(value) is int:
        return str(value) if -(2**63) <= value < 2**63 else None
    if type(value) is not str:
        return None
    if _PLAIN_ID.fullmatch(value) and value not in (".", ".."):
        return value
    if id_problem(value):
        return None
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return None
    return value


def _quick_time(value: Any) -> datetime | None | bool:
    """A time as the schema reads it (UTC), None when not given, False when the schema must
    judge it (floats, other spellings, out-of-range numbers)."""
    if value is None:
        return None
    if type(value) is int:
        if not 0 <= value <= _UNIX_SECONDS_MAX:
            return False
        return datetime.fromtimestamp(value, UTC)
    if type(value) is str and _PLAIN_ISO_TIME.fullmatch(value):
        try:
            return as_utc(datetime.fromisoformat(value))
        except ValueError:
            return False
    return False


def _text(value: Any) -> str | None:
    """The stripped text of a string or integer value (as the schemas normalise ids)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return value.strip()
    return None


def _loc(loc: Sequence[Any]) -> str:
    return ".".join(str(part) for part in loc) if loc else ""


def _describe_error(err: dict[str, Any], kind: str) -> str:
    kind_name = err.get("type", "")
    if kind_name == "missing":
        return f"required for a {kind} record but missing"
    if kind_name == "extra_forbidden":
        allowed = ", ".join(KINDS[kind].model_fields)
        return f"not a field of a {kind} record (fields: {allowed})"
    got = repr(err.get("input"))
    if len(got) > 60:
        got = got[:57] + "..."
    return f"{err.get('msg', 'invalid value')} (got {got})"


def _make_checker(
    problems: ProblemCollector,
    event_types: Iterable[str] | None,
    edge_types: Iterable[str] | None,
    max_future_seconds: float | None,
    now: datetime | None,
    earliest: datetime | None = None,
    ids: EventIds | None = None,
) -> _Checker:
    if now is None:
        now = datetime.now(UTC)
    elif now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    return _Checker(
        problems=problems,
        event_types=frozenset(DEFAULT_EVENT_TYPES if event_types is None else event_types),
        edge_types=frozenset(EDGE_TYPES if edge_types is None else edge_types),
        max_future_seconds=max_future_seconds,
        now=now,
        earliest=earliest or TIME_FLOOR,
        ids=EventIds() if ids is None else ids,
    )


def event_ids_for(path: str | Path, problems: ProblemCollector) -> EventIds:
    """What keeps the event ids of ``path`` while it is read: for a JSON Lines file about 12
    bytes an id (:class:`~agora.ingest.event_ids.CompactEventIds`, ids read again from the
    file to be sure of a duplicate), for a CSV file a dict of them."""
    path = Path(path)
    if path.suffix.lower() in JSONL_SUFFIXES:
        return CompactEventIds(path, problems, _recorded_id)
    return EventIds()


def _recorded_id(obj: dict[str, Any]) -> str | None:
    """The id a JSON Lines event line was recorded under (by :meth:`_Checker.quick_event` or
    :meth:`_Checker._event`: the same text for any id the quick check takes)."""
    return _text(obj.get("event_id"))


def _lines(
    path: Path, problems: ProblemCollector, ids: EventIds | None = None
) -> Iterator[tuple[int, str, bool]]:
    """Decoded lines as (1-based number, text without line end, ended by a newline).

    Lines that are not valid UTF-8 are reported (with the position of the first bad byte) and
    skipped. A UTF-8 byte-order mark at the start is ignored. ``ids`` that want them are told
    where every ``OFFSET_EVERY``-th line begins.
    """
    every = OFFSET_EVERY if ids is not None and ids.wants_offsets else 0
    with path.open("rb") as fh:
        for number, raw in enumerate(fh, start=1):
            if every and not number % every:
                ids.note_offset(fh.tell())  # where line number + 1 begins
            if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            ended = raw.endswith(b"\n")
            body = raw.rstrip(b"\r\n")
            try:
                text = body.decode("utf-8")
            except UnicodeDecodeError as exc:
                problems.add(
                    number,
                    f"not valid UTF-8: byte 0x{body[exc.start]:02x} at column {exc.start + 1} "
                    "(save the file as UTF-8)",
                    column=exc.start + 1,
                )
                continue
            yield number, text, ended


# --------------------------------------------------------------------------------------------
# JSON Lines


def _scan_jsonl(
    path: Path, checker: _Checker, quick: bool = False
) -> Iterator[tuple[str, BaseModel | EventRow]]:
    problems = checker.problems
    lines = non_blank = 0
    for number, text, ended in _lines(path, problems, checker.ids):
        lines += 1
        if not text.strip():
            continue
        non_blank += 1
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            if not ended:
                problems.add(
                    number,
                    "truncated last line: not valid JSON and no newline at the end "
                    f"(the file was probably cut off; {exc.msg} at column {exc.colno})",
                    column=exc.colno,
                )
            else:
                problems.add(
                    number, f"malformed JSON at column {exc.colno}: {exc.msg}", column=exc.colno
                )
            continue
        if not isinstance(obj, dict):
            problems.add(number, f"expected a JSON object, got {_json_type(obj)}")
            continue
        kind = obj.pop("kind", "event")
        if kind not in KINDS:
            problems.add(
                number,
                f"unknown kind {kind!r} (expected one of: {', '.join(KINDS)})",
                field="kind",
            )
            continue
        if quick and kind == "event" and (row := checker.quick_event(obj, number)) is not None:
            yield kind, row
            continue
        model = checker.record(kind, obj, number)
        if model is not None:
            yield kind, EventRow.of(model, number) if quick and kind == "event" else model
    checker.ids.settle()  # the duplicates of ids it checks after their lines were read
    if non_blank == 0 and not problems:
        if lines == 0:
            problems.add(1, "file is empty (0 bytes, no records)")
        else:
            problems.add(1, "file is empty (only blank lines, no records)")


def _json_type(value: Any) -> str:
    return {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number"
    )


# --------------------------------------------------------------------------------------------
# CSV


def _split_list(text: str) -> list[str]:
    return [part.strip() for part in text.split("|") if part.strip()]


def _scan_csv(
    path: Path, checker: _Checker, kind: str | None, delimiter: str
) -> Iterator[tuple[str, BaseModel]]:
    """(kind, record) of each valid row of a CSV file of one kind (``kind``, or its ``kind``
    column); problems go to the checker's collector, and a problem with the file itself
    (encoding, header, columns, malformed CSV) ends the reading."""
    problems = checker.problems
    if kind is not None and kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r} (expected one of: {', '.join(KINDS)})")
    if not _csv_text_ok(path, problems):
        return
    with path.open("r", encoding="utf-8-sig", newline="") as fh:
        reader = csv.reader(fh, delimiter=delimiter, strict=True)
        header = _csv_header(reader, kind, problems)
        if header is None:
            return
        has_kind_col = "kind" in header
        checked_kinds: set[str] = {kind} if kind is not None else set()
        file_kind = kind
        rows = 0
        for number, row in _csv_rows(reader, problems):
            rows += 1
            if len(row) != len(header):
                problems.add(
                    number, f"expected {len(header)} columns as in the header, found {len(row)}"
                )
                continue
            cells = dict(zip(header, row, strict=True))
            row_kind = file_kind
            if has_kind_col:
                row_kind = _csv_row_kind(cells.pop("kind"), file_kind, number, problems)
                if row_kind is None:
                    continue
                file_kind = row_kind
            assert row_kind is not None
            if row_kind not in checked_kinds:
                checked_kinds.add(row_kind)
                if not _check_columns(header, row_kind, problems):
                    return
            data, cells_ok = _csv_cells(cells, number, problems)
            model = checker.record(row_kind, data, number)
            if model is not None and cells_ok:
                yield row_kind, model
        if rows == 0 and not problems:
            problems.add(2, "no data rows after the header")


def _csv_text_ok(path: Path, problems: ProblemCollector) -> bool:
    """Whether the file is UTF-8 with a non-blank line (else reported): checked on the bytes
    first, so that the CSV reader sees clean text."""
    non_blank = 0
    for _number, text, _ended in _lines(path, problems):
        if text.strip():
            non_blank += 1
    if problems:
        return False
    if non_blank == 0:
        problems.add(1, "file is empty (a CSV file needs a header row and data rows)")
        return False
    return True


def _csv_header(reader: Any, kind: str | None, problems: ProblemCollector) -> list[str] | None:
    """The header's column names (stripped), or None when it is malformed, names a column
    twice or lacks one, or lacks a column ``kind`` needs (each problem reported)."""
    try:
        header = next(reader)
    except csv.Error as exc:
        problems.add(1, f"malformed CSV header: {exc}")
        return None
    header = [h.strip() for h in header]
    if not _header_ok(header, kind, problems):
        return None
    if kind is not None:
        _check_columns(header, kind, problems)
        if problems:
            return None
    return header


def _csv_rows(reader: Any, problems: ProblemCollector) -> Iterator[tuple[int, list[str]]]:
    """(line number, cells) of each non-blank row after the header; malformed CSV is reported
    at the line its row starts on and ends the rows."""
    start = reader.line_num + 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            problems.add(start, f"malformed CSV: {exc}")
            return
        number, start = start, reader.line_num + 1
        if any(cell.strip() for cell in row):
            yield number, row


def _csv_row_kind(
    given: str, file_kind: str | None, number: int, problems: ProblemCollector
) -> str | None:
    """A row's kind from its ``kind`` cell (blank: the file's kind), or None when it is unknown
    or differs from the file's (a CSV file holds one kind; reported)."""
    given = given.strip() or (file_kind or "")
    if given not in KINDS:
        problems.add(
            number,
            f"unknown kind {given!r} (expected one of: {', '.join(KINDS)})",
            field="kind",
        )
        return None
    if file_kind is not None and given != file_kind:
        problems.add(
            number,
            f"kind {given!r} differs from {file_kind!r}: a CSV file holds one kind",
            field="kind",
        )
        return None
    return given


def _header_ok(header: list[str], kind: str | None, problems: ProblemCollector) -> bool:
    ok = True
    seen: set[str] = set()
    for i, name in enumerate(header, start=1):
        if not name:
            problems.add(1, f"header column {i} has no name", column=i)
            ok = False
        elif name in seen:
            problems.add(1, f"column {name!r} appears twice in the header", field=name)
            ok = False
        seen.add(name)
    known = set().union(*(m.model_fields for m in KINDS.values())) | {"kind"}
    if ok and not seen & known:
        problems.add(
            1,
            "a header row is required: the first row names no known column "
            f"(got {', '.join(header)[:80]})",
        )
        return False
    if ok and kind is None and "kind" not in seen:
        problems.add(
            1,
            "cannot tell the record kind: add a 'kind' column or give the kind "
            f"({', '.join(KINDS)}) when importing",
            field="kind",
        )
        return False
    return ok


def _check_columns(header: list[str], kind: str, problems: ProblemCollector) -> bool:
    fields = KINDS[kind].model_fields
    ok = True
    for name in header:
        if name != "kind" and name not in fields:
            problems.add(
                1,
                f"unknown column for kind {kind!r} (columns: {', '.join(fields)})",
                field=name,
            )
            ok = False
    return ok


def _csv_cells(
    cells: dict[str, str], number: int, problems: ProblemCollector
) -> tuple[dict[str, Any], bool]:
    """Cell texts turned into field values; bad JSON cells are reported and left out."""
    data: dict[str, Any] = {}
    ok = True
    for name, raw in cells.items():
        if raw.strip() == "":
            continue  # empty cell: the field takes its default
        if name in LIST_FIELDS:
            data[name] = _split_list(raw)
        elif name in JSON_FIELDS:
            try:
                value = json.loads(raw)
            except json.JSONDecodeError as exc:
                problems.add(number, f"malformed JSON at column {exc.colno}: {exc.msg}", name)
                ok = False
                continue
            if not isinstance(value, dict):
                problems.add(number, f"expected a JSON object, got {type(value).__name__}", name)
                ok = False
                continue
            data[name] = value
        else:
            data[name] = raw
    return data, ok


# --------------------------------------------------------------------------------------------
# public API


def _scan(
    path: Path,
    checker: _Checker,
    kind: str | None,
    delimiter: str,
) -> Iterator[tuple[str, BaseModel]]:
    suffix = path.suffix.lower()
    if suffix in CSV_SUFFIXES:
        return _scan_csv(path, checker, kind, delimiter)
    if suffix in JSONL_SUFFIXES:
        return _scan_jsonl(path, checker)
    raise ValueError(
        f"{path}: not an Agora import file (expected {', '.join(JSONL_SUFFIXES + CSV_SUFFIXES)})"
    )


def scan_agora(
    path: str | Path,
    problems: ProblemCollector,
    *,
    kind: str | None = None,
    event_types: Iterable[str] | None = None,
    edge_types: Iterable[str] | None = None,
    max_future_seconds: float | None = DEFAULT_MAX_FUTURE_SECONDS,
    now: datetime | None = None,
    delimiter: str = ",",
    earliest: datetime | None = None,
    ids: EventIds | None = None,
) -> Iterator[tuple[str, BaseModel | EventRow]]:
    """The sound records of one Agora file as it is read, with the same checks as
    :func:`load_agora` (every problem goes to ``problems``: the caller raises them at the end).
    Event lines of a JSON Lines file come as :class:`EventRow` (plain ones checked without
    building a model: a bulk import reads several times faster), other records as models.

    ``ids`` (default: :func:`event_ids_for` the file) keeps the event ids read: a caller that
    passes its own may :meth:`~agora.ingest.event_ids.EventIds.settle` them between records, so
    that every duplicate among the lines read so far is in ``problems``; an event line found
    later to repeat an earlier id's may have come as a record before that."""
    path = Path(path)
    ids = event_ids_for(path, problems) if ids is None else ids
    checker = _make_checker(
        problems, event_types, edge_types, max_future_seconds, now, earliest, ids
    )
    if path.suffix.lower() in JSONL_SUFFIXES:
        yield from _scan_jsonl(path, checker, quick=True)
        return
    for position, (record_kind, record) in enumerate(_scan(path, checker, kind, delimiter)):
        if isinstance(record, EventIn):  # CSV: the position orders the rows as in the file
            yield record_kind, EventRow.of(record, position)
        else:
            yield record_kind, record


def load_agora(
    path: str | Path,
    *,
    kind: str | None = None,
    event_types: Iterable[str] | None = None,
    edge_types: Iterable[str] | None = None,
    max_future_seconds: float | None = DEFAULT_MAX_FUTURE_SECONDS,
    now: datetime | None = None,
    delimiter: str = ",",
    earliest: datetime | None = None,
) -> Dataset:
    """Read one Agora-format file (``.jsonl``/``.ndjson`` or ``.csv``) into a Dataset.

    ``kind`` names the record kind of a CSV file without a ``kind`` column. ``event_types`` are
    the allowed event types (default: built-in + ask/answer/accept); ``max_future_seconds``
    (``None`` turns the check off) bounds how far timestamps may lie past ``now`` (default: the
    current UTC time); no time may lie before ``earliest`` (default and floor: 1970-01-01).
    Raises :class:`~agora.ingest.errors.ImportFailed` listing every problem.
    """
    path = Path(path)
    problems = ProblemCollector(path)
    checker = _make_checker(problems, event_types, edge_types, max_future_seconds, now, earliest)
    lists: dict[str, list[BaseModel]] = {name: [] for name in KIND_LISTS.values()}
    for record_kind, model in _scan(path, checker, kind, delimiter):
        lists[KIND_LISTS[record_kind]].append(model)
    problems.raise_if_any()
    return Dataset(**lists)


def load_jsonl(path: str | Path, **opts: Any) -> Dataset:
    """Read an Agora JSON Lines file; same options as :func:`load_agora`."""
    return load_agora(path, **opts)


def load_csv(path: str | Path, *, kind: str | None = None, **opts: Any) -> Dataset:
    """Read an Agora CSV file of one record kind; same options as :func:`load_agora`."""
    return load_agora(path, kind=kind, **opts)


def validate_agora(path: str | Path, **opts: Any) -> dict[str, int]:
    """Check a file without keeping its records; returns counts per kind or raises ImportFailed."""
    path = Path(path)
    kind = opts.pop("kind", None)
    delimiter = opts.pop("delimiter", ",")
    problems = ProblemCollector(path)
    checker = _make_checker(
        problems,
        opts.pop("event_types", None),
        opts.pop("edge_types", None),
        opts.pop("max_future_seconds", DEFAULT_MAX_FUTURE_SECONDS),
        opts.pop("now", None),
        opts.pop("earliest", None),
    )
    if opts:
        raise TypeError(f"unexpected options: {', '.join(opts)}")
    counts = dict.fromkeys(KIND_LISTS.values(), 0)
    for record_kind, _model in _scan(path, checker, kind, delimiter):
        counts[KIND_LISTS[record_kind]] += 1
    problems.raise_if_any()
    return counts


def iter_agora(path: str | Path, *, chunk_size: int = 10_000, **opts: Any) -> Iterator[Dataset]:
    """Yield a big Agora file as Datasets of at most ``chunk_size`` records each.

    The whole file is validated first (nothing is yielded from a bad file: ImportFailed is raised
    before the first chunk), then it is read once per record kind present, so every chunk holds one
    kind and all users come before all items, items before events, and so on.
    """
    if chunk_size < 1:
        raise ValueError("chunk_size must be at least 1")
    path = Path(path)
    counts = validate_agora(path, **dict(opts))
    kind = opts.pop("kind", None)
    delimiter = opts.pop("delimiter", ",")
    for record_kind, list_name in KIND_LISTS.items():
        if not counts[list_name]:
            continue
        # The file is known to be valid: read it again without the future check (the clock moved).
        checker = _make_checker(
            ProblemCollector(path),
            opts.get("event_types"),
            opts.get("edge_types"),
            None,
            opts.get("now"),
        )
        batch: list[BaseModel] = []
        for k, model in _scan(path, checker, kind, delimiter):
            if k != record_kind:
                continue
            batch.append(model)
            if len(batch) >= chunk_size:
                yield Dataset(**{list_name: batch})
                batch = []
        if batch:
            yield Dataset(**{list_name: batch})


# --------------------------------------------------------------------------------------------
# writers (exports, fixtures, round trips)


def _json_record(kind: str, model: BaseModel) -> dict[str, Any]:
    data = model.model_dump(mode="json", exclude_defaults=True)
    if kind == "event":
        return data
    return {"kind": kind, **data}


def dump_jsonl(dataset: Dataset, path: str | Path) -> int:
    """Write a Dataset as Agora JSON Lines (events without ``kind``); returns the line count."""
    path = Path(path)
    n = 0
    with path.open("w", encoding="utf-8", newline="\n") as fh:
        for kind, list_name in KIND_LISTS.items():
            for model in getattr(dataset, list_name):
                fh.write(json.dumps(_json_record(kind, model), ensure_ascii=False) + "\n")
                n += 1
    return n


def _csv_value(name: str, value: Any) -> str:
    if value is None:
        return ""
    if name in LIST_FIELDS:
        bad = [v for v in value if "|" in v]
        if bad:
            raise ValueError(f"{name} value {bad[0]!r} contains '|', which CSV uses as separator")
        return "|".join(value)
    if name in JSON_FIELDS:
        return json.dumps(value, ensure_ascii=False) if value else ""
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    return str(value)


def dump_csv(
    records: Sequence[BaseModel], path: str | Path, kind: str, *, with_kind: bool = False
) -> int:
    """Write records of one kind as Agora CSV (header row first); returns the row count."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}")
    columns = list(KINDS[kind].model_fields)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow((["kind"] if with_kind else []) + columns)
    for model in records:
        row = [_csv_value(c, getattr(model, c)) for c in columns]
        writer.writerow(([kind] if with_kind else []) + row)
    Path(path).write_text(buf.getvalue(), encoding="utf-8", newline="")
    return len(records)
