"""Bulk import of an Agora file into PostgreSQL through ``COPY``: the same checks and the same
result as the normal path (:func:`agora.ingest.service.add_dataset`), several times faster.

The file is read once, line by line: every line is checked as ``load_agora`` checks it (plain
event lines by :meth:`~agora.ingest.agora_format._Checker.quick_event`, anything else through
the schemas, so problems read word for word the same), and sound events stream through
psycopg's ``cursor.copy()`` into a temporary staging table. A file with any problem is refused
whole (the transaction rolls back). Otherwise set-based statements finish the job in the same
transaction: events whose ``event_id`` is stored already are counted and dropped, unknown users
and items get bare rows, and the rest go in with ``INSERT ... SELECT ... ON CONFLICT DO
NOTHING`` (so a concurrent writer still stores an event once); internal ids grow in file
order as the refresher's marks expect. Other record kinds (users, items, groups, edges,
memberships: a small part of big files) are written by the normal path's functions.

What makes it fast at tens of millions of events (measured by ``bench/bulk_import.py``):

* the rows go into ``events`` ordered by time, so each month's partition and its indexes are
  filled in turn while they are in memory, not all at once at random;
* the foreign keys of ``events`` are checked once per user and item, not once per event: the
  users and items the file names are locked ``FOR KEY SHARE`` (what each row's check would take,
  so an erasure waits for the commit) and the per-row checks are switched off for that one
  statement with ``session_replication_role = replica``. A role that may not set it (not a
  superuser, no ``GRANT SET ON PARAMETER``) keeps the per-row checks: slower, the same result;
* sorts of the staged rows get ``work_mem`` enough to stay in memory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from pydantic import BaseModel
from sqlalchemy.orm import Session

from agora.db.partitions import KEY_TABLE, KEYS_WRITTEN, ensure_event_partitions, months_of
from agora.db.pseudonyms import sealer_for_session
from agora.db.tables import TIME_FLOOR
from agora.ingest.agora_format import DEFAULT_MAX_FUTURE_SECONDS, KIND_LISTS, EventRow, scan_agora
from agora.ingest.errors import ProblemCollector
from agora.ingest.schemas import Dataset
from agora.ingest.service import WriteSummary, add_dataset

#: Lines read between two progress reports.
PROGRESS_EVERY = 20_000

_STAGING = "agora_bulk_events"
_READY = "agora_bulk_ready"
_CREATE_STAGING = f"""
CREATE TEMP TABLE {_STAGING} (
    line bigint, event_id text, user_ext text, item_ext text, type text, value float8,
    ts timestamptz, context text
) ON COMMIT DROP
"""
_COPY = (
    f"COPY {_STAGING} (line, event_id, user_ext, item_ext, type, value, ts, context) "
    "FROM STDIN (FORMAT BINARY)"
)
_COPY_TYPES = ["int8", "text", "text", "text", "text", "float8", "timestamptz", "text"]
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
    records = scan_agora(
        path,
        problems,
        kind=kind,
        event_types=allowed_types,
        max_future_seconds=max_future_seconds,
        now=now,
        earliest=earliest,
    )
    others: dict[str, list[BaseModel]] = {name: [] for name in KIND_LISTS.values()}
    sealer = sealer_for_session(session)
    raw = session.connection().connection.driver_connection
    with raw.cursor() as cur:
        cur.execute(_CREATE_STAGING)
        with cur.copy(_COPY) as copy:
            copy.set_types(_COPY_TYPES)
            seen = 0
            for record_kind, record in records:
                seen += 1
                if progress and seen % PROGRESS_EVERY == 0:
                    progress(PROGRESS_EVERY)
                if problems:
                    continue  # the file is refused: read on only to report every problem
                if isinstance(record, EventRow):
                    copy.write_row(_staged(record, sealer))
                else:
                    others[KIND_LISTS[record_kind]].append(record)
            if progress:
                progress(seen % PROGRESS_EVERY)
    problems.raise_if_any()
    summary = add_dataset(
        session, Dataset(**others), allowed_types, max_future_seconds, earliest=earliest
    )
    with raw.cursor() as cur:
        _write_events(session, cur, summary, now)
    return summary


def _staged(row: EventRow, sealer: Any) -> tuple[Any, ...]:
    user = sealer.seal(row.user_id) if sealer else row.user_id
    return (
        row.line,
        row.event_id,
        user,
        row.item_id,
        row.type,
        row.value,
        row.timestamp,
        row.context,
    )


def _write_events(session: Session, cur: Any, summary: WriteSummary, now: datetime) -> None:
    """The staged events into the store, set-based, as :func:`service.add_events` does row by
    row: stored event ids skipped and counted, unknown users and items created bare.

    Each row gets its id from the events' sequence in file order and its key in ``event_ids``
    (``ON CONFLICT DO NOTHING``: an id stored before, or by a concurrent writer, keeps its
    first row); the rows whose key is theirs go in with the per-row key trigger turned off."""
    cur.execute(f"SELECT count(*) FROM {_STAGING}")
    (total,) = cur.fetchone()
    if not total:
        return
    cur.execute(f"SET LOCAL work_mem = '{_SORT_MEMORY}'")
    cur.execute(
        f"CREATE TEMP TABLE {_READY} ON COMMIT DROP AS SELECT nextval('events_id_seq') AS id, "
        f"s.* FROM (SELECT * FROM {_STAGING} ORDER BY line) s"
    )
    cur.execute(
        # in key order, the index is filled left to right; a key twice in the file keeps its
        # first line (the lower id comes first)
        f"INSERT INTO {KEY_TABLE} (event_id, id) SELECT event_id, id FROM {_READY} "
        "ORDER BY event_id, id ON CONFLICT (event_id) DO NOTHING"
    )
    written = cur.rowcount
    summary.add("events", written)
    summary.duplicate_events += total - written
    if not written:
        return
    if written < total:
        cur.execute(
            f"DELETE FROM {_READY} r WHERE NOT EXISTS "
            f"(SELECT 1 FROM {KEY_TABLE} k WHERE k.event_id = r.event_id AND k.id = r.id)"
        )
    cur.execute(f"ANALYZE {_READY}")
    conn = session.connection()
    cur.execute(f"SELECT count(*) - count(ts) FROM {_READY}")
    untimed = cur.fetchone()[0]
    ensure_event_partitions(conn, months_of(conn, _READY, "ts") + ([now] if untimed else []))
    params = {"now": now}
    cur.execute(
        f"INSERT INTO users (external_id, created, attributes) "
        f"SELECT user_ext, %(now)s, '{{}}' FROM {_READY} GROUP BY user_ext ORDER BY min(id) "
        "ON CONFLICT (external_id) DO NOTHING",
        params,
    )
    cur.execute(
        "INSERT INTO items (external_id, created, title, body, tags, media, attributes) "
        f"SELECT item_ext, %(now)s, '', '', '[]', '{{}}', '{{}}' FROM {_READY} "
        "GROUP BY item_ext ORDER BY min(id) ON CONFLICT (external_id) DO NOTHING",
        params,
    )
    cur.execute(f"SELECT set_config('{KEYS_WRITTEN}', 'on', true)")
    checks_off = _row_checks_off(cur)
    if checks_off:
        _lock_referenced_rows(cur)
    cur.execute(
        'INSERT INTO events (id, event_id, user_id, item_id, type, value, "timestamp", context) '
        "SELECT r.id, r.event_id, u.id, i.id, r.type, r.value, coalesce(r.ts, %(now)s) AS ts, "
        f"r.context::json FROM {_READY} r "
        "JOIN users u ON u.external_id = r.user_ext JOIN items i ON i.external_id = r.item_ext "
        "ORDER BY ts, r.id",
        params,
    )
    inserted = cur.rowcount
    if checks_off:
        cur.execute("SET LOCAL session_replication_role = origin")
    cur.execute(f"SELECT set_config('{KEYS_WRITTEN}', 'off', true)")
    if inserted != written:  # a user or item deleted meanwhile: refuse rather than keep keys
        raise RuntimeError(f"bulk import: {written - inserted} events lost their user or item")
    # autovacuum analyses the partitions but never the partitioned table itself, whose
    # statistics plan every query across partitions: brought up to date with the new rows.
    # The tables the import filled too: until autovacuum's next turn (a minute away, never
    # where it is off) the planner takes 1M users for 40k, and the feed catalogue's read of
    # new items (every second of every server) hashed the whole users table: 0.8 s, not 0.1 ms
    cur.execute(f"ANALYZE {', '.join(ANALYZED)}")


#: The tables a bulk import analyses once its rows are in (see :func:`_write_events`).
ANALYZED = ("events", "event_ids", "users", "items", "social_edges")


def _lock_referenced_rows(cur: Any) -> None:
    """Lock the users and items the staged events name ``FOR KEY SHARE``, as each event's
    foreign-key check would: none of them can be deleted (an erasure waits) until the commit."""
    for table, column in (("users", "user_ext"), ("items", "item_ext")):
        cur.execute(
            f"SELECT count(*) FROM (SELECT 1 FROM {table} t WHERE t.external_id IN "
            f"(SELECT DISTINCT {column} FROM {_READY}) FOR KEY SHARE OF t) locked"
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
