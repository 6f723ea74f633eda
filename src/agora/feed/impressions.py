"""Feed impressions written in batches behind the requests, not in each page's transaction.

One :class:`ImpressionBuffer` per serving process (:func:`agora.wiring.wire`; the API starts it
and stops it in its lifespan). A page's impression rows join the buffer when the page's
transaction commits (never when it rolls back, never before the page's own writes, such as a new
user's row); a daemon thread writes everything waiting at least every ``flush_seconds``, in one
statement on its own session (:func:`insert_rows`: a ``COPY`` on PostgreSQL). A page's
impressions are therefore in the store within about ``flush_seconds``; until then
:meth:`ImpressionBuffer.pending` shows them to the reads that must see them at once (a browsing
session never repeats an item). Counts that tolerate a second's lag
(exposure of new items, ``/feed/sources``, experiment metrics) read the table alone.

What can be lost: a clean stop (SIGTERM, SIGINT: uvicorn runs the lifespan's shutdown) writes
everything; ``kill -9`` loses the impressions of the last ``flush_seconds`` of the process.
Events are never buffered (``POST /events`` commits before it answers).

The buffer is bounded (``max_rows``): an ``add`` that reaches the bound writes at once, in the
request (no impression is dropped while the database works). A failed write keeps its rows for
the next one, up to the bound: while the database fails, the oldest rows past it are dropped
and counted. Rows whose user or item was erased before they were written are dropped (they
would break the foreign keys). Logs carry counts and error classes only (never a row: they name
users and sessions).
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Sequence
from operator import itemgetter
from typing import Any

from sqlalchemy import Dialect, Table, event, select
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session, SessionTransaction, sessionmaker

from agora.api import metrics
from agora.db.tables import FeedImpression, Item, User

log = logging.getLogger(__name__)

Row = dict[str, Any]
#: the columns of a row, in the order the writes send them
COLUMNS = ("user_id", "item_id", "session", "position", "source", "served")
_TABLE: Table = FeedImpression.__table__
#: ``Session.info`` key of the rows a transaction adds when it commits
_ON_COMMIT = "agora.feed.impressions"


class ImpressionBuffer:
    """Impression rows (dicts for ``FeedImpression.__table__.insert()``: ``user_id``,
    ``item_id``, ``session``, ``position``, ``source``, ``served``) waiting to be written in
    batches by a daemon thread (see the module docstring). Thread-safe."""

    def __init__(
        self, sessions: sessionmaker[Session], flush_seconds: float = 1.0, max_rows: int = 10_000
    ) -> None:
        """``sessions`` opens the flushes' own sessions (and is the factory whose transactions
        :meth:`add_after_commit` follows)."""
        self.flush_seconds = flush_seconds
        self.max_rows = max_rows
        self._sessions = sessions
        self._rows: list[Row] = []  # not yet written, oldest first
        # (user pk, browsing session) -> (item pk, position) -> rows: the unwritten ones and
        # those of the last write (a read whose snapshot began before it may not see them)
        self._index: dict[tuple[int, str], Counter[tuple[int, int]]] = {}
        self._last_written: list[Row] = []
        self._lock = threading.Lock()  # guards the rows and the index
        self._writing = threading.Lock()  # one write at a time, in order
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        event.listen(sessions, "after_commit", self._committed)
        event.listen(sessions, "after_transaction_end", self._ended)

    @property
    def waiting(self) -> int:
        """Rows not yet written."""
        with self._lock:
            return len(self._rows)

    def start(self) -> None:
        """Start the flusher thread (once)."""
        if self._thread is None:
            self._stopping.clear()
            self._thread = threading.Thread(target=self._run, name="agora-impressions", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop the flusher thread and write what is left (a clean shutdown loses nothing)."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self.flush()
        if left := self.waiting:
            log.error("feed impressions: %d rows could not be written before stopping", left)

    def add(self, rows: Sequence[Row]) -> None:
        """Buffer ``rows``; reaching ``max_rows`` writes them now (the caller waits)."""
        if not rows:
            return
        with self._lock:
            self._rows.extend(rows)
            self._index_rows(rows, 1)
            full = len(self._rows) >= self.max_rows
        metrics.IMPRESSIONS_BUFFERED.inc(len(rows))
        if full:
            self.flush()

    def add_after_commit(self, session: Session, rows: Sequence[Row]) -> None:
        """Buffer ``rows`` when ``session``'s transaction commits; nothing if it rolls back.
        ``session`` must come from the buffer's sessionmaker (the one it follows)."""
        if not isinstance(session, self._sessions.class_):
            raise ValueError("the session does not come from this buffer's sessionmaker")
        session.info.setdefault(_ON_COMMIT, []).extend(rows)

    def pending(self, user_pk: int, session: str) -> dict[int, int]:
        """Items shown to ``user_pk`` in browsing ``session`` whose impressions a read of the
        table may not see yet (waiting, or written by the last flush): item primary key ->
        position."""
        with self._lock:
            return {item: position for item, position in self._index.get((user_pk, session), ())}

    def flush(self) -> int:
        """Write every waiting row now, in one statement; returns how many were written.
        A failure is logged and its rows kept for the next flush (up to ``max_rows``)."""
        with self._writing:
            with self._lock:
                batch, self._rows = self._rows, []
            try:
                written, gone = self._write(batch)
            except Exception as exc:  # the database is down or refuses: try again next time
                metrics.IMPRESSION_FLUSHES.labels("failed").inc()
                log.warning(
                    "feed impressions: writing %d rows failed (%s); kept for the next flush",
                    len(batch),
                    exc.__class__.__name__,
                )
                self._keep(batch)
                return 0
            with self._lock:
                self._index_rows(self._last_written, -1)
                self._index_rows(gone, -1)
                self._last_written = written
            if batch:
                metrics.IMPRESSION_FLUSHES.labels("ok").inc()
                metrics.IMPRESSIONS_WRITTEN.inc(len(written))
                metrics.IMPRESSIONS_BUFFERED.dec(len(batch))
            if gone:
                metrics.IMPRESSIONS_DROPPED.labels("gone").inc(len(gone))
                log.info("feed impressions: %d rows of erased users or items dropped", len(gone))
            return len(written)

    # -- internals ---------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stopping.wait(self.flush_seconds):
            self.flush()

    def _write(self, batch: list[Row]) -> tuple[list[Row], list[Row]]:
        """Insert ``batch``; returns the rows written and those left out because their user or
        item was erased while they waited."""
        if not batch:
            return batch, []
        try:
            with self._sessions.begin() as session:
                insert_rows(session, batch)
            return batch, []
        except IntegrityError:  # a foreign key: look which rows lost their user or item
            kept: list[Row] = []
            gone: list[Row] = []
            with self._sessions.begin() as session:
                users, items = _stored(session, batch)
                for row in batch:
                    stored = row["user_id"] in users and row["item_id"] in items
                    (kept if stored else gone).append(row)
                if kept:
                    insert_rows(session, kept)
            return kept, gone

    def _keep(self, batch: list[Row]) -> None:
        """Put a failed batch back before the rows added since, dropping the oldest past the
        bound."""
        with self._lock:
            self._rows = batch + self._rows
            over = len(self._rows) - self.max_rows
            dropped, self._rows = (
                (self._rows[:over], self._rows[over:]) if over > 0 else ([], self._rows)
            )
            self._index_rows(dropped, -1)
        if dropped:
            metrics.IMPRESSIONS_BUFFERED.dec(len(dropped))
            metrics.IMPRESSIONS_DROPPED.labels("bound").inc(len(dropped))
            log.error(
                "feed impressions: %d rows dropped (the database keeps failing and the buffer "
                "holds at most %d)",
                len(dropped),
                self.max_rows,
            )

    def _index_rows(self, rows: Sequence[Row], sign: int) -> None:
        """Count ``rows`` in (1) or out of (-1) the pending index (the lock is held)."""
        for row in rows:
            key = (row["user_id"], row["session"])
            shown = self._index.setdefault(key, Counter())
            item = (row["item_id"], row["position"])
            shown[item] += sign
            if shown[item] <= 0:
                del shown[item]
                if not shown:
                    del self._index[key]

    def _committed(self, session: Session) -> None:
        if not session.in_nested_transaction():  # a savepoint's release is not the commit
            self.add(session.info.pop(_ON_COMMIT, ()))

    def _ended(self, session: Session, transaction: SessionTransaction) -> None:
        if transaction.parent is None:  # rolled back (a commit took its rows already)
            session.info.pop(_ON_COMMIT, None)


def insert_rows(session: Session, rows: Sequence[Row]) -> None:
    """Insert impression rows as one statement, past SQLAlchemy's binding of each row (most of
    what a row cost): a ``COPY`` on PostgreSQL through psycopg; on SQLite one executemany of
    driver values, each column's bind processor run once per distinct value (the pages of a
    flush share a few ``served`` times). The rows stored are those ``table.insert()`` stores
    (it writes them on other drivers); a refused foreign key raises SQLAlchemy's
    ``IntegrityError`` as a statement would."""
    connection = session.connection()
    dialect = connection.dialect
    if dialect.name == "postgresql" and dialect.driver == "psycopg":
        copy = f"COPY {_TABLE.name} ({', '.join(COLUMNS)}) FROM STDIN"
        try:
            with connection.connection.cursor() as cursor, cursor.copy(copy) as writing:
                for row in rows:
                    writing.write_row([row[name] for name in COLUMNS])
        except dialect.loaded_dbapi.Error as exc:
            raise DBAPIError.instance(copy, None, exc, dialect.loaded_dbapi.Error) from exc
    elif dialect.name == "sqlite":
        insert = _TABLE.insert().compile(dialect=dialect, column_keys=list(COLUMNS))
        order = insert.positiontup or ()
        connection.exec_driver_sql(str(insert), _driver_values(rows, order, dialect))
    else:
        session.execute(_TABLE.insert(), rows)


def _driver_values(rows: Sequence[Row], order: Sequence[str], dialect: Dialect) -> list[tuple]:
    """``rows`` as the driver's tuples of the columns in ``order``, through the columns' bind
    processors (each once per distinct value)."""
    pick = itemgetter(*order)
    processed = [
        (index, process, {})
        for index, name in enumerate(order)
        if (process := _TABLE.c[name].type.dialect_impl(dialect).bind_processor(dialect))
    ]
    if not processed:
        return [pick(row) for row in rows]
    values = []
    for row in rows:
        row_values = list(pick(row))
        for index, process, done in processed:
            value = row_values[index]
            if value not in done:
                done[value] = process(value)
            row_values[index] = done[value]
        values.append(tuple(row_values))
    return values


def _stored(session: Session, rows: list[Row]) -> tuple[set[int], set[int]]:
    """Which of the rows' users and items are still in the store."""
    users = {r["user_id"] for r in rows}
    items = {r["item_id"] for r in rows}
    return (
        set(session.scalars(select(User.id).where(User.id.in_(users)))),
        set(session.scalars(select(Item.id).where(Item.id.in_(items)))),
    )
