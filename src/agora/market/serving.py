"""A serving process's ad book, kept in memory so a feed page's ad step only does arithmetic.

:class:`MarketCache` holds the :class:`agora.market.service.Book` (running campaigns, creatives,
segments' members, today's spend, predicted CTRs, the traffic forecast). A daemon thread
(:meth:`MarketCache.start`, run by the API's lifespan) reads it afresh every ``book_seconds``,
keeping the CTRs of known (campaign, creative) pairs and recomputing them all every
``ctr_refresh_seconds``; pages meanwhile use the previous book. So:

* a campaign created, edited or paused through another process, and another process's clicks,
  reach this process's pages within ``book_seconds``;
* in this process, a campaign change (:meth:`MarketCache.changed`) makes the next page read the
  book first, and a click's cost (:meth:`MarketCache.charged`) counts at once;
* the book is read on the page's path only when there is none yet, on a new UTC day, after a
  change in this process, or when no thread keeps it and it is older than ``book_seconds``.

Losing the cache loses nothing: the book is rebuilt from the store.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from datetime import UTC, date, datetime

import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from agora.market.config import MarketConfig
from agora.market.service import Book, Placement, Viewer, read_book, serve_ads

log = logging.getLogger(__name__)


class MarketCache:
    """The ad book of one serving process (see the module docstring)."""

    def __init__(self, sessions: sessionmaker[Session], config: MarketConfig):
        self.sessions = sessions
        self.config = config
        self._book: Book | None = None
        self._read_at = float("-inf")  # monotonic time of the last read
        self._ctrs_at = float("-inf")  # ... and of the last one that recomputed every CTR
        self._changes = 0  # campaign changes made by this process
        self._read_changes = 0  # ... of which the current book holds
        self._lock = threading.Lock()
        self._rng = np.random.default_rng()  # pacing's draws (a new one costs a page 40 us)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def book(self, session: Session, now: datetime) -> Book:
        """The current book, read first (on a session of its own on ``session``'s database)
        when it is due on the page's path (see the module docstring)."""
        book = self._book
        if (
            book is None
            or book.day != now.date()
            or self._read_changes < self._changes
            or (
                self._thread is None
                and time.monotonic() - self._read_at >= self.config.book_seconds
            )
        ):
            with Session(session.get_bind()) as own:
                return self._read(own, now, due=self._read_at)
        return book

    def _read(self, session: Session, now: datetime, due: float | None = None) -> Book:
        """Read the book (unless another thread read it since ``due``, the read time the
        caller found stale, and it holds every change of this process and today)."""
        with self._lock:
            held = self._book
            if (
                due is not None
                and held is not None
                and self._read_at > due
                and self._read_changes >= self._changes
                and held.day == now.date()
            ):
                return held
            changes, clock = self._changes, time.monotonic()
            every_ctr = clock - self._ctrs_at >= self.config.ctr_refresh_seconds
            book = read_book(session, self.config, now, None if every_ctr else held)
            self._book, self._read_at, self._read_changes = book, clock, changes
            if every_ctr:
                self._ctrs_at = clock
            return book

    def changed(self) -> None:
        """A campaign was created or changed by this process (after its commit): the next page
        reads the book first."""
        self._changes += 1

    def charged(self, campaign_pk: int, cost: float, day: date) -> None:
        """A click of this process cost ``cost`` on ``day`` (after its commit): it counts in
        the book's spend at once (the next read has it from the store)."""
        book = self._book
        if book is not None and book.day == day:
            book.spent[campaign_pk] = book.spent.get(campaign_pk, 0.0) + cost

    def running_creatives(self, session: Session, now: datetime) -> frozenset[str]:
        """Creatives of the campaigns running now (the feed never shows them as organic)."""
        return self.book(session, now).running_creatives(now)

    def serve(
        self,
        session: Session,
        viewer: Viewer,
        page: Sequence[tuple[str, Sequence[str]]],
        now: datetime,
    ) -> list[Placement]:
        """The page's ads from the book (:func:`agora.market.service.serve_ads`)."""
        book = self.book(session, now)
        return serve_ads(session, viewer, page, self.config, now, self._rng, book=book)

    # -- the background thread ---------------------------------------------------------------
    def start(self) -> None:
        """Read the book every ``book_seconds`` in a daemon thread (the first read at once)."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="agora-ad-book", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _run(self) -> None:
        while True:
            try:
                with self.sessions() as session:
                    self._read(session, datetime.now(UTC))
            except Exception:  # the last book stays; the next round tries again
                log.exception("ad book: reading it failed; retrying")
            if self._stop.wait(self.config.book_seconds):
                return
