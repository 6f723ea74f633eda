"""Ready candidates as a worker holds them: records from the candidate store in memory, with
catalogue positions in place of item pks, re-read when they fall behind the user's events or
the store holds a newer one (:meth:`Ready.follow_store`)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from agora.feed.bounded import Bounded
from agora.feed.candidates import EVERYONE, Candidates
from agora.serving.service import ModelStore, ModelUnavailable

if TYPE_CHECKING:
    from agora.feed.cache import Snapshot


@dataclass
class Placed:
    """A record's lists at catalogue positions instead of pks (items the catalogue lacks
    left out)."""

    primary: tuple[np.ndarray, np.ndarray]  # positions, scores
    sources: dict[str, tuple[np.ndarray, np.ndarray]]
    tie_counts: np.ndarray


@dataclass
class Held:
    """A record as the online path uses it: its lists are placed in the catalogue on first
    use (a first page served from the record's prepared pages never needs them)."""

    record: Candidates
    catalogue_size: int  # positions are valid for snapshots this long or longer
    lineage: int  # ... of the same lineage (a full reload may drop items: positions move)
    fetched: float = field(default_factory=time.monotonic)
    _placed: Placed | None = field(default=None, repr=False)

    def placed(self, snapshot: Snapshot) -> Placed:
        """The record's lists at ``snapshot``'s positions (of this record's lineage)."""
        if self._placed is None:
            self._placed = _place(self.record, snapshot)
        return self._placed


def hold(record: Candidates, snapshot: Snapshot) -> Held:
    return Held(record=record, catalogue_size=len(snapshot.pks), lineage=snapshot.lineage)


def _place(record: Candidates, snapshot: Snapshot) -> Placed:
    def place(pks: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        at = snapshot.positions(pks)
        ok = at >= 0
        return at[ok], np.asarray(values)[ok]

    network = record.sources.get("in_network")
    counts = record.tie_counts
    if network is not None:
        counts = counts[snapshot.positions(network[0]) >= 0]
    return Placed(
        primary=place(*record.primary),
        sources={name: place(*pair) for name, pair in record.sources.items()},
        tie_counts=counts,
    )


class Ready:
    """Records of the users a worker serves, read from the candidate store (None: computed on
    every request, as scripts and tests without a store do).

    A held record is used while the user's event count matches it; otherwise the store is
    read again (at most every ``recheck_seconds`` per user), and if the store's record is
    behind the user's events the user is queued for the refresher (``want``) and the record
    served meanwhile. A record the store holds a newer one of is dropped when
    :meth:`follow_store` sees it (the feed's tail thread calls it every turn), so held records
    need no expiry: ``ttl_seconds`` is a safety net."""

    def __init__(
        self,
        store: Any = None,
        max_users: int = 50_000,
        ttl_seconds: float = 900.0,
        recheck_seconds: float = 0.1,
        on_want: Callable[[int], None] | None = None,
    ):
        self.store = store
        self.ttl_seconds = ttl_seconds
        self.recheck_seconds = recheck_seconds
        self.on_want = on_want
        self._held = Bounded(ttl_seconds, max_users if store is not None else 0)
        self._wanted = Bounded(1.0, 100_000)
        self._lock = threading.Lock()
        self._store_mark: float | None = None  # store time up to which changes were seen
        self._seen: dict[int, float] = {}  # changes within STORE_OVERLAP_SECONDS of the mark

    def get(
        self,
        user_pk: int,
        events: int,
        stamp: str,
        snapshot: Snapshot,
        compute: Callable[[], Candidates],
        unusable: Callable[[Candidates], bool] = lambda record: False,
    ) -> tuple[Held, str]:
        """The user's record as held, and how it was found: ``ready`` (current), ``stale``
        (behind the user's ``events`` or computed with older versions of the models in
        ``stamp``: served, and the user queued) or ``built`` (computed now by ``compute``, and
        stored: there was none, only one computed with another set of models, such as one from
        before the ranking model was trained, or one the caller finds ``unusable``).
        ``events`` < 0: the record does not follow anyone's events (the shared one)."""
        held, status = self.find(user_pk, events, stamp, snapshot, unusable)
        if held is None:
            record = compute()
            if self.store is not None:
                self.store.put([record])
            held = hold(record, snapshot)
            self._keep(user_pk, held)
            return held, "built"
        return held, status

    def stored(self, user_pk: int, snapshot: Snapshot) -> Held | None:
        """The user's record as held, or read from the store (and held), however current."""
        with self._lock:
            held = self._held.get(user_pk)
        if held is None and self.store is not None:
            record = self.store.get(user_pk)
            if record is None:
                return None
            held = hold(record, snapshot)
            self._keep(user_pk, held)
        return held

    def stored_many(self, user_pks: list[int], snapshot: Snapshot) -> dict[int, Held]:
        """:meth:`stored` for many users, those not held read from the store in one go."""
        with self._lock:
            found = {pk: held for pk in user_pks if (held := self._held.get(pk)) is not None}
        missing = [pk for pk in user_pks if pk not in found]
        if missing and self.store is not None:
            for pk, record in self.store.get_many(missing).items():
                found[pk] = hold(record, snapshot)
                self._keep(pk, found[pk])
        return found

    def find(
        self,
        user_pk: int,
        events: int,
        stamp: str,
        snapshot: Snapshot,
        unusable: Callable[[Candidates], bool] = lambda record: False,
        read_store: bool = True,
    ) -> tuple[Held | None, str]:
        """:meth:`get` without computing: ``(None, "missing")`` where :meth:`get` would build
        the record (the recommendations route computes its answer instead), or, without
        ``read_store``, where it would read or write the store (a record that is not current
        included: the caller's event loop must not wait)."""

        def current(record: Candidates) -> bool:
            return record.stamp == stamp and (events < 0 or record.events == events)

        def usable(record: Candidates) -> bool:
            return _model_names(record.stamp) == names and not unusable(record)

        names = _model_names(stamp)
        with self._lock:
            held = self._held.get(user_pk)
        if held is not None and not usable(held.record):
            held = None
        recheck = held is not None and time.monotonic() - held.fetched >= self.recheck_seconds
        if held is not None and recheck and not current(held.record):
            held = None  # look in the store: the refresher may have caught up
        if held is None:
            record = self.store.get(user_pk) if self.store is not None and read_store else None
            if record is None or not usable(record):
                return None, "missing"
            held = hold(record, snapshot)
            self._keep(user_pk, held)
        elif held.lineage != snapshot.lineage or held.catalogue_size > len(snapshot.pks):
            # a full catalogue reload since: the record's items may sit at other positions
            held = hold(held.record, snapshot)
            self._keep(user_pk, held)
        if not current(held.record):
            if not read_store:  # queueing the user writes to the store too
                return None, "missing"
            if user_pk != EVERYONE:  # the refresher redoes the shared record on new models
                self._want(user_pk)
            return held, "stale"
        return held, "ready"

    def follow_store(self) -> int:
        """Drop the held records the store has stored anew since the last call; returns how
        many changes it read. Store times come from the writers' clocks and a write commits a
        moment after its time is taken, so each look reaches :data:`STORE_OVERLAP_SECONDS`
        back (a change already seen is not dropped twice)."""
        if self.store is None:
            return 0
        if self._store_mark is None:  # records stored before now are read when first needed
            self._store_mark = time.time()
            return 0
        changes = self.store.stored_since(self._store_mark - STORE_OVERLAP_SECONDS)
        fresh = [(pk, at) for pk, at in changes if self._seen.get(pk, -1.0) < at]
        if fresh:
            with self._lock:
                for pk, _ in fresh:
                    self._held.pop(pk)
        for pk, at in fresh:
            self._seen[pk] = at
        if changes:
            self._store_mark = max(self._store_mark, changes[-1][1])
        horizon = self._store_mark - STORE_OVERLAP_SECONDS
        self._seen = {pk: at for pk, at in self._seen.items() if at >= horizon}
        return len(changes)

    def _keep(self, user_pk: int, held: Held) -> None:
        with self._lock:
            self._held.put(user_pk, held)

    def _want(self, user_pk: int) -> None:
        with self._lock:
            if self._wanted.get(user_pk) is not None:
                return
            self._wanted.put(user_pk, True)
        if self.on_want is not None:
            self.on_want(user_pk)
        elif self.store is not None:
            self.store.want(user_pk)


#: How far back each look at the store's changes reaches (see :meth:`Ready.follow_store`).
STORE_OVERLAP_SECONDS = 2.0


def _model_names(stamp: str) -> frozenset[str]:
    """The names of the models in a :func:`~agora.feed.candidates.model_stamp`."""
    return frozenset(part.split("=", 1)[0] for part in stamp.split(";") if part)


class KnownItems:
    """Per model version, which catalogue positions the model knows (items posted after it was
    trained are ranked as unknown)."""

    def __init__(self) -> None:
        self._held: dict[str, tuple[str, int, np.ndarray]] = {}
        self._lock = threading.Lock()

    def mask(self, models: ModelStore, name: str | None, snapshot: Snapshot) -> np.ndarray | None:
        if name is None:
            return None
        version = models.versions().get(name)
        if version is None:
            return None
        with self._lock:
            held = self._held.get(name)
        if held is not None and held[0] == version and held[1] == snapshot.generation:
            mask = held[2]
        else:
            try:
                loaded = models.get(name)
            except ModelUnavailable:
                return None
            mask = np.zeros(len(snapshot.pks), dtype=bool)
            at = [snapshot.index.get(str(i), -1) for i in loaded.item_ids]
            at = np.array([a for a in at if a >= 0], dtype=np.int64)
            mask[at] = True
            with self._lock:
                self._held[name] = (version, snapshot.generation, mask)
        if len(mask) < len(snapshot.pks):  # items stored since: unknown to the model
            mask = np.concatenate([mask, np.zeros(len(snapshot.pks) - len(mask), dtype=bool)])
        return mask
