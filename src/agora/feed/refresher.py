"""The refresher: keeps every user's ready candidates current, off the request path.

It runs as ``agora worker`` (its own process, for set-ups with several nodes), as a thread of
the API ``agora serve`` runs (so the two README commands need nothing else), or, with
``refresher_process``, as a child process ``agora serve`` starts and stops; a lock lets one
refresher
work at a time per store (Redis lock with ``AGORA_REDIS_URL``, else a file lock beside the
models), the others wait and take over when it stops or dies.

Each round (:meth:`Refresher.step`):

* the served model versions changed (``agora train`` then a reload), or the last full refresh
  is older than ``full_refresh_seconds``: recompute the shared record and every user who has
  events or ties (the in-network source changes when ties act, so it is redone on this cadence),
  with the users below served between its chunks (so they never wait for the whole pass);
* users with events or new ties since the last round (read from the event log past the
  refresher's mark, kept in the store, so a restarted refresher catches up where it stopped);
* users the online path asked for (no record yet, or a record older than their events).

Users can be split between several refreshers by user pk (:class:`~agora.feed.store.Shard`,
``refresher_shards`` and ``agora worker --shard``), to use more cores or nodes: each shard keeps
its own marks, wanted users and lock; shard 0 refreshes the shared record, and the others only
when the store holds none made with the current models.

Per-user work is :func:`agora.feed.candidates.compute_candidates`, then
:func:`agora.feed.online.prepare`: the user's first pages ranked ahead, with the filter state
they were ranked under, so that a worker serves a first page without reading the user's state
or ranking. Users with new feedback or settings are refreshed too (their pages change). Users
are read and written in chunks (a few queries for a chunk, one write for its records).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from sqlalchemy import func, select, union
from sqlalchemy.orm import Session, sessionmaker

from agora.config import FeedConfig
from agora.db import queries
from agora.db.tables import Event, Item, SocialEdge, SocialEdgeRemoval, User, UserErasure
from agora.experiments.service import planned_overrides
from agora.feed import online, sources
from agora.feed.cache import FeedCache
from agora.feed.candidates import (
    EVERYONE,
    Candidates,
    compute_candidates,
    compute_global,
    model_stamp,
    user_ties,
)
from agora.feed.models import FeedFeedback, FeedSettings
from agora.feed.ready import hold
from agora.feed.state import UserState, log_marks, read_states
from agora.feed.store import EVERY_USER, CandidateStore, Shard
from agora.ingest.schemas import as_utc
from agora.serving.service import ModelStore, ModelUnavailable, resolve_model

log = logging.getLogger(__name__)

CHUNK = 128  # users read and written together (dirty users wait for one chunk at most)
EVENTS_MARK = "events"
EDGES_MARK = "edges"
REMOVALS_MARK = "removals"  # the log of removed edges (unfollow, unblock)
FEEDBACK_MARK = "feedback"
SETTINGS_MARK = "settings"  # epoch seconds of the newest settings change seen
STAMP_MARK = "stamp"
FULL_MARK = "full"


def refresher_cache() -> FeedCache:
    """The caches a refresher keeps: the catalogue, item indexes and ties' activity (shared by
    everyone following a tie during a full refresh); no per-user or per-session state."""
    return FeedCache(
        refresh_seconds=1.0,
        reload_seconds=300.0,
        tie_seconds=60.0,
        max_users=1_000,
        max_ties=100_000,
        max_sessions=0,
        background=False,
        ttl_seconds=60.0,
    )


def event_rows(session: Session, user_pks: list[int]) -> dict[int, list]:
    """Every event of each user as (item id, type, value, time), one query for all of them."""
    rows: dict[int, list] = {pk: [] for pk in user_pks}
    for user, item, etype, value, ts in session.execute(
        select(Event.user_id, Item.external_id, Event.type, Event.value, Event.timestamp)
        .join(Item, Event.item_id == Item.id)
        .where(Event.user_id.in_(user_pks))
    ):
        rows[user].append((item, etype, value, as_utc(ts)))
    return rows


def active_users(session: Session, since: datetime | None = None) -> list[int]:
    """Users with any event or any chosen tie (``since``: with one from that time on, which on
    PostgreSQL reads only the months' partitions from there): who gets a record of their own."""
    events = select(Event.user_id).distinct()
    ties = select(SocialEdge.source_id).where(SocialEdge.type.in_(queries.CHOSEN_TIES))
    if since is not None:
        events = events.where(Event.timestamp >= since)
        ties = ties.where(SocialEdge.created >= since)
    return sorted(int(pk) for pk in session.scalars(union(events, ties.distinct())))


class Refresher:
    """See the module docstring. ``models`` is the store it computes with (``agora worker``
    reloads it every round; inside ``agora serve`` the API's own, reloaded by the API)."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        models: ModelStore,
        store: CandidateStore,
        feed: FeedConfig,
        weights: Mapping[str, float],
        full_refresh_seconds: float = 900.0,
        reload_models: bool = False,
        shard: Shard = EVERY_USER,
    ):
        self.sessions = sessions
        self.shard = shard
        self.models = models
        self.store = store
        self.feed = feed
        self.weights = weights
        self.full_refresh_seconds = full_refresh_seconds
        self.reload_models = reload_models
        self.cache = refresher_cache()
        self.wake = threading.Event()
        self.stopping = threading.Event()
        self._erasures_seen: int | None = None  # the newest erasure :meth:`_drop_erased` saw

    # -- the work ----------------------------------------------------------------------------
    def _drop_erased(self) -> None:
        """Drop the records of users erased since the last look. An erasure drops its user's
        record itself, but a chunk that read the user just before may store one just after."""
        with self.sessions() as session:
            if self._erasures_seen is None:
                self._erasures_seen = int(session.scalar(select(func.max(UserErasure.id))) or 0)
                return
            found = session.execute(
                select(UserErasure.id, UserErasure.user_pk)
                .where(UserErasure.id > self._erasures_seen)
                .order_by(UserErasure.id)
            ).all()
        if found:
            self._erasures_seen = int(found[-1][0])
            self.store.drop([int(pk) for _, pk in found])

    def refresh_users(
        self,
        user_pks: Iterable[int],
        progress: Callable[[int], None] | None = None,
        between: Callable[[], None] | None = None,
    ) -> int:
        """Recompute and store the records of ``user_pks`` (users no longer stored are
        skipped); returns how many were stored. ``between`` runs after each chunk (a full
        refresh serves dirty users there, so their records never wait for the whole pass)."""
        pks = list(dict.fromkeys(user_pks))
        done = 0
        self._drop_erased()  # notes where the erasures' log ends, the first time
        for start in range(0, len(pks), CHUNK):
            if self.stopping.is_set():  # a stopping refresher leaves the rest to the next one
                break
            chunk = pks[start : start + CHUNK]
            now = datetime.now(UTC)
            with self.sessions() as session:
                marks = log_marks(session)  # first: whatever is stored later is newer
                ids = dict(
                    session.execute(
                        select(User.id, User.external_id).where(User.id.in_(chunk))
                    ).all()
                )
                rows = event_rows(session, list(ids))
                states = read_states(session, ids)
                ties = user_ties(session, list(ids))
                everyone_followed = list({tie for mine in ties.values() for tie in mine})
                sources.recent_tie_activity(  # one read for the chunk; users then hit the cache
                    session, self.cache, everyone_followed, now, self.feed.in_network_days,
                    self.weights,
                )  # fmt: skip
                ranking = self._ranking_model()
                if ranking is not None:  # factor models score the chunk in one go
                    sources.factor_candidates_many(
                        self.models, self.cache, ranking, [(ids[pk], rows[pk]) for pk in ids],
                        self.weights,
                    )  # fmt: skip
                records = [
                    compute_candidates(
                        session, self.models, self.cache, pk, ids[pk], rows[pk], self.feed,
                        self.weights, now, ties[pk],
                    )
                    for pk in chunk
                    if pk in ids
                ]  # fmt: skip
                self._prepare(session, records, states, marks, now)
            self.store.put(records)
            self._drop_erased()
            done += len(records)
            if progress is not None:
                progress(len(chunk))
            if between is not None:
                between()
        return done

    def _prepare(
        self, session: Session, records: list[Candidates], states: dict[int, UserState],
        marks: dict[str, float], now: datetime,
    ) -> None:  # fmt: skip
        """Rank each record's first pages ahead (:func:`agora.feed.online.prepare`), under the
        arms the running experiments give its user (their exposure is logged when a page is
        served); none before the shared record exists."""
        shared = self.store.get(EVERYONE)
        if shared is None:
            return
        snapshot = self.cache.catalogue.get(session, models=shared.stamp)
        everyone = hold(shared, snapshot)

        def known(name: str | None) -> np.ndarray | None:
            return self.cache.known.mask(self.models, name, snapshot)

        for record in records:
            state = states[record.user_pk]
            state.variant = planned_overrides(session, state.user_id, now)
            record.prepared = online.prepare(
                snapshot, state, hold(record, snapshot), everyone, known, self.feed, marks,
                now.timestamp(),
            )  # fmt: skip

    def _ranking_model(self) -> str | None:
        try:
            return resolve_model(self.models, self.feed.ranking_model)
        except ModelUnavailable:
            return None

    def refresh_global(self) -> None:
        with self.sessions() as session:
            record = compute_global(
                session, self.models, self.cache, self.feed, self.weights, datetime.now(UTC)
            )
        self.store.put([record])

    def refresh_all(self, progress: Callable[[int, int], None] | None = None) -> int:
        """The shared record and every active user's (``progress(done, total)`` as it goes);
        users with events or ties past the pass's start, and wanted users, are refreshed
        between its chunks."""
        stamp = model_stamp(self.models)
        with self.sessions() as session:
            heads = self._log_heads(session)
            days = self.feed.active_user_days
            since = datetime.now(UTC) - timedelta(days=days) if days else None
            users = [pk for pk in active_users(session, since) if self.shard.owns(pk)]
            # every item stored before the models were trained (the catalogue is re-read
            # once a second: a model trained within that second would miss the newest items)
            self.cache.catalogue.get(session, fresh=True)
        shared = self.store.get(EVERYONE)
        if self.shard.index == 0 or shared is None or shared.stamp != stamp:
            self.refresh_global()  # the other shards take shard 0's, once it is current
        done = 0

        def advance(count: int) -> None:
            nonlocal done
            done += count
            if progress is not None:
                progress(done, len(users))

        stored = self.refresh_users(users, advance, between=lambda: self._dirty(heads))
        if self.stopping.is_set():  # cut short: the next refresher starts this over
            return stored
        for name, value in heads.items():  # events up to here are in the records
            self._advance(name, value)
        self.store.set_mark(self.shard.mark(STAMP_MARK), stamp)
        self.store.set_mark(self.shard.mark(FULL_MARK), str(time.time()))
        return stored

    def refresh_dirty(self, limit: int = 10_000) -> int:
        """Users with events, new or removed ties, feedback or settings past the refresher's
        marks, and wanted users."""
        heads = {
            name: int(self.store.mark(self.shard.mark(name)) or 0)
            for name in (EVENTS_MARK, EDGES_MARK, REMOVALS_MARK, FEEDBACK_MARK)
        }
        heads[SETTINGS_MARK] = float(self.store.mark(self.shard.mark(SETTINGS_MARK)) or 0.0)
        stored = self._dirty(heads, limit)
        for name, value in heads.items():
            self._advance(name, value)
        return stored

    def _dirty(self, heads: dict[str, float], limit: int = 10_000) -> int:
        """Refresh wanted users and those with events, new or removed ties, feedback or
        settings past ``heads`` (log ids and the settings' time, moved on to the newest
        read); only this refresher's shard of them."""
        dirty: set[int] = set(self.store.take_wanted(limit, self.shard))
        owns = self.shard.owns
        with self.sessions() as session:
            for name, column, user in (
                (EVENTS_MARK, Event.id, Event.user_id),
                (EDGES_MARK, SocialEdge.id, SocialEdge.source_id),
                (REMOVALS_MARK, SocialEdgeRemoval.id, SocialEdgeRemoval.source_id),
                (FEEDBACK_MARK, FeedFeedback.id, FeedFeedback.user_id),
            ):
                found = session.execute(
                    select(column, user).where(column > heads[name]).order_by(column).limit(limit)
                ).all()
                if found:
                    heads[name] = int(found[-1][0])
                    dirty.update(pk for _, u in found if owns(pk := int(u)))
            since = datetime.fromtimestamp(heads[SETTINGS_MARK], UTC)
            for user, updated in session.execute(
                select(FeedSettings.user_id, FeedSettings.updated)
                .where(FeedSettings.updated > since)
                .limit(limit)
            ):
                heads[SETTINGS_MARK] = max(heads[SETTINGS_MARK], as_utc(updated).timestamp())
                if owns(int(user)):
                    dirty.add(int(user))
        return self.refresh_users(sorted(dirty)) if dirty else 0

    def step(self) -> dict[str, int]:
        """One round (see the module docstring); returns what it refreshed."""
        if self.reload_models:
            self.models.reload()
        stamp = model_stamp(self.models)
        last_full = float(self.store.mark(self.shard.mark(FULL_MARK)) or 0.0)
        if (
            self.store.mark(self.shard.mark(STAMP_MARK)) != stamp
            or time.time() - last_full > self.full_refresh_seconds
        ):
            return {"all": self.refresh_all()}
        return {"dirty": self.refresh_dirty()}

    def _log_heads(self, session: Session) -> dict[str, float]:
        marks = log_marks(session)
        return {
            EVENTS_MARK: int(session.scalar(select(func.max(Event.id))) or 0),
            EDGES_MARK: int(marks["edges"]),
            REMOVALS_MARK: int(marks["removals"]),
            FEEDBACK_MARK: int(marks["feedback"]),
            SETTINGS_MARK: marks["settings"],
        }

    def _advance(self, name: str, value: float) -> None:
        name = self.shard.mark(name)
        if value > float(self.store.mark(name) or 0):
            self.store.set_mark(name, str(value))

    # -- running -------------------------------------------------------------------------------
    def run(self, stop: threading.Event, interval: float = 0.2) -> None:
        """Rounds until ``stop`` is set, one every ``interval`` seconds or when woken; a failed
        round is logged and retried (the previous records keep serving)."""
        while not stop.is_set():
            try:
                did = self.step()
                if did.get("all"):
                    log.info("feed refresher: refreshed all %d users", did["all"])
            except Exception:
                log.exception("feed refresher: round failed; retrying")
                stop.wait(5.0)
            self.wake.wait(interval)
            self.wake.clear()


class Leadership:
    """One refresher per store and shard at a time: a Redis lock (with ``redis_url``) renewed
    while held, else a file lock in ``lock_dir`` (released by the OS when its process dies)."""

    def __init__(
        self,
        redis_url: str | None,
        lock_dir: Path,
        namespace: str = "default",
        shard: Shard = EVERY_USER,
    ):
        self.redis_url = redis_url
        self.lock_dir = Path(lock_dir)
        self.namespace = namespace
        self.suffix = "" if shard.count == 1 else f"-{shard.index}-of-{shard.count}"
        self._lock = None

    def acquire(self, timeout: float) -> bool:
        if self.redis_url:
            import redis

            client = redis.Redis.from_url(self.redis_url, socket_timeout=2.0)
            key = f"agora:feed:{self.namespace}:refresher{self.suffix}"
            self._lock = client.lock(key, timeout=30)
            return bool(self._lock.acquire(blocking=True, blocking_timeout=timeout))
        from filelock import FileLock, Timeout

        self.lock_dir.mkdir(parents=True, exist_ok=True)
        self._lock = FileLock(str(self.lock_dir / f"feed-refresher{self.suffix}.lock"))
        try:
            self._lock.acquire(timeout=timeout)
        except Timeout:
            return False
        return True

    def renew(self) -> None:
        if self.redis_url and self._lock is not None:
            self._lock.reacquire()

    def release(self) -> None:
        if self._lock is not None:
            try:
                self._lock.release()
            except Exception:  # an expired Redis lock: nothing to release
                log.debug("feed refresher: lock already released")
            self._lock = None


def run_led(refresher: Refresher, leadership: Leadership, stop: threading.Event) -> None:
    """Wait to be the one refresher of the store, then run rounds until ``stop``."""
    while not stop.is_set():
        if not leadership.acquire(timeout=0.5):
            continue
        try:
            renewer = threading.Thread(
                target=_renew, args=(leadership, stop), name="agora-refresher-lock", daemon=True
            )
            renewer.start()
            refresher.run(stop)
        finally:
            leadership.release()


def _renew(leadership: Leadership, stop: threading.Event) -> None:
    while not stop.wait(10.0):
        try:
            leadership.renew()
        except Exception:
            log.exception("feed refresher: could not renew its lock")


class RefresherThread:
    """A refresher running in a daemon thread of a served app (``refresh_in_serve``)."""

    def __init__(self, refresher: Refresher, leadership: Leadership):
        self.refresher = refresher
        self.leadership = leadership
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(
            target=run_led,
            args=(self.refresher, self.leadership, self._stop),
            name="agora-feed-refresher",
            daemon=True,
        )
        self._thread.start()

    def want(self, user_pk: int) -> None:
        """Queue a user (the online path found no current record) and wake the refresher."""
        self.refresher.store.want(user_pk)
        self.refresher.wake.set()

    def stop(self) -> None:
        self._stop.set()
        self.refresher.stopping.set()
        self.refresher.wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
