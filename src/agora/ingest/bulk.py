"""Bulk import of an Agora file into PostgreSQL through ``COPY``: the same checks and the same
result as the normal path (:func:`agora.ingest.service.add_dataset`), several times faster.

The file is read once, line by line, in a thread of its own: every line is checked as
``load_agora`` checks it (plain event lines by
:meth:`~agora.ingest.agora_format._Checker.quick_event`, anything else through the schemas, so
problems read word for word the same), and the sound events are handed over in batches. Each
batch streams through psycopg's ``cursor.copy()`` into a temporary staging table, then
set-based statements write it in the same transaction: events whose ``event_id`` is stored
already are counted and dropped, unknown users and items get bare rows, the rest go in with
one ``INSERT ... SELECT`` (their users and items joined once, written to the months' tables)
and their keys into ``event_ids`` right after them (an id a concurrent writer stored
meanwhile: the import's event of it is deleted again, so it is stored once);
internal ids grow in file order as the refresher's marks expect. A file with any
problem is refused whole (the transaction rolls back what earlier batches wrote). Other record
kinds (users, items, groups, edges, memberships: a small part of big files) are written
afterwards by the normal path's functions, which create or replace: an item's bare row made
for an event gets the item's record.

The file's event ids (a file that uses one twice is refused) are kept in about 12 bytes each,
not the normal path's dict of texts (about 150): a JSON Lines file's by
:class:`~agora.ingest.event_ids.CompactEventIds`, whose recent ids the reader settles before it
hands a batch over, so a batch holding a repeated id is never written.

What makes it fast at tens of millions of events (measured by ``bench/bulk_import.py``):

* the next batch is parsed (Python) while PostgreSQL writes this one, so two cores work;
* each batch goes into ``events`` ordered by time, so each month's partition and its indexes are
  filled in turn while they are in memory, not all at once at random;
* the foreign keys of ``events`` are checked once per user and item, not once per event: the
  users and items the file names are locked ``FOR KEY SHARE`` by the batch that first names
  them (what each row's check would take, so an erasure waits for the commit) and the per-row
  checks are switched off for that one statement with ``session_replication_role = replica``.
  A role that may not set it (not a superuser, no ``GRANT SET ON PARAMETER``) keeps the
  per-row checks: slower, the same result;
* sorts of the staged rows get ``work_mem`` enough to stay in memory.
"""

from __future__ import annotations

import queue
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from pydantic import BaseModel
from sqlalchemy.orm import Session

from agora.db.partitions import KEY_TABLE, KEYS_WRITTEN, NewPartitions
from agora.db.pseudonyms import sealer_for_session
from agora.db.tables import TIME_FLOOR
from agora.ingest.agora_format import (
    DEFAULT_MAX_FUTURE_SECONDS,
    KIND_LISTS,
    EventRow,
    event_ids_for,
    scan_agora,
)
from agora.ingest.errors import ProblemCollector
from agora.ingest.schemas import Dataset
from agora.ingest.service import WriteSummary, add_dataset

#: Lines read between two progress reports.
PROGRESS_EVERY = 20_000
#: Events written per batch (the reader parses the next batch meanwhile), at least and at most:
#: a big file's batches are a sixteenth of it, since each batch's joins read the users and
#: items tables whole, which grow with the store.
BATCH_EVENTS = 200_000
MAX_BATCH_EVENTS = 1_000_000
_DONE = object()  # the reader's last hand-over

_STAGING = "agora_bulk_events"
# a row's id is drawn as COPY stores it: in file order, as the refresher's marks expect
_CREATE_STAGING = (
    f"CREATE TEMP TABLE {_STAGING} (id bigint DEFAULT nextval('events_id_seq'), event_id text, "
    "user_ext text, item_ext text, type text, value float8, ts timestamptz, context text) "
    "ON COMMIT DROP"
)
_COPY = f"COPY {_STAGING} (event_id, user_ext, item_ext, type, value, ts, context) FROM STDIN"
#: Memory for the sorts of the staged rows (per sort, this transaction only).
_SORT_MEMORY = "256MB"


def count_lines(path: str | Path) -> int:
    """Lines in a file (for a progress bar), counted in 1 MB blocks."""
    lines = 0
    with Path(path).open("rb") as fh:
        while block := fh.read(1 << 20):
            lines += block.count(b"\n")
    return lines


class NotBulkable(ValueError):
    """The bulk path cannot take this store or file (it needs PostgreSQL and an Agora file)."""


def bulk_import(
    session: Session,
    path: str | Path,
    allowed_types: Iterable[str],
    *,
    kind: str | None = None,
    max_future_seconds: float | None = DEFAULT_MAX_FUTURE_SECONDS,
    earliest: datetime = TIME_FLOOR,
    now: datetime | None = None,
    progress: Callable[[int], None] | None = None,
) -> WriteSummary:
    """Import one Agora file (JSON Lines or CSV) into the session's PostgreSQL store.

    Raises :class:`~agora.ingest.errors.ImportFailed` with every problem (nothing is written:
    the caller's transaction rolls back), :class:`NotBulkable` on SQLite. ``progress`` is called
    with the number of lines read since its last call."""
    if session.get_bind().dialect.name != "postgresql":
        raise NotBulkable("the bulk import needs PostgreSQL (SQLite takes the normal import)")
    path = Path(path)
    now = now or datetime.now(UTC)
    allowed_types = tuple(allowed_types)
    problems = ProblemCollector(path)
    ids = event_ids_for(path, problems)
    records = scan_agora(
        path,
        problems,
        kind=kind,
        event_types=allowed_types,
        max_future_seconds=max_future_seconds,
        now=now,
        earliest=earliest,
        ids=ids,
    )
    sealer = sealer_for_session(session)
    new_months = NewPartitions()
    raw = session.connection().connection.driver_connection
    batch_size = min(max(BATCH_EVENTS, path.stat().st_size // (100 * 16)), MAX_BATCH_EVENTS)
    reader = _EventBatches(records, problems, sealer, now, progress, batch_size, ids.settle)
    summary = WriteSummary()
    with raw.cursor() as cur, reader as batches:
        cur.execute(_CREATE_STAGING)
        cur.execute(f"SET LOCAL work_mem = '{_SORT_MEMORY}'")
        cur.execute(f"SELECT EXISTS (SELECT 1 FROM {KEY_TABLE})")
        (any_stored,) = cur.fetchone()
        writer = _EventWriter(session, cur, summary, new_months, now, check_stored=any_stored)
        for batch in batches:
            writer.write(_stage(cur, batch), batch)
    problems.raise_if_any()
    new_months.attach(session.connection())
    others = add_dataset(
        session, Dataset(**reader.others), allowed_types, max_future_seconds, earliest=earliest
    )
    for kind, count in others.written.items():
        summary.add(kind, count)
    with raw.cursor() as cur:
        # autovacuum analyses the partitions but never the partitioned table itself, whose
        # statistics plan every query across partitions: brought up to date with the new
        # rows. The tables the import filled too (a file of items or edges alone included):
        # until autovacuum's next turn (a minute away, never where it is off) the planner took
        # 1M users for 40k, and the feed catalogue's read of new items (every second of every
        # server) hashed the whole users table: 0.8 s, not 0.1 ms
        cur.execute(f"ANALYZE {', '.join(ANALYZED)}")
    return summary


@dataclass
class _Batch:
    """Staged rows of events as the lines of ``COPY``'s text format, made by the reader (so the
    writing thread only sends bytes), the (year, month) pairs their UTC times fall in, and the
    users and items no earlier batch named, in the order they first appear."""

    lines: list[str] = field(default_factory=list)
    months: set[tuple[int, int]] = field(default_factory=set)
    new_users: list[str] = field(default_factory=list)
    new_items: list[str] = field(default_factory=list)

    def add(self, row: EventRow, sealer: Any, now: datetime, named: _Named) -> None:
        user = sealer.seal(row.user_id) if sealer else row.user_id
        when = row.timestamp or now  # times are UTC here; an event without one is stored now
        self.months.add((when.year, when.month))
        if user not in named.users:
            named.users.add(user)
            self.new_users.append(user)
        if row.item_id not in named.items:
            named.items.add(row.item_id)
            self.new_items.append(row.item_id)
        texts = (row.event_id, user, row.item_id, row.type)
        if _COPY_SPECIAL.search("".join(texts) + row.context):
            texts = tuple(map(_copy_escaped, texts))
            context = _copy_escaped(row.context)
        else:
            context = row.context
        value = r"\N" if row.value is None else repr(row.value)
        stamp = r"\N" if row.timestamp is None else str(row.timestamp)
        self.lines.append("\t".join((*texts, value, stamp, context)) + "\n")

    def data(self) -> bytes:
        return "".join(self.lines).encode()


@dataclass
class _Named:
    """The users and items the batches handed over so far named (as stored: users sealed)."""

    users: set[str] = field(default_factory=set)
    items: set[str] = field(default_factory=set)


_COPY_SPECIAL = re.compile(r"[\\\t\n\r]")


def _copy_escaped(text: str) -> str:
    """``text`` as a field of ``COPY``'s text format (backslash, tab and line ends escaped)."""
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


class _EventBatches:
    """The file read in a thread of its own, its events handed over in batches of
    ``batch_size`` staged rows (the first a quarter of that, so the store starts writing
    sooner; the other records kept in :attr:`others`): the next batch is parsed (Python)
    while the store writes this one (PostgreSQL), so both cores work.

    Once a problem is found no batch is handed over any more; the file is read on to the end
    only to report every problem (the caller then raises them, and its transaction rolls back
    what earlier batches wrote)."""

    def __init__(
        self,
        records: Iterable[tuple[str, BaseModel | EventRow]],
        problems: ProblemCollector,
        sealer: Any,
        now: datetime,
        progress: Callable[[int], None] | None,
        batch_size: int,
        settle: Callable[[], None] = lambda: None,
    ) -> None:
        self.others: dict[str, list[BaseModel]] = {name: [] for name in KIND_LISTS.values()}
        self._records = records
        self._problems = problems
        self._sealer = sealer
        self._now = now
        self._progress = progress
        self._batch_size = batch_size
        self._settle = settle
        self._named = _Named()
        self._ready: queue.Queue[Any] = queue.Queue(maxsize=1)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, name="agora-bulk-reader", daemon=True)

    def __enter__(self) -> _EventBatches:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def __iter__(self) -> Iterator[_Batch]:
        while (batch := self._ready.get()) is not _DONE:
            if isinstance(batch, BaseException):
                raise batch
            yield batch

    def _read(self) -> None:
        try:
            self._read_records()
        except BaseException as exc:  # noqa: BLE001 - raised again in the caller's thread
            self._hand_over(exc)
        self._hand_over(_DONE)

    def _read_records(self) -> None:
        batch = _Batch()
        seen = 0
        events = max(1, self._batch_size // 4)
        for record_kind, record in self._records:
            seen += 1
            if self._progress and seen % PROGRESS_EVERY == 0:
                self._progress(PROGRESS_EVERY)
            if self._stop.is_set():
                return
            if self._problems:
                continue  # the file is refused: read on only to report every problem
            if isinstance(record, EventRow):
                batch.add(record, self._sealer, self._now, self._named)
                if len(batch.lines) == events:
                    self._settle()  # a line repeating an earlier id is found before it is sent
                    if self._problems:
                        continue
                    self._hand_over(batch)
                    batch = _Batch()
                    events = self._batch_size
            else:
                self.others[KIND_LISTS[record_kind]].append(record)
        if self._progress:
            self._progress(seen % PROGRESS_EVERY)
        if batch.lines and not self._problems:
            self._hand_over(batch)

    def _hand_over(self, item: Any) -> None:
        """Queue ``item`` for the caller, waiting while one is queued, unless it stopped."""
        while not self._stop.is_set():
            try:
                self._ready.put(item, timeout=0.1)
                return
            except queue.Full:
                continue


def _stage(cur: Any, batch: _Batch) -> int:
    """One batch of staged rows into the (emptied) staging table through ``COPY``; returns how
    many."""
    cur.execute(f"TRUNCATE {_STAGING}")
    with cur.copy(_COPY) as copy:
        copy.write(batch.data())
    return cur.rowcount


@dataclass
class _EventWriter:
    """Writes staged batches into the store, set-based, as :func:`service.add_events` does row
    by row: events whose ``event_id`` is stored skipped and counted, unknown users and items
    created bare, the rest written with the per-row key trigger turned off (their keys are
    written by :func:`_write_keys` after them), those of a month the store had no partition of
    into that month's table of ``new_months``. ``check_stored``: whether the store held any
    event when the import began (if not, a batch's ids are not looked up: a concurrent
    writer's id is still caught as its key is written).

    A user or item gets its bare row, and its lock, once per import: with the batch that first
    names it (``_Batch.new_users``/``new_items``), not with every batch that names it again
    (at 20M events, 20 batches each locked nearly all 200k items again: 30 s of 416). Where
    staged events may have been dropped as stored (``check_stored``), what a batch needs is
    read from its staged rows instead, since a user named only by dropped events gets none."""

    session: Session
    cur: Any
    summary: WriteSummary
    new_months: NewPartitions
    now: datetime
    check_stored: bool

    def write(self, staged: int, batch: _Batch) -> None:
        """The ``staged`` rows of ``batch`` into the store."""
        cur, summary = self.cur, self.summary
        stored = 0
        if self.check_stored:
            cur.execute(
                f"DELETE FROM {_STAGING} s WHERE EXISTS "
                f"(SELECT 1 FROM {KEY_TABLE} k WHERE k.event_id = s.event_id)"
            )
            stored = cur.rowcount
        summary.duplicate_events += stored
        written = staged - stored
        if not written:
            summary.add("events", 0)
            return
        starts = [datetime(year, month, 1, tzinfo=UTC) for year, month in sorted(batch.months)]
        self.new_months.prepare(self.session.connection(), starts)
        params: dict[str, Any] = {"now": self.now, "new": self.new_months.months}
        named = {"users": batch.new_users, "items": batch.new_items}
        for table, column, blanks in _BARE_ROWS:  # only the new ones reach ON CONFLICT
            if self.check_stored:
                source = f"SELECT {column} AS x, min(id) AS o FROM {_STAGING} GROUP BY {column}"
            else:
                source = "SELECT * FROM unnest(%(ids)s::text[]) WITH ORDINALITY AS n(x, o)"
            cur.execute(
                f"INSERT INTO {table} (external_id, created, {', '.join(blanks)}) "
                f"SELECT n.x, %(now)s, {', '.join(blanks.values())} FROM ({source}) n "
                f"WHERE NOT EXISTS (SELECT 1 FROM {table} t WHERE t.external_id = n.x) "
                "ORDER BY n.o ON CONFLICT (external_id) DO NOTHING",
                {**params, "ids": named[table]},
            )
        cur.execute(f"SELECT set_config('{KEYS_WRITTEN}', 'on', true)")
        checks_off = _row_checks_off(cur)
        if checks_off:
            _lock_referenced_rows(cur, None if self.check_stored else named)
        into_new = set(starts) & set(self.new_months.months)
        targets = [(NewPartitions.LOADING, "= ANY")] if into_new else []
        if set(starts) - into_new:
            targets.append(("events", "<> ALL"))
        cur.execute(_insert_resolved(targets), params)
        (inserted,) = cur.fetchone()
        if checks_off:
            cur.execute("SET LOCAL session_replication_role = origin")
        cur.execute(f"SELECT set_config('{KEYS_WRITTEN}', 'off', true)")
        if inserted != written:  # a user or item deleted meanwhile: refuse rather than keep keys
            raise RuntimeError(f"bulk import: {written - inserted} events lost their user or item")
        lost = _write_keys(cur, [table for table, _ in targets])
        summary.add("events", written - lost)
        summary.duplicate_events += lost


def _insert_resolved(targets: list[tuple[str, str]]) -> str:
    """One statement writing the staged events into each ``(table, months test)`` of
    ``targets`` (``events``, the new months' loading table or both), their users and items
    joined once for all (not once per table: two hash joins over the users table per batch
    were a third of a 20M import); it answers how many rows it wrote."""
    inserts = [
        f"w{n} AS (INSERT INTO {table} (id, event_id, user_id, item_id, type, value, "
        '"timestamp", context) SELECT id, event_id, user_id, item_id, type, value, ts, '
        f"context::json FROM r WHERE month {months_test} (%(new)s) "
        "ORDER BY ts, id RETURNING 1)"
        for n, (table, months_test) in enumerate(targets)
    ]
    return (
        "WITH r AS MATERIALIZED (SELECT s.id, s.event_id, u.id AS user_id, i.id AS item_id, "
        "s.type, s.value, coalesce(s.ts, %(now)s) AS ts, s.context, "
        "date_trunc('month', coalesce(s.ts, %(now)s), 'UTC') AS month "
        f"FROM {_STAGING} s JOIN users u ON u.external_id = s.user_ext "
        f"JOIN items i ON i.external_id = s.item_ext), {', '.join(inserts)} "
        f"SELECT {' + '.join(f'(SELECT count(*) FROM w{n})' for n in range(len(targets)))}"
    )


#: The bare rows a batch makes for users and items not seen before: table, staged column, and
#: the other columns' values.
_BARE_ROWS = (
    ("users", "user_ext", {"attributes": "'{}'"}),
    (
        "items",
        "item_ext",
        {"title": "''", "body": "''", "tags": "'[]'", "media": "'{}'", "attributes": "'{}'"},
    ),
)


#: The tables a bulk import analyses once its rows are in (see :func:`bulk_import`).
ANALYZED = ("events", "event_ids", "users", "items", "social_edges")


def _write_keys(cur: Any, tables: Iterable[str]) -> int:
    """The keys of the batch's events (just written into ``tables``) into ``event_ids``, in key
    order (the index fills left to right, not at random across it); returns how many events
    lost their key to a concurrent writer's event of the same id, which are deleted again.

    A plain ``INSERT`` first, several times cheaper than ``ON CONFLICT``'s speculative
    insertion; if a key was stored meanwhile, the keys again with ``ON CONFLICT DO NOTHING``."""
    insert = (
        f"INSERT INTO {KEY_TABLE} (event_id, id) SELECT event_id, id FROM {_STAGING} "
        "ORDER BY event_id"
    )
    cur.execute("SAVEPOINT agora_bulk_keys")
    try:
        cur.execute(insert)
    except psycopg.errors.UniqueViolation:
        cur.execute("ROLLBACK TO SAVEPOINT agora_bulk_keys")
        cur.execute(insert + " ON CONFLICT (event_id) DO NOTHING")
        lost = 0
        for table in tables:
            cur.execute(
                f"DELETE FROM {table} e USING {_STAGING} b WHERE e.id = b.id AND NOT EXISTS "
                f"(SELECT 1 FROM {KEY_TABLE} k WHERE k.event_id = b.event_id AND k.id = b.id)"
            )
            lost += cur.rowcount
    else:
        lost = 0
    cur.execute("RELEASE SAVEPOINT agora_bulk_keys")
    return lost


def _lock_referenced_rows(cur: Any, named: dict[str, list[str]] | None) -> None:
    """Lock the users and items the staged events name ``FOR KEY SHARE``, as each event's
    foreign-key check would: none of them can be deleted (an erasure waits) until the commit.
    ``named``: the external ids to lock per table (those no earlier batch locked), or None for
    every one the staged rows name."""
    for table, column in (("users", "user_ext"), ("items", "item_ext")):
        if named is None:
            wanted = f"SELECT DISTINCT {column} FROM {_STAGING}"
        else:
            wanted = "SELECT unnest(%(ids)s::text[])"
        cur.execute(
            f"SELECT count(*) FROM (SELECT 1 FROM {table} t WHERE t.external_id IN "
            f"({wanted}) FOR KEY SHARE OF t) locked",
            {} if named is None else {"ids": named[table]},
        )


def _row_checks_off(cur: Any) -> bool:
    """Switch off the per-row triggers (the foreign-key checks) until switched back, if this
    role may: True if it did, False (and nothing changed) if the role may not."""
    cur.execute("SAVEPOINT agora_bulk_checks")
    try:
        cur.execute("SET LOCAL session_replication_role = replica")
    except psycopg.errors.InsufficientPrivilege:
        cur.execute("ROLLBACK TO SAVEPOINT agora_bulk_checks")
        return False
    cur.execute("RELEASE SAVEPOINT agora_bulk_checks")
    return True
