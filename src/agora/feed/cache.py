"""In-process caches that keep the feed's per-request work small.

* :class:`Catalogue`: every item's feed metadata (id, title, tags, author, created), each
  author's first post time and the items moderation took down, in memory. New items and
  take-downs are picked up at most ``refresh_seconds`` after they are stored (one query for
  item rows with a larger id, one for take-downs); edits and deletions at the next
  full reload (``reload_seconds``, run in a background thread while requests keep using the
  last snapshot). Items deleted in between are dropped when a page is recorded (the impression
  write checks they still exist).
* Model candidates per user: a model's best items for a user, keyed by the model version and
  the user's event count and latest event time, so a new event (or a new model) recomputes them
  and everything else is served from memory (LRU of ``max_users`` entries).
* Exposure of new items (impressions and engagements, for the exploration bandit), shared by
  all users and recomputed in the background at most every ``exposure_seconds``.
* Each tie's recent events and posts (the in-network source), for ``tie_seconds``: a user
  followed by many is read once for all of them.
* One item index per factor model version (:mod:`agora.feed.retrieval`).
* The ranked but unserved items of each browsing session (pages 2 and 3 come from memory while
  the user's events, feedback and controls are unchanged). With ``AGORA_REDIS_URL`` they live in
  Redis, so with several workers any of them serves the next page; Redis errors only cost a
  fresh ranking.

One :class:`FeedCache` lives on the API app (``app.state.feed_cache``); each worker process has
its own (except the Redis part). Everything cached can be rebuilt from the store, so losing it
loses nothing.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from agora.api import metrics
from agora.db.tables import Item, User
from agora.ingest.schemas import as_utc
from agora.moderation.service import removed_item_ids

log = logging.getLogger(__name__)

PAGES_KEY = "agora:feed:pages:"
PAGES_TTL_SECONDS = 1800


@dataclass(frozen=True)
class Snapshot:
    """Items as of one catalogue refresh (immutable: readers never see a half update)."""

    pks: np.ndarray
    ids: list[str]
    titles: list[str]
    tags: list[list[str]]
    authors: list[str | None]
    created: np.ndarray  # epoch seconds
    index: dict[str, int] = field(repr=False)
    author_first: dict[str, float] = field(repr=False)  # author -> first post, epoch seconds
    newest_first: np.ndarray = field(repr=False)  # positions by created time, newest first
    created_at: list[datetime] = field(repr=False)
    removed: frozenset[int] = frozenset()  # pks of items moderation took down

    def summary(self, item: str) -> dict[str, Any] | None:
        """Title, tags, author and created time of ``item`` (None if unknown)."""
        pos = self.index.get(item)
        if pos is None:
            return None
        return {
            "title": self.titles[pos],
            "tags": self.tags[pos],
            "author_id": self.authors[pos],
            "created": self.created_at[pos],
        }

    def created_since(self, since: float, limit: int) -> np.ndarray:
        """Positions of items created at or after ``since``, newest first, at most ``limit``."""
        newest = -self.created[self.newest_first]  # ascending
        count = int(np.searchsorted(newest, -since, side="right"))
        return self.newest_first[: min(count, limit)]


class Background:
    """Runs one refresh at a time in a daemon thread with its own session, so a request never
    waits for a slow recomputation: it keeps using the previous value meanwhile."""

    def __init__(self, name: str):
        self.name = name
        self._running = threading.Lock()

    def run(self, session: Session, work: Callable[[Session], None]) -> None:
        """Start ``work`` on a new session on ``session``'s database, unless one is running."""
        if not self._running.acquire(blocking=False):
            return
        bind = session.get_bind()

        def target() -> None:
            try:
                with Session(bind) as own, metrics.tracked(metrics.FEED_REFRESHES_RUNNING):
                    work(own)
            except Exception:  # the old value stays; the next due refresh tries again
                log.exception("feed cache: %s failed", self.name)
            finally:
                self._running.release()

        threading.Thread(target=target, name=f"agora-{self.name}", daemon=True).start()


def _empty() -> Snapshot:
    nothing = np.empty(0, np.int64)
    return Snapshot(nothing, [], [], [], [], np.empty(0), {}, {}, nothing, [])


class Catalogue:
    """Every item's feed metadata in memory (see the module docstring)."""

    def __init__(
        self, refresh_seconds: float = 1.0, reload_seconds: float = 300.0, background: bool = True
    ):
        self.refresh_seconds = refresh_seconds
        self.reload_seconds = reload_seconds
        self._snapshot = _empty()
        self._loaded_at = float("-inf")
        self._refreshed_at = float("-inf")
        self._lock = threading.Lock()
        self._reload = Background("catalogue reload") if background else None

    def get(self, session: Session) -> Snapshot:
        """The current snapshot, refreshed from ``session`` first when it is due. A due full
        reload runs in the background (when enabled) while requests use the last snapshot."""
        clock = time.monotonic()
        if clock - self._refreshed_at < self.refresh_seconds:
            return self._snapshot
        with self._lock:
            clock = time.monotonic()
            if clock - self._loaded_at >= self.reload_seconds:
                self._loaded_at = clock
                if self._reload is None or not len(self._snapshot.pks):
                    self._snapshot = self._read(session, _empty())
                else:
                    self._reload.run(session, self._swap_in_full_read)
            if clock - self._refreshed_at >= self.refresh_seconds:
                snapshot = self._read(session, self._snapshot)
                self._snapshot = replace(snapshot, removed=frozenset(removed_item_ids(session)))
            self._refreshed_at = clock
            return self._snapshot

    def _swap_in_full_read(self, session: Session) -> None:
        full = self._read(session, _empty())
        with self._lock:  # items stored during the read come with the next refresh
            self._snapshot = replace(full, removed=self._snapshot.removed)

    @staticmethod
    def _read(session: Session, base: Snapshot) -> Snapshot:
        """``base`` plus the items stored after its newest one."""
        after = int(base.pks.max()) if len(base.pks) else 0
        rows = session.execute(
            select(Item.id, Item.external_id, Item.title, Item.tags, User.external_id, Item.created)
            .outerjoin(User, Item.author_id == User.id)
            .where(Item.id > after)
            .order_by(Item.id)
        ).all()
        if not rows and len(base.pks):
            return base
        ids = base.ids + [r[1] for r in rows]
        authors = base.authors + [r[4] for r in rows]
        new_created = [as_utc(r[5]) for r in rows]
        created_at = base.created_at + new_created
        created = np.concatenate([base.created, [c.timestamp() for c in new_created]])
        first = dict(base.author_first)
        for author, stamp in zip(authors[len(base.ids) :], created[len(base.ids) :], strict=True):
            if author is not None and stamp < first.get(author, float("inf")):
                first[author] = float(stamp)
        if not base.pks.size:  # a full read: first posts over every item, including old ones
            first = {
                a: as_utc(t).timestamp()
                for a, t in session.execute(
                    select(User.external_id, func.min(Item.created))
                    .join(Item, Item.author_id == User.id)
                    .group_by(User.external_id)
                )
            }
        return Snapshot(
            newest_first=np.argsort(-created, kind="stable"),
            created_at=created_at,
            pks=np.concatenate([base.pks, np.array([r[0] for r in rows], dtype=np.int64)]),
            ids=ids,
            titles=base.titles + [r[2] for r in rows],
            tags=base.tags + [list(r[3] or []) for r in rows],
            authors=authors,
            created=created,
            index={item: pos for pos, item in enumerate(ids)},
            author_first=first,
        )


class FeedCache:
    """The caches one feed-serving process keeps (see the module docstring)."""

    def __init__(
        self,
        refresh_seconds: float = 1.0,
        reload_seconds: float = 300.0,
        exposure_seconds: float = 10.0,
        tie_seconds: float = 10.0,
        max_users: int = 20_000,
        redis_url: str | None = None,
        concurrent_builds: int = 1,
        background: bool = True,
    ):
        self.catalogue = Catalogue(refresh_seconds, reload_seconds, background)
        self._exposure_refresh = Background("exposure") if background else None
        self._builds = threading.BoundedSemaphore(concurrent_builds)
        self._redis = None
        if redis_url:
            import redis

            self._redis = redis.Redis.from_url(redis_url, socket_timeout=0.5)
        self.exposure_seconds = exposure_seconds
        self.tie_seconds = tie_seconds
        self._ties: OrderedDict[int, tuple[float, Any]] = OrderedDict()
        self.max_users = max_users
        self._candidates: OrderedDict[Hashable, Any] = OrderedDict()
        self._exposure: tuple[float, Hashable, Any] = (float("-inf"), None, None)
        self._per_model: dict[str, tuple[str, Any]] = {}
        self._pages: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()
        self._build_lock = threading.Lock()

    @contextmanager
    def building(self) -> Iterator[None]:
        """Held while a page is built: a page is CPU work under the GIL, so a worker builds
        ``concurrent_builds`` at a time and lets the rest wait (bench/serve_load.py, 32
        clients: 82 pages/s with one at a time, 45 with no limit). Both counts are metrics."""
        with metrics.tracked(metrics.FEED_PAGE_BUILDS.labels("waiting")):
            self._builds.acquire()
        try:
            with metrics.tracked(metrics.FEED_PAGE_BUILDS.labels("building")):
                yield
        finally:
            self._builds.release()

    def candidates(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        """The cached value for ``key`` (a model version and user state), else ``compute()``."""
        with self._lock:
            if key in self._candidates:
                self._candidates.move_to_end(key)
                return self._candidates[key]
        value = compute()
        with self._lock:
            self._candidates[key] = value
            while len(self._candidates) > self.max_users:
                self._candidates.popitem(last=False)
        return value

    def tie_activity(
        self, ties: list[int], fetch: Callable[[list[int]], dict[int, Any]]
    ) -> dict[int, Any]:
        """Each tie's recent activity, from memory when read less than ``tie_seconds`` ago,
        else ``fetch(missing ties)`` (one read serves every follower of a tie meanwhile)."""
        clock = time.monotonic()
        found, missing = {}, []
        with self._lock:
            for tie in ties:
                held = self._ties.get(tie)
                if held is not None and clock - held[0] < self.tie_seconds:
                    found[tie] = held[1]
                else:
                    missing.append(tie)
        if missing:
            fetched = fetch(missing)
            found.update(fetched)
            with self._lock:
                for tie, value in fetched.items():
                    self._ties[tie] = (clock, value)
                    self._ties.move_to_end(tie)
                while len(self._ties) > self.max_users:
                    self._ties.popitem(last=False)
        return found

    def keep_pages(self, browsing: str, pages: dict[str, Any]) -> None:
        """Hold a browsing session's ranked but unserved items (JSON-able): in Redis for
        ``PAGES_TTL_SECONDS`` when configured (any worker can serve the next page), else in
        this process (LRU, ``max_users`` sessions)."""
        if self._redis is not None:
            try:
                self._redis.set(PAGES_KEY + browsing, json.dumps(pages), ex=PAGES_TTL_SECONDS)
                return
            except Exception as exc:  # redis.RedisError; the next page is ranked afresh
                log.warning("feed page cache: redis write failed: %s", exc)
                return
        with self._lock:
            self._pages[browsing] = pages
            self._pages.move_to_end(browsing)
            while len(self._pages) > self.max_users:
                self._pages.popitem(last=False)
            metrics.FEED_SESSIONS_HELD.set(len(self._pages))

    def take_pages(self, browsing: str) -> dict[str, Any] | None:
        """Remove and return what :meth:`keep_pages` holds for a session (None if nothing)."""
        if self._redis is not None:
            try:
                raw = self._redis.getdel(PAGES_KEY + browsing)
            except Exception as exc:  # redis.RedisError: rank afresh
                log.warning("feed page cache: redis read failed: %s", exc)
                return None
            return json.loads(raw) if raw is not None else None
        with self._lock:
            pages = self._pages.pop(browsing, None)
            metrics.FEED_SESSIONS_HELD.set(len(self._pages))
            return pages

    def per_model(self, name: str, version: str, build: Callable[[], Any]) -> Any:
        """An object built once per model version (an item index); older versions' dropped."""
        with self._build_lock:
            held = self._per_model.get(name)
            if held is None or held[0] != version:
                held = (version, build())
                self._per_model[name] = held
            return held[1]

    def exposure(self, session: Session, key: Hashable, compute: Callable[[Session], Any]) -> Any:
        """Exposure statistics of new items, recomputed when older than ``exposure_seconds``
        (in the background when enabled and a value for ``key`` exists: until it is done,
        requests use the previous one)."""
        stamp, cached_key, value = self._exposure
        if cached_key == key and time.monotonic() - stamp < self.exposure_seconds:
            return value
        if cached_key == key and self._exposure_refresh is not None:
            self._exposure_refresh.run(session, lambda own: self._keep_exposure(key, compute(own)))
            return value
        value = compute(session)
        self._keep_exposure(key, value)
        return value

    def _keep_exposure(self, key: Hashable, value: Any) -> None:
        self._exposure = (time.monotonic(), key, value)


#: For callers without a long-lived cache (tests, scripts): nothing is kept between calls.
def uncached() -> FeedCache:
    return FeedCache(
        refresh_seconds=0.0,
        reload_seconds=0.0,
        exposure_seconds=0.0,
        tie_seconds=0.0,
        max_users=0,
        background=False,
    )
