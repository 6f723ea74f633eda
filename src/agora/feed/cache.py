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
  and everything else is served from memory (LRU of ``max_users`` entries, each dropped
  ``ttl_seconds`` after it was stored).
* Exposure of new items (impressions and engagements, for the exploration bandit), shared by
  all users and recomputed in the background at most every ``exposure_seconds``.
* Each tie's recent events and posts (the in-network source), for ``tie_seconds``: a user
  followed by many is read once for all of them.
* The ranked but unserved items of each browsing session (pages 2 and 3 come from memory while
  the user's events, feedback and controls are unchanged), as JSON, for ``ttl_seconds``: at most
  ``max_sessions`` sessions and ``max_page_bytes`` bytes per process (the least recently kept
  go first). With ``AGORA_REDIS_URL`` they live in Redis (with the same lifetime), so with
  several workers any of them serves the next page; Redis errors only cost a fresh ranking.

Per-user and per-session state is bounded by count, by age and (pages) by bytes, so a worker's
memory levels off however many users it serves (bench/feed_memory.py measures where).

One :class:`FeedCache` lives on the API app (``app.state.feed_cache``); each worker process has
its own (except the Redis part). Everything cached can be rebuilt from the store, so losing it
loses nothing.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import cached_property
from typing import Any

import numpy as np
import scipy.sparse as sp
from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session, sessionmaker

from agora.api import metrics
from agora.db.queries import THREAD_COLUMNS, thread_key
from agora.db.tables import FeedImpression, Item, User
from agora.feed.bounded import Bounded
from agora.feed.ready import KnownItems, Ready
from agora.feed.state import UserStates
from agora.feed.store import CandidateStore
from agora.ingest.schemas import as_utc
from agora.moderation.service import removed_item_ids

log = logging.getLogger(__name__)
_MISSING = object()
_GENERATIONS = itertools.count(1)

SHOWN_KEY = "agora:feed:shown:"
#: Item pks up to 4x the catalogue's size plus this are looked up in a table (Snapshot.positions).
DENSE_PK_SLACK = 1_000_000
MAX_PAGE = 100  # positions of page p are (p - 1) * MAX_PAGE onwards
_SHOWN = select(FeedImpression.item_id, FeedImpression.position).where(
    FeedImpression.user_id == bindparam("user_pk"), FeedImpression.session == bindparam("browsing")
)


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
    threads: list[str] = field(repr=False)  # each item's thread (queries.thread_key)
    removed: frozenset[int] = frozenset()  # pks of items moderation took down
    # the same items as arrays, for the online path's vectorised filters and re-ranking
    author_pks: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64), repr=False)
    # per item, when its author first posted (epoch seconds; -inf without an author)
    first_post: np.ndarray = field(default_factory=lambda: np.empty(0), repr=False)
    thread_codes: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64), repr=False)
    tag_matrix: sp.csr_matrix = field(
        default_factory=lambda: sp.csr_matrix((0, 1), dtype=np.float64), repr=False
    )  # items x tag vocabulary, 1 where the item carries the tag
    vocab: Vocabulary = field(default_factory=lambda: Vocabulary(), repr=False)
    # which set of items this is: a new number whenever items are added or reloaded (the key
    # of whatever is derived from the positions, such as a model's item -> pk map)
    generation: int = field(default_factory=lambda: next(_GENERATIONS))
    # which full read this snapshot extends: positions stay valid within one lineage (items are
    # only appended); a full reload (deleted items gone) starts a new one
    lineage: int = field(default_factory=lambda: next(_GENERATIONS))

    @cached_property
    def _position_of(self) -> np.ndarray | None:
        """pk -> catalogue position (-1: not held), a table while pks are dense enough
        (item pks count up from 1; deleted items leave holes). A lookup in it costs a
        fraction of a binary search over the pks, which every list a page or a refresh
        places did."""
        if not len(self.pks) or int(self.pks[-1]) > 4 * len(self.pks) + DENSE_PK_SLACK:
            return None
        table = np.full(int(self.pks[-1]) + 1, -1, np.int32)
        table[self.pks] = np.arange(len(self.pks), dtype=np.int32)
        return table

    def positions(self, pks: np.ndarray) -> np.ndarray:
        """Catalogue positions of item ``pks``; -1 where not held."""
        pks = np.asarray(pks, dtype=np.int64)
        table = self._position_of
        if table is not None:
            inside = (pks >= 0) & (pks < len(table))
            return np.where(inside, table[np.where(inside, pks, 0)], -1).astype(np.int64)
        at = np.searchsorted(self.pks, pks)
        at[at >= len(self.pks)] = 0
        found = len(self.pks) > 0
        return np.where(found & (self.pks[at] == pks) if found else False, at, -1)

    def removed_mask(self, positions: np.ndarray) -> np.ndarray:
        """Which of the items at ``positions`` moderation took down."""
        if not self.removed:
            return np.zeros(len(positions), dtype=bool)
        return np.isin(self.pks[positions], np.fromiter(self.removed, np.int64))

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

    def thread(self, item: str) -> str:
        """The thread ``item`` belongs to (itself for an item the snapshot does not hold)."""
        pos = self.index.get(item)
        return self.threads[pos] if pos is not None else f"id:{item}"

    def created_since(self, since: float, limit: int) -> np.ndarray:
        """Positions of items created at or after ``since``, newest first, at most ``limit``."""
        count = int(np.searchsorted(self.ages, -since, side="right"))
        return self.newest_first[: min(count, limit)]

    @cached_property
    def ages(self) -> np.ndarray:
        """Minus the creation times in ``newest_first`` order (ascending: searchable)."""
        return -self.created[self.newest_first]


@dataclass
class Vocabulary:
    """Integer codes for tags and threads, shared by successive snapshots (codes are only ever
    added, so an older snapshot's codes stay valid)."""

    tags: dict[str, int] = field(default_factory=dict)
    threads: dict[str, int] = field(default_factory=dict)

    def tag_codes(self, tags: list[str]) -> list[int]:
        return sorted({self.tags.setdefault(t, len(self.tags)) for t in tags})

    def thread_code(self, thread: str) -> int:
        return self.threads.setdefault(thread, len(self.threads))


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
    return Snapshot(nothing, [], [], [], [], np.empty(0), {}, {}, nothing, [], [])


def _tag_rows(base: sp.csr_matrix, new_tags: list[list[str]], vocab: Vocabulary) -> sp.csr_matrix:
    """``base`` with one row per new item appended, widened to the vocabulary's size."""
    codes = [vocab.tag_codes(tags) for tags in new_tags]
    indptr = np.concatenate(
        [base.indptr, base.indptr[-1] + np.cumsum([len(c) for c in codes], dtype=np.int64)]
    )
    indices = np.concatenate(
        [base.indices, np.fromiter((c for row in codes for c in row), np.int64)]
    )
    return sp.csr_matrix(
        (np.ones(len(indices)), indices, indptr),
        shape=(base.shape[0] + len(codes), max(len(vocab.tags), 1)),
    )


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
        self._models = ""  # the models' stamp the last read was made under
        self._lock = threading.Lock()
        self._reload = Background("catalogue reload") if background else None

    def held(self) -> Snapshot | None:
        """The snapshot while no refresh is due (None: :meth:`get` must read the store)."""
        if time.monotonic() - self._refreshed_at < self.refresh_seconds:
            return self._snapshot
        return None

    def preload(self, session: Session) -> Snapshot:
        """Every item read now, ahead of any request (the start-up warm-up), unless a request
        read them already; returns the snapshot held. It stays due: the first request still
        reads what was stored since (an incremental read), so it sees every item stored
        before it, as without the warm-up."""
        with self._lock:
            if not len(self._snapshot.pks):
                snapshot = self._read(session, _empty())
                self._snapshot = replace(snapshot, removed=frozenset(removed_item_ids(session)))
                self._loaded_at = time.monotonic()
            return self._snapshot

    def get(self, session: Session, fresh: bool = False, models: str | None = None) -> Snapshot:
        """The current snapshot, refreshed from ``session`` first when it is due (``fresh``:
        now, so that it holds every item stored before the call). ``models``, the served
        models' stamp read before the call, makes it fresh when the models changed since the
        last read: every item a model lists was stored before it was trained, and a snapshot
        up to a second old would lack the newest (records computed on it would miss them
        until the next full refresh). A due full reload runs in the background (when enabled)
        while requests use the last snapshot."""
        clock = time.monotonic()
        if models is not None and models != self._models:
            fresh = True
        if clock - self._refreshed_at < self.refresh_seconds and not fresh:
            return self._snapshot
        with self._lock:
            clock = time.monotonic()
            if fresh:
                self._refreshed_at = float("-inf")
                if models is not None:
                    self._models = models
            if clock - self._loaded_at >= self.reload_seconds:
                self._loaded_at = clock
                if self._reload is None or not len(self._snapshot.pks):
                    self._snapshot = self._read(session, _empty())
                else:
                    self._reload.run(session, self._swap_in_full_read)
            if clock - self._refreshed_at >= self.refresh_seconds:
                snapshot = self._read(session, self._snapshot)
                removed = frozenset(removed_item_ids(session))
                if snapshot is not self._snapshot or removed != snapshot.removed:
                    self._snapshot = replace(snapshot, removed=removed)  # else: kept as it is
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
            select(
                Item.id,
                Item.external_id,
                Item.title,
                Item.tags,
                User.external_id,
                Item.created,
                Item.author_id,
                *THREAD_COLUMNS,
            )
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
        vocab = base.vocab
        start = len(base.ids)
        threads = [thread_key(r[1], r[2], *r[7:]) for r in rows]
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
            first_post=np.concatenate(
                [
                    base.first_post if base.pks.size else np.empty(0),
                    np.fromiter(
                        (
                            first.get(a, -np.inf) if a is not None else -np.inf
                            for a in authors[start:]
                        ),
                        np.float64,
                        len(authors) - start,
                    ),
                ]
            ),
            threads=base.threads + threads,
            author_pks=np.concatenate(
                [
                    base.author_pks,
                    np.array([r[6] if r[6] is not None else -1 for r in rows], np.int64),
                ]
            ),
            thread_codes=np.concatenate(
                [base.thread_codes, np.array([vocab.thread_code(t) for t in threads], np.int64)]
            ),
            tag_matrix=_tag_rows(base.tag_matrix, [list(r[3] or []) for r in rows], vocab),
            vocab=vocab,
            lineage=base.lineage,
        )


class FeedCache:
    """The caches one feed-serving process keeps (see the module docstring)."""

    def __init__(
        self,
        refresh_seconds: float = 1.0,
        reload_seconds: float = 300.0,
        exposure_seconds: float = 10.0,
        tie_seconds: float = 10.0,
        max_users: int = 5000,
        redis_url: str | None = None,
        background: bool = True,
        ttl_seconds: float = 600.0,
        max_sessions: int = 5000,
        store: CandidateStore | None = None,
        sessions: sessionmaker[Session] | None = None,
        max_states: int = 50_000,
        max_ties: int | None = None,
        impressions: Any = None,
        concurrent_pages: int = 4,
    ):
        self.catalogue = Catalogue(refresh_seconds, reload_seconds, background)
        self._pages_at_once = threading.BoundedSemaphore(concurrent_pages)
        self.states = UserStates(sessions, max_users=max_states)
        self.ready = Ready(store, max_users=max_states)
        self.states.turn_listeners.append(self.ready.follow_store)
        self.known = KnownItems()
        # a served app's ImpressionBuffer; scripts and tests write in the page's transaction
        self.impressions = impressions if impressions is not None else DirectImpressions()
        self._exposure_refresh = Background("exposure") if background else None
        self._redis = None
        if redis_url:
            import redis

            self._redis = redis.Redis.from_url(redis_url, socket_timeout=0.5)
        self.exposure_seconds = exposure_seconds
        self.tie_seconds = tie_seconds
        self.ttl_seconds = ttl_seconds
        self._ties = Bounded(tie_seconds, max_users if max_ties is None else max_ties)
        self._candidates = Bounded(ttl_seconds, max_users)
        self._exposure: tuple[float, np.ndarray, Any] = (float("-inf"), np.empty(0, np.int64), None)
        self._per_model: dict[str, tuple[str, Any]] = {}
        self.shown = SessionShown(self._redis, ttl_seconds, max_sessions, self.impressions)
        self._ahead = Bounded(ttl_seconds, max_sessions)  # browsing session -> online.Ahead
        self._lock = threading.Lock()
        self._build_lock = threading.Lock()

    def ahead(self, browsing: str) -> Any:
        """The rest of the browsing session's last ranking in this worker (None: none kept)."""
        with self._lock:
            return self._ahead.get(browsing)

    def keep_ahead(self, browsing: str, ahead: Any) -> None:
        """Keep (or, given None, drop) the rest of the session's ranking for its next page."""
        with self._lock:
            if ahead is None:
                self._ahead.pop(browsing)
            else:
                self._ahead.put(browsing, ahead)

    @contextmanager
    def serving(self) -> Iterator[None]:
        """Held while a page is ranked: at most ``concurrent_pages`` at once per worker (the
        work is CPU under the interpreter lock; every page in flight holds a database
        connection, and one built from scratch a second one)."""
        with self._pages_at_once:
            yield

    def candidates(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        """The cached value for ``key`` (a model version and user state), else ``compute()``."""
        with self._lock:
            held = self._candidates.get(key, _MISSING)
        if held is not _MISSING:
            return held
        value = compute()
        with self._lock:
            self._candidates.put(key, value)
        return value

    def tie_activity(
        self, ties: list[int], fetch: Callable[[list[int]], dict[int, Any]]
    ) -> dict[int, Any]:
        """Each tie's recent activity, from memory when read less than ``tie_seconds`` ago,
        else ``fetch(missing ties)`` (one read serves every follower of a tie meanwhile)."""
        found, missing = {}, []
        with self._lock:
            for tie in ties:
                held = self._ties.get(tie, _MISSING)
                if held is _MISSING:
                    missing.append(tie)
                else:
                    found[tie] = held
        if missing:
            fetched = fetch(missing)
            found.update(fetched)
            with self._lock:
                for tie, value in fetched.items():
                    self._ties.put(tie, value)
        return found

    def per_model(self, name: str, version: str, build: Callable[[], Any]) -> Any:
        """An object built once per model version (an item index); older versions' dropped."""
        with self._build_lock:
            held = self._per_model.get(name)
            if held is None or held[0] != version:
                held = (version, build())
                self._per_model[name] = held
            return held[1]

    def exposure(
        self, session: Session, pks: np.ndarray, compute: Callable[[Session, list[int]], Any]
    ) -> Any:
        """Exposure statistics of the new items ``pks`` (``compute(session, pks)``), recomputed
        when older than ``exposure_seconds`` or when new items arrived, in the background when
        enabled and a value exists: until it lands, requests use the previous one, in which
        the newer items count as never shown. Items leaving the window of new items need no
        recomputation (the window slides every second)."""
        stamp, covered, value = self._exposure
        if value is not None:
            fresh = time.monotonic() - stamp < self.exposure_seconds
            if fresh and among(pks, covered, ordered=True).all():
                return value
            if self._exposure_refresh is not None:
                wanted = np.sort(pks)
                self._exposure_refresh.run(
                    session, lambda own: self._keep_exposure(wanted, compute(own, wanted.tolist()))
                )
                return value
        wanted = np.sort(pks)
        value = compute(session, wanted.tolist())
        self._keep_exposure(wanted, value)
        return value

    def _keep_exposure(self, covered: np.ndarray, value: Any) -> None:
        self._exposure = (time.monotonic(), covered, value)


def among(values: np.ndarray, others: np.ndarray, ordered: bool = False) -> np.ndarray:
    """Which of the integers ``values`` are in ``others`` (a binary search: ``np.isin`` builds a
    table as long as the catalogue); ``ordered``: ``others`` is sorted already."""
    if not len(others):
        return np.zeros(len(values), dtype=bool)
    sorted_others = others if ordered else np.sort(others)
    at = np.minimum(np.searchsorted(sorted_others, values), len(sorted_others) - 1)
    return sorted_others[at] == values


#: For callers without a long-lived cache (tests, scripts): nothing is kept between calls.
#: ``impressions``: where the pages' impressions go (default: :class:`DirectImpressions`).
def uncached(impressions: Any = None) -> FeedCache:
    return FeedCache(
        refresh_seconds=0.0,
        reload_seconds=0.0,
        exposure_seconds=0.0,
        tie_seconds=0.0,
        max_users=0,
        max_sessions=0,
        background=False,
        max_states=0,
        impressions=impressions,
    )


class DirectImpressions:
    """Writes a page's impressions in the page's own transaction (scripts and tests; a served
    app buffers them: :class:`agora.feed.impressions.ImpressionBuffer`, same interface)."""

    flush_seconds = 0.0

    def add_after_commit(self, session: Session, rows: list[dict[str, Any]]) -> None:
        if rows:
            session.execute(FeedImpression.__table__.insert(), rows)

    def pending(self, user_pk: int, browsing: str) -> dict[int, int]:
        """Impressions not written yet (none: they are written at once)."""
        return {}


class NoImpressions:
    """Records no impression: for pages nobody is shown as a feed page (a digest's picks),
    which then write nothing in the caller's transaction (the interface of
    :class:`DirectImpressions`)."""

    flush_seconds = 0.0

    def add_after_commit(self, session: Session, rows: list[dict[str, Any]]) -> None:
        """Nothing: the rows are dropped."""

    def pending(self, user_pk: int, browsing: str) -> dict[int, int]:
        return {}


class SessionShown:
    """The items each browsing session has shown, so its pages never repeat one: in Redis when
    configured (any worker serves the next page), else this process's pages (at most
    ``max_sessions`` sessions for ``ttl_seconds``) and the stored impressions (pages another
    worker served), one single-table read per next page."""

    def __init__(self, redis: Any, ttl_seconds: float, max_sessions: int, impressions: Any):
        self._redis = redis
        self.ttl_seconds = ttl_seconds
        self.impressions = impressions
        self._held = Bounded(ttl_seconds, max_sessions)
        self._lock = threading.Lock()

    def pks(self, session: Session, user_pk: int, browsing: str, page: int) -> set[int]:
        """Item pks the session has shown before ``page``."""
        if self._redis is not None:
            try:
                return {int(pk) for pk in self._redis.smembers(SHOWN_KEY + browsing)}
            except Exception as exc:  # redis.RedisError: read what is stored instead
                log.warning("feed sessions: redis read failed: %s", exc)
        with self._lock:  # this worker's pages; another worker's are in the stored impressions
            last, held = self._held.get(browsing) or (0, ())
        if last == page - 1:  # this worker served the previous page: nothing to wait for
            stored = session.execute(_SHOWN, {"user_pk": user_pk, "browsing": browsing}).all()
        else:
            stored = self._stored_through(session, user_pk, browsing, page)
        pending = self.impressions.pending(user_pk, browsing)
        return set(held) | {item for item, _ in stored} | set(pending)

    def _stored_through(
        self, session: Session, user_pk: int, browsing: str, page: int
    ) -> list[tuple[int, int]]:
        """The session's stored impressions (item pk, position), once the previous page's are
        among them: another worker writes its pages' impressions within its flush period, so a
        next page asked sooner waits (at most that period and two seconds) and never repeats."""
        wait_until = time.monotonic() + self.impressions.flush_seconds + 2.0
        previous = page - 2  # the previous page's positions, divided by MAX_PAGE
        while True:
            stored = session.execute(_SHOWN, {"user_pk": user_pk, "browsing": browsing}).all()
            if any(position // MAX_PAGE == previous for _, position in stored):
                return stored
            if self.impressions.flush_seconds <= 0 or time.monotonic() >= wait_until:
                return stored
            time.sleep(0.05)

    def positions(
        self, session: Session, snapshot: Snapshot, user_pk: int, browsing: str, page: int
    ) -> np.ndarray:
        """Catalogue positions of the items shown in the session before ``page``."""
        if page <= 1:
            return np.empty(0, np.int64)
        shown = self.pks(session, user_pk, browsing, page)
        at = snapshot.positions(np.fromiter(shown, np.int64, len(shown)))
        return at[at >= 0]

    def add(self, browsing: str, page: int, pks: np.ndarray) -> None:
        """Note the items page ``page`` of the session showed."""
        values = [int(pk) for pk in pks]
        if not values:
            return
        if self._redis is not None:
            try:
                pipe = self._redis.pipeline(transaction=False)
                pipe.sadd(SHOWN_KEY + browsing, *values)
                pipe.expire(SHOWN_KEY + browsing, max(1, round(self.ttl_seconds)))
                pipe.execute()
                return
            except Exception as exc:  # redis.RedisError: the stored impressions still say it
                log.warning("feed sessions: redis write failed: %s", exc)
                return
        with self._lock:
            _, held = self._held.get(browsing) or (0, ())
            self._held.put(browsing, (page, (*held, *values)))
            metrics.FEED_SESSIONS_HELD.set(len(self._held))
