"""PostgreSQL's events table partitioned by month, and the partitions made ahead of the rows.

Migration 0018 turns ``events`` into a table partitioned by range on ``timestamp``: one partition
per calendar month (UTC) named ``events_YYYY_MM``, and ``events_default`` for any time without
one. A partition must exist before rows of its month arrive (a month whose rows went to the
default partition can no longer get its own without moving them), so the migration makes them
for the span of stored data, a bulk import for the span it writes, and ``agora worker`` for the
months ahead. ``event_id`` stays unique across partitions through the small unpartitioned
``event_ids`` key table, kept by triggers (see docs/postgresql-at-volume.md). SQLite keeps one
plain table: every function here does nothing there.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, text

from agora.db.tables import as_utc

log = logging.getLogger(__name__)

#: Months past the current one that ``agora worker`` keeps partitions for.
MONTHS_AHEAD = 3
DEFAULT_PARTITION = "events_default"
#: Tables migration 0018 makes besides the metadata's: the key table and the partitions.
KEY_TABLE = "event_ids"
#: A setting a bulk writer turns on (``set_config(..., true)``, for one statement) after writing
#: the keys of its rows itself: the per-row insert trigger then stays out of the way.
KEYS_WRITTEN = "agora.event_keys_written"


def is_partitioned(conn: Connection) -> bool:
    """Whether this store's ``events`` is a partitioned table (PostgreSQL after 0018)."""
    if conn.dialect.name != "postgresql":
        return False
    kind = conn.execute(
        text("SELECT relkind FROM pg_class WHERE oid = to_regclass('events')")
    ).scalar()
    return kind == "p"


def month_start(moment: datetime) -> datetime:
    """The first instant (UTC) of ``moment``'s month."""
    moment = as_utc(moment)
    return datetime(moment.year, moment.month, 1, tzinfo=UTC)


def next_month(start: datetime) -> datetime:
    """The first instant of the month after the one ``start`` opens."""
    return datetime(start.year + start.month // 12, start.month % 12 + 1, 1, tzinfo=UTC)


def partition_name(start: datetime) -> str:
    return f"events_{start.year:04d}_{start.month:02d}"


def create_partition_sql(start: datetime, parent: str = "events") -> str:
    """``CREATE TABLE`` of the partition of ``start``'s month of ``parent``."""
    return (
        f"CREATE TABLE IF NOT EXISTS {partition_name(start)} PARTITION OF {parent} "
        f"FOR VALUES FROM ('{start.isoformat()}') TO ('{next_month(start).isoformat()}')"
    )


def existing_partitions(conn: Connection, parent: str = "events") -> set[str]:
    rows = conn.execute(
        text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = to_regclass(:parent)"
        ),
        {"parent": parent},
    )
    return {name for (name,) in rows}


def months_of(conn: Connection, table: str, column: str) -> list[datetime]:
    """The starts of the months (UTC) the times in ``table.column`` fall in."""
    rows = conn.execute(
        text(
            f"SELECT DISTINCT date_trunc('month', {column}, 'UTC') FROM {table} "
            f"WHERE {column} IS NOT NULL"
        )
    )
    return sorted(month_start(start) for (start,) in rows)


def ensure_event_partitions(conn: Connection, starts: Iterable[datetime]) -> list[str]:
    """Make the partitions of these months (given by any time in them) that do not exist yet;
    returns their names. A month the default partition already holds rows of is left to it
    (logged): it stays correct, only unpruned. Nothing happens on an unpartitioned store."""
    if not is_partitioned(conn):
        return []
    have = existing_partitions(conn)
    made: list[str] = []
    for start in sorted({month_start(moment) for moment in starts}):
        name = partition_name(start)
        if name in have:
            continue
        if _default_holds(conn, start):
            log.warning(
                "events of %s are in %s: no partition of their own", name, DEFAULT_PARTITION
            )
            continue
        conn.execute(text(create_partition_sql(start)))
        made.append(name)
    return made


class NewPartitions:
    """The month partitions a bulk writer makes, filled before they have an index.

    Rows of a month with no partition (and none of its rows in the default partition) go to a
    plain table named as that month's partition, itself a partition of a loading table with no
    index, trigger or foreign key; :meth:`attach` then builds the indexes of ``events``' other
    partitions over the rows at once and attaches each table as its month's partition
    (PostgreSQL checks its bounds and foreign keys there, set-based). Building an index over
    all the rows is several times cheaper than growing it row by row (bench/bulk_import.py).
    A month whose rows reached the default partition meanwhile (a concurrent writer) has its
    rows moved there instead, as :func:`ensure_event_partitions` leaves such a month."""

    LOADING = "agora_bulk_new_months"

    def __init__(self) -> None:
        self.months: list[datetime] = []

    def prepare(self, conn: Connection, starts: Iterable[datetime]) -> None:
        """Make sure each month (given by any time in it) has a partition or a loading table."""
        if not is_partitioned(conn):
            return
        have = existing_partitions(conn)
        for start in sorted({month_start(moment) for moment in starts}):
            if partition_name(start) in have or start in self.months:
                continue
            if _default_holds(conn, start):
                log.warning(
                    "events of %s are in %s: no partition of their own",
                    partition_name(start),
                    DEFAULT_PARTITION,
                )
                continue
            if not self.months:
                conn.execute(
                    text(
                        f"CREATE TABLE {self.LOADING} (LIKE events INCLUDING DEFAULTS "
                        'INCLUDING CONSTRAINTS) PARTITION BY RANGE ("timestamp")'
                    )
                )
            conn.execute(text(create_partition_sql(start, self.LOADING)))
            self.months.append(start)

    def attach(self, conn: Connection) -> list[str]:
        """Index every loading table as ``events``' partitions are and attach it to ``events``;
        returns the names of the partitions made."""
        if not self.months:
            return []
        conn.execute(text("SET LOCAL maintenance_work_mem = '256MB'"))
        indexes = _partition_indexes(conn)
        made: list[str] = []
        for start in self.months:
            name = partition_name(start)
            conn.execute(text(f"ALTER TABLE {self.LOADING} DETACH PARTITION {name}"))
            # held to the commit: no row of this month can reach the default partition now
            conn.execute(text(f"LOCK TABLE {DEFAULT_PARTITION} IN ACCESS EXCLUSIVE MODE"))
            if _default_holds(conn, start):
                log.warning(
                    "events of %s reached %s meanwhile: moved there", name, DEFAULT_PARTITION
                )
                conn.execute(text(f"SELECT set_config('{KEYS_WRITTEN}', 'on', true)"))
                conn.execute(text(f"INSERT INTO events SELECT * FROM {name}"))
                conn.execute(text(f"SELECT set_config('{KEYS_WRITTEN}', 'off', true)"))
                conn.execute(text(f"DROP TABLE {name}"))
                continue
            for statement in indexes:
                conn.execute(text(statement.replace("{table}", name)))
            conn.execute(
                text(
                    f"ALTER TABLE events ATTACH PARTITION {name} FOR VALUES FROM "
                    f"('{start.isoformat()}') TO ('{next_month(start).isoformat()}')"
                )
            )
            made.append(name)
        conn.execute(text(f"DROP TABLE {self.LOADING}"))
        self.months = []
        return made


def _partition_indexes(conn: Connection) -> list[str]:
    """Statements giving a table ``{table}`` the indexes ``events`` gives each partition: those
    behind a constraint (the primary key) as that constraint, the others as plain indexes, all
    named as PostgreSQL names a partition's own."""
    rows = conn.execute(
        text(
            "SELECT pg_get_indexdef(i.indexrelid), pg_get_constraintdef(c.oid) FROM pg_index i "
            "LEFT JOIN pg_constraint c ON c.conindid = i.indexrelid AND c.conrelid = i.indrelid "
            "WHERE i.indrelid = 'events'::regclass ORDER BY i.indexrelid"
        )
    )
    statements = []
    for index, constraint in rows:
        if constraint is not None:
            statements.append(f"ALTER TABLE {{table}} ADD {constraint}")
        else:
            statements.append(
                re.sub(
                    r"^CREATE (UNIQUE )?INDEX \S+ ON ONLY \S+ ",
                    r"CREATE \1INDEX ON {table} ",
                    index,
                )
            )
    return statements


def ensure_months_ahead(conn: Connection, now: datetime | None = None) -> list[str]:
    """The partitions of this month and the :data:`MONTHS_AHEAD` next ones (``agora worker``)."""
    return ensure_event_partitions(conn, months_ahead(now or datetime.now(UTC)))


def keep_months_ahead(
    engine: Engine, stop: threading.Event, every_seconds: float = 6 * 3600
) -> list[str]:
    """Make the partitions of the months ahead now and then every ``every_seconds`` until
    ``stop`` is set (``agora worker`` runs this in a thread); returns the first round's names."""
    made = _ensure_ahead(engine)
    threading.Thread(
        target=_keep_ahead, args=(engine, stop, every_seconds), name="agora-partitions", daemon=True
    ).start()
    return made


def _ensure_ahead(engine: Engine) -> list[str]:
    with engine.begin() as conn:
        return ensure_months_ahead(conn)


def _keep_ahead(engine: Engine, stop: threading.Event, every_seconds: float) -> None:
    while not stop.wait(every_seconds):
        try:
            _ensure_ahead(engine)
        except Exception:  # noqa: BLE001 - the store away for a while: try again next round
            log.exception("could not make the partitions of the months ahead")


def months_ahead(now: datetime) -> list[datetime]:
    """The starts of ``now``'s month and of the :data:`MONTHS_AHEAD` next ones."""
    found = [month_start(now)]
    for _ in range(MONTHS_AHEAD):
        found.append(next_month(found[-1]))
    return found


def _default_holds(conn: Connection, start: datetime) -> bool:
    found = conn.execute(
        text(
            f"SELECT EXISTS (SELECT 1 FROM {DEFAULT_PARTITION} "
            'WHERE "timestamp" >= :lo AND "timestamp" < :hi)'
        ),
        {"lo": start, "hi": next_month(start)},
    )
    return bool(found.scalar())


def managed_outside_metadata(
    obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    """An ``include_object`` for Alembic's autogenerate: False for what migration 0018 makes on
    PostgreSQL beyond the table metadata (the partitions, the key table, and the constraints a
    partitioned table cannot have: ``event_id`` unique alone, a foreign key to ``events.id``),
    so comparing the metadata with a migrated store shows only real differences."""
    if type_ == "table" and reflected and compare_to is None and name:
        return not (name == KEY_TABLE or name.startswith("events_"))
    if type_ == "unique_constraint" and name == "uq_events_event_id":
        return False
    if type_ == "foreign_key_constraint" and getattr(obj, "referred_table", None) is not None:
        return obj.referred_table.name != "events"
    return True
