"""Per-user feed state in memory: what the online path filters and boosts with.

A :class:`UserState` holds what a user's page depends on besides their ready candidates: items
they touched (any event), hid or marked "not interested", authors they blocked or muted, topics
they muted or follow, their own control settings, and the feed controls of the A/B arms they are
in. :class:`UserStates` loads a user's state on first use (a few single-user queries), keeps at
most ``max_users`` of them, and tails the store (:meth:`UserStates.tail`, every
``tail_seconds`` in a background thread): new events are added to the holder's state; a user
with new feedback, settings, social edges or removed edges (the ``social_edge_removals`` log)
is dropped and loaded afresh on their next page, and every user when an experiment starts or
stops. So any change stored by any process reaches every worker's next page within about
``tail_seconds``, and a held state needs no reload: ``ttl_seconds`` is only a safety net.
The recommendations route reads the same states (:meth:`UserStates.known`) without writing
anything: it creates no user and logs no exposure to experiments, so a state it loaded is loaded
again, with both, for the user's next feed page.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sqlalchemy import Select, bindparam, func, literal, select, union_all
from sqlalchemy.orm import Session, sessionmaker

from agora.db.tables import Event, SocialEdge, SocialEdgeRemoval, User, UserErasure
from agora.experiments.models import Experiment
from agora.experiments.service import arm_overrides
from agora.feed.models import FeedFeedback, FeedSettings
from agora.ingest.schemas import as_utc
from agora.ingest.service import ensure_users

log = logging.getLogger(__name__)

#: Settings a user can override (None in their row: the platform default).
OWN_CONTROLS = ("diversity", "social_weight", "freshness", "exploration")


def _after(key: Any, *columns: Any) -> Select[Any]:
    """Rows of a log whose ``key`` is past the one bound as ``after``, oldest first (at most
    50,000 a call). The tail's queries are Core statements built once: the ORM's, built per
    call, cost several times what reading a few new rows does."""
    return select(key, *columns).where(key > bindparam("after")).order_by(key).limit(50_000)


_EVENTS = Event.__table__.c
_NEW_EVENTS = _after(_EVENTS.id, _EVENTS.user_id, _EVENTS.item_id)
_NEW_FEEDBACK = _after(FeedFeedback.__table__.c.id, FeedFeedback.__table__.c.user_id)
_NEW_EDGES = _after(SocialEdge.__table__.c.id, SocialEdge.__table__.c.source_id)
_REMOVALS = SocialEdgeRemoval.__table__.c
_NEW_REMOVALS = _after(_REMOVALS.id, _REMOVALS.source_id)
#: when the experiments last changed (one started or stopped: every user's arms may differ)
_EXPERIMENTS_CHANGED = select(func.max(Experiment.__table__.c.updated))
_SETTINGS = FeedSettings.__table__.c
_CHANGED_SETTINGS = select(_SETTINGS.user_id, _SETTINGS.updated).where(
    _SETTINGS.updated > bindparam("after")
)
_USER_PK = select(User.id).where(User.external_id == bindparam("user_id"))
_NEW_ERASURES = _after(UserErasure.__table__.c.id, UserErasure.__table__.c.user_pk)
# what read_states reads of the users bound as ``pks``
_FEEDBACK = FeedFeedback.__table__.c
_EDGES = SocialEdge.__table__.c
_STATE_EVENTS = select(_EVENTS.id, _EVENTS.user_id, _EVENTS.item_id).where(
    _EVENTS.user_id.in_(bindparam("pks", expanding=True))
)
_STATE_FEEDBACK = (
    select(_FEEDBACK.user_id, _FEEDBACK.item_id, _FEEDBACK.kind, _FEEDBACK.created)
    .where(_FEEDBACK.user_id.in_(bindparam("pks", expanding=True)), _FEEDBACK.item_id.is_not(None))
    .order_by(_FEEDBACK.created, _FEEDBACK.id)
)
_STATE_BLOCKS = select(_EDGES.source_id, _EDGES.target_id).where(
    _EDGES.source_id.in_(bindparam("pks", expanding=True)), _EDGES.type == "block"
)
_STATE_SETTINGS = select(
    _SETTINGS.user_id,
    _SETTINGS.muted_tags,
    _SETTINGS.followed_tags,
    _SETTINGS.muted_authors,
    *(_SETTINGS[name] for name in OWN_CONTROLS),
).where(_SETTINGS.user_id.in_(bindparam("pks", expanding=True)))


@dataclass
class UserState:
    """One user's filters and preferences as of the last load plus the events tailed since."""

    pk: int
    user_id: str
    touched: set[int]  # item pks with any event of the user
    events: int  # how many events the user has
    last_event: int  # the largest event id included
    hidden: set[int]
    not_interested: list[tuple[int, float]]  # (item pk, epoch seconds), oldest first
    excluded_authors: set[int]  # blocked or muted author pks
    muted_tags: frozenset[str]
    followed_tags: list[str]
    own: dict[str, float]  # the user's own control settings
    variant: dict[str, float]  # what running A/B arms set (under the user's own settings)
    exposed: bool = True  # the arms were read and the exposure logged (False: variant unread)
    loaded: float = field(default_factory=time.monotonic)
    _touched_array: np.ndarray | None = field(default=None, repr=False)

    def touched_array(self) -> np.ndarray:
        """``touched`` as a sorted array (kept until the next event)."""
        if self._touched_array is None or len(self._touched_array) != len(self.touched):
            self._touched_array = np.fromiter(self.touched, np.int64, len(self.touched))
            self._touched_array.sort()
        return self._touched_array


def user_pk_or_new(session: Session, user_id: str) -> int:
    """The user's primary key; a user the store does not know yet is created (sign-up; two
    requests for the same new user at once create one row, neither fails)."""
    pk = session.connection().execute(_USER_PK, {"user_id": user_id}).scalar()
    if pk is None:
        pk = ensure_users(session, [user_id])[user_id]
    return pk


def load_state(session: Session, user_id: str, now: datetime) -> UserState:
    """Read one user's state from the store (creating the user if new, logging their first
    exposure to running experiments). :meth:`UserStates.get` runs it in a transaction of its
    own, committed before the page goes on: on SQLite a page's transaction that wrote the
    user would otherwise hold the write lock while other connections (the candidate store)
    wait for it."""
    state = _read_state(session, user_pk_or_new(session, user_id), user_id)
    state.variant = arm_overrides(session, user_id, now)
    state.exposed = True
    return state


def read_state(session: Session, user_id: str) -> UserState | None:
    """Read one user's state without writing anything (None for a user the store does not
    know): the running experiments' arms are not read, since that logs an exposure."""
    pk = session.connection().execute(_USER_PK, {"user_id": user_id}).scalar()
    if pk is None:
        return None
    return _read_state(session, pk, user_id)


def _read_state(session: Session, pk: int, user_id: str) -> UserState:
    """The state's stored parts, without the experiments' arms (``exposed`` false)."""
    return read_states(session, {pk: user_id})[pk]


def read_states(session: Session, users: dict[int, str]) -> dict[int, UserState]:
    """The stored parts of the states of ``users`` (pk -> external id), a few queries for all
    of them, without the experiments' arms (``exposed`` false)."""
    pks = list(users)
    states = {
        pk: UserState(
            pk=pk,
            user_id=user_id,
            touched=set(),
            events=0,
            last_event=0,
            hidden=set(),
            not_interested=[],
            excluded_authors=set(),
            muted_tags=frozenset(),
            followed_tags=[],
            own={},
            variant={},
            exposed=False,
        )  # fmt: skip
        for pk, user_id in users.items()
    }
    conn, bound = session.connection(), {"pks": pks}  # Core statements built once
    for event_id, user, item in conn.execute(_STATE_EVENTS, bound):
        state = states[user]
        state.touched.add(int(item))
        state.events += 1
        state.last_event = max(state.last_event, int(event_id))
    for user, item, kind, created in conn.execute(_STATE_FEEDBACK, bound):
        if kind == "hide":
            states[user].hidden.add(int(item))
        elif kind == "not_interested":
            states[user].not_interested.append((int(item), as_utc(created).timestamp()))
    for user, target in conn.execute(_STATE_BLOCKS, bound):
        states[user].excluded_authors.add(int(target))
    for user, muted_tags, followed_tags, muted_authors, *own in conn.execute(
        _STATE_SETTINGS, bound
    ):
        state = states[user]
        state.own = {n: float(v) for n, v in zip(OWN_CONTROLS, own, strict=True) if v is not None}
        state.muted_tags = frozenset(muted_tags or [])
        state.followed_tags = list(followed_tags or [])
        state.excluded_authors.update(int(a) for a in muted_authors or [])
    return states


# -- a state carried in a user's ready record ------------------------------------------------
def recent_users(limit: int) -> Select[Any]:
    """(pk, external id) of the ``limit`` users whose latest events are the newest."""
    latest = (
        select(_EVENTS.user_id, func.max(_EVENTS.id).label("last"))
        .group_by(_EVENTS.user_id)
        .order_by(func.max(_EVENTS.id).desc())
        .limit(limit)
        .subquery()
    )
    return (
        select(User.id, User.external_id)
        .join(latest, latest.c.user_id == User.id)
        .order_by(latest.c.last.desc())
    )


def log_marks(session: Session) -> dict[str, float]:
    """Where the logs a state is read from end now (read before the states: whatever is
    stored later is newer than the state)."""
    newest = session.scalar(select(func.max(FeedSettings.updated)))
    return {
        "feedback": float(session.scalar(select(func.max(FeedFeedback.id))) or 0),
        "edges": float(session.scalar(select(func.max(SocialEdge.id))) or 0),
        "removals": float(session.scalar(select(func.max(SocialEdgeRemoval.id))) or 0),
        "settings": as_utc(newest).timestamp() if newest is not None else 0.0,
    }


def stored_form(state: UserState) -> dict[str, Any]:
    """The parts of a state a ready record carries as JSON (the touched items travel as an
    array beside it; the user's id stays out: a record is stored by row number only)."""
    return {
        "events": state.events,
        "last_event": state.last_event,
        "hidden": sorted(state.hidden),
        "not_interested": [list(pair) for pair in state.not_interested],
        "excluded_authors": sorted(state.excluded_authors),
        "muted_tags": sorted(state.muted_tags),
        "followed_tags": state.followed_tags,
        "own": state.own,
        "variant": state.variant,
    }


def from_stored(pk: int, user_id: str, stored: dict[str, Any], touched: np.ndarray) -> UserState:
    """A state from :func:`stored_form` (its experiments' arms not logged: ``exposed`` false)."""
    return UserState(
        pk=pk,
        user_id=user_id,
        touched=set(touched.tolist()),
        events=stored["events"],
        last_event=stored["last_event"],
        hidden=set(stored["hidden"]),
        not_interested=[(int(i), float(t)) for i, t in stored["not_interested"]],
        excluded_authors=set(stored["excluded_authors"]),
        muted_tags=frozenset(stored["muted_tags"]),
        followed_tags=list(stored["followed_tags"]),
        own=dict(stored["own"]),
        variant=dict(stored["variant"]),
        exposed=False,
    )


def same_filters(state: UserState, stored: dict[str, Any]) -> bool:
    """Whether ``state`` filters and ranks as the stored one did, apart from its events."""
    return (
        state.hidden == set(stored["hidden"])
        and state.excluded_authors == set(stored["excluded_authors"])
        and state.muted_tags == frozenset(stored["muted_tags"])
        and state.followed_tags == stored["followed_tags"]
        and state.own == stored["own"]
        and state.variant == stored["variant"]
        and [list(pair) for pair in state.not_interested] == stored["not_interested"]
    )


#: A user's events after a log id, with a row for any feedback, edge or settings change after
#: the marks: one statement, built once (building it per page cost more than running it).
_SINCE = union_all(
    select(literal(0), Event.id, Event.item_id).where(
        Event.user_id == bindparam("pk"), Event.id > bindparam("last_event")
    ),
    select(literal(1), FeedFeedback.id, FeedFeedback.id).where(
        FeedFeedback.user_id == bindparam("pk"), FeedFeedback.id > bindparam("feedback")
    ),
    select(literal(1), SocialEdge.id, SocialEdge.id).where(
        SocialEdge.source_id == bindparam("pk"), SocialEdge.id > bindparam("edges")
    ),
    select(literal(1), SocialEdgeRemoval.id, SocialEdgeRemoval.id).where(
        SocialEdgeRemoval.source_id == bindparam("pk"),
        SocialEdgeRemoval.id > bindparam("removals"),
    ),
    select(literal(1), FeedSettings.user_id, FeedSettings.user_id).where(
        FeedSettings.user_id == bindparam("pk"), FeedSettings.updated > bindparam("settings")
    ),
)


def events_since(
    session: Session, pk: int, last_event: int, marks: dict[str, float]
) -> list[tuple[int, int]] | None:
    """The user's events stored after ``last_event`` as (event id, item pk), in one query;
    None when their feedback, social edges or settings changed after ``marks`` too (the
    state is then read afresh). Marks from before removed edges were logged count every
    removal as newer."""
    rows = (
        session.connection()
        .execute(
            _SINCE,
            {
                "pk": pk,
                "last_event": last_event,
                "feedback": int(marks["feedback"]),
                "edges": int(marks["edges"]),
                "removals": int(marks.get("removals", 0)),
                "settings": datetime.fromtimestamp(marks["settings"], UTC),
            },
        )
        .all()
    )
    if any(kind for kind, _, _ in rows):
        return None
    return sorted((int(event_id), int(item)) for _, event_id, item in rows)


def _changed_after(key: Any, user: Any) -> Select[Any]:
    """Per user bound as ``pks``, the newest row of a log keyed by ``key``."""
    return (
        select(user, func.max(key)).where(user.in_(bindparam("pks", expanding=True))).group_by(user)
    )


#: what :func:`events_since_many` reads of the users bound as ``pks``
_EVENTS_AFTER = _STATE_EVENTS.where(_EVENTS.id > bindparam("after"))
_LOGS_OF = (
    ("feedback", _changed_after(_FEEDBACK.id, _FEEDBACK.user_id)),
    ("edges", _changed_after(_EDGES.id, _EDGES.source_id)),
    ("removals", _changed_after(_REMOVALS.id, _REMOVALS.source_id)),
)
_SETTINGS_OF = select(_SETTINGS.user_id, _SETTINGS.updated).where(
    _SETTINGS.user_id.in_(bindparam("pks", expanding=True))
)


def events_since_many(
    session: Session, wanted: dict[int, tuple[int, dict[str, float]]]
) -> dict[int, list[tuple[int, int]] | None]:
    """:func:`events_since` for many users at once (pk -> (last event, marks)), in five
    statements whatever their number: a worker holding its users as it starts reads them in
    chunks this way."""
    if not wanted:
        return {}
    conn, pks = session.connection(), list(wanted)
    after = min(last for last, _ in wanted.values())
    found: dict[int, list[tuple[int, int]] | None] = {pk: [] for pk in pks}
    for event_id, user, item in conn.execute(_EVENTS_AFTER, {"pks": pks, "after": after}):
        if event_id > wanted[user][0]:
            found[user].append((int(event_id), int(item)))  # type: ignore[union-attr]
    for name, query in _LOGS_OF:
        for user, newest in conn.execute(query, {"pks": pks}):
            if newest > int(wanted[user][1].get(name, 0)):
                found[user] = None
    for user, updated in conn.execute(_SETTINGS_OF, {"pks": pks}):
        if as_utc(updated).timestamp() > wanted[user][1]["settings"]:
            found[user] = None
    return {pk: sorted(new) if new is not None else None for pk, new in found.items()}


class UserStates:
    """The states of the users a worker serves (see the module docstring)."""

    def __init__(
        self,
        sessions: sessionmaker[Session] | None = None,
        max_users: int = 50_000,
        ttl_seconds: float = 900.0,
        tail_seconds: float = 0.25,
    ):
        self.sessions = sessions
        self.max_users = max_users
        self.ttl_seconds = ttl_seconds
        self.tail_seconds = tail_seconds
        self._held: OrderedDict[str, UserState] = OrderedDict()
        self._by_pk: dict[int, UserState] = {}
        self._lock = threading.Lock()
        self._tail_lock = threading.Lock()
        self._marks: dict[str, object] | None = None
        #: bumped whenever every held state is dropped (see :meth:`hold`)
        self.generation = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: called by the tail with the row numbers of users erased since its last turn (by
        #: any process), after their states are dropped: the app reloads its models then
        self.erasure_listeners: list[Callable[[set[int]], None]] = []
        #: called after each turn of the tail thread (the ready records follow their store)
        self.turn_listeners: list[Callable[[], object]] = []

    def get(
        self,
        session: Session,
        user_id: str,
        now: datetime,
        stored: Callable[[Session, int], UserState | None] | None = None,
    ) -> UserState:
        """The user's state, loaded (on a new session on ``session``'s database) when not held
        or older than the TTL, or held without the experiments' arms (see :meth:`known`).
        ``stored(session, pk)`` gives the state a user's ready record carries, brought up to
        date, or None: a known user's state is then read from the store."""
        state = self._fresh(user_id)
        if state is not None and state.exposed:
            return state
        with Session(session.get_bind()) as own:  # committed at once: see load_state
            state = None
            if stored is not None:
                pk = own.connection().execute(_USER_PK, {"user_id": user_id}).scalar()
                state = stored(own, pk) if pk is not None else None
            if state is None:
                state = load_state(own, user_id, now)
            else:
                state.variant = arm_overrides(own, user_id, now)
                state.exposed = True
            own.commit()
        self._hold(state)
        return state

    def known(self, session: Session, user_id: str) -> UserState | None:
        """The user's state as :meth:`get` holds it, for routes that must not write and read
        only the user's events (None for a user the store does not know). A held state serves
        however old (the tail keeps its events current); one loaded here (:func:`read_state`)
        lacks the experiments' arms, and :meth:`get` loads it again before a feed page."""
        state = self.held(user_id)
        if state is not None:
            return state
        with Session(session.get_bind()) as own:
            state = read_state(own, user_id)
        if state is not None:
            self._hold(state)
        return state

    def held(self, user_id: str) -> UserState | None:
        """The user's state if held, however old (:meth:`known` without reading the store)."""
        with self._lock:
            return self._held.get(user_id)

    def _fresh(self, user_id: str) -> UserState | None:
        with self._lock:
            state = self._held.get(user_id)
            if state is not None and time.monotonic() - state.loaded < self.ttl_seconds:
                self._held.move_to_end(user_id)
                return state
        return None

    def hold(self, state: UserState, generation: int) -> bool:
        """Hold a state read elsewhere (:func:`agora.feed.online.hold_recent_users`) unless
        every held state was dropped since ``generation`` was read (it may predate the
        change); returns whether it is held."""
        return self._hold(state, generation)

    def _hold(self, state: UserState, generation: int | None = None) -> bool:
        if self.max_users > 0 and self._thread is not None:  # held only while tailing
            with self._lock:
                if generation is not None and generation != self.generation:
                    return False
                self._held[state.user_id] = state
                self._by_pk[state.pk] = state
                while len(self._held) > self.max_users:
                    _, old = self._held.popitem(last=False)
                    self._by_pk.pop(old.pk, None)
                return True
        return False

    def catch_up(self, session: Session) -> None:
        """Apply the events stored since the last tail now: ``POST /events`` calls it after its
        commit, so that the writer's own next page sees them at once. The other logs, which
        writing events leaves alone, wait for the thread's next turn (one query here)."""
        if self._thread is not None:
            with self._tail_lock:
                if self._marks is not None:
                    self._tail_events(session, self._marks)

    def forget_ids(self, user_ids: set[str]) -> None:
        """Drop the states of the users with these external ids."""
        with self._lock:
            for user_id in user_ids:
                state = self._held.pop(user_id, None)
                if state is not None:
                    self._by_pk.pop(state.pk, None)

    def forget(self, user_pks: set[int]) -> None:
        """Drop the states of ``user_pks`` (their next page loads them afresh)."""
        with self._lock:
            for pk in user_pks:
                state = self._by_pk.pop(pk, None)
                if state is not None:
                    self._held.pop(state.user_id, None)

    # -- tailing the store -------------------------------------------------------------------
    def tail(self, session: Session) -> int:
        """Apply what was stored since the last call; returns how many rows it read."""
        if self._marks is None:  # the first call only notes where the log ends
            self._marks = self._heads(session)
            return 0
        marks = self._marks
        read = self._tail_events(session, marks)
        stale: set[int] = set()
        logs = (("feedback", _NEW_FEEDBACK), ("edges", _NEW_EDGES), ("removals", _NEW_REMOVALS))
        for name, query in logs:
            rows = session.execute(query, {"after": marks[name]}).all()
            if rows:
                read += len(rows)
                marks[name] = int(rows[-1][0])
                stale.update(int(u) for _, u in rows)
        changed = session.execute(_CHANGED_SETTINGS, {"after": marks["settings"]}).all()
        for user, updated in changed:
            read += 1
            stale.add(int(user))
            marks["settings"] = max(marks["settings"], as_utc(updated))
        if stale:
            self.forget(stale)
        experiments = session.execute(_EXPERIMENTS_CHANGED).scalar()
        if experiments != marks["experiments"]:  # arms started or stopped: anyone's may differ
            marks["experiments"] = experiments
            read += 1
            with self._lock:
                self._held.clear()
                self._by_pk.clear()
                self.generation += 1
        erased = session.execute(_NEW_ERASURES, {"after": marks["erasures"]}).all()
        if erased:
            read += len(erased)
            marks["erasures"] = int(erased[-1][0])
            pks = {int(pk) for _, pk in erased}
            self.forget(pks)
            for listener in self.erasure_listeners:
                listener(pks)
        return read

    def _tail_events(self, session: Session, marks: dict[str, Any]) -> int:
        """Add the events stored after ``marks["events"]`` to their holders' states; returns
        how many it read."""
        events = session.execute(_NEW_EVENTS, {"after": marks["events"]}).all()
        if events:
            marks["events"] = int(events[-1][0])
            with self._lock:
                for event_id, user, item in events:
                    state = self._by_pk.get(int(user))
                    if state is not None and event_id > state.last_event:
                        state.touched.add(int(item))
                        state.events += 1
                        state.last_event = int(event_id)
        return len(events)

    @staticmethod
    def _heads(session: Session) -> dict[str, object]:
        def top(column) -> int:  # noqa: ANN001 - a column
            return int(session.scalar(select(func.max(column))) or 0)

        newest = session.scalar(select(func.max(FeedSettings.updated)))
        return {
            "events": top(Event.id),
            "feedback": top(FeedFeedback.id),
            "edges": top(SocialEdge.id),
            "removals": top(SocialEdgeRemoval.id),
            "experiments": session.execute(_EXPERIMENTS_CHANGED).scalar(),
            "erasures": top(UserErasure.id),
            "settings": as_utc(newest) if newest is not None else datetime(1970, 1, 1, tzinfo=UTC),
        }

    def start(self) -> None:
        """Tail the store every ``tail_seconds`` in a daemon thread (needs ``sessions``). Where
        the store's logs end is noted first, here: a state loaded from now on holds everything
        before it, and the tail applies everything after."""
        if self.sessions is None or self._thread is not None:
            return
        with self.sessions() as session, self._tail_lock:
            self._marks = self._heads(session)
        self._thread = threading.Thread(target=self._run, name="agora-feed-tail", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _run(self) -> None:
        assert self.sessions is not None
        while not self._stop.wait(self.tail_seconds):
            try:
                with self.sessions() as session, self._tail_lock:
                    self.tail(session)
                for listener in self.turn_listeners:
                    listener()
            except Exception:
                log.exception("feed state: tailing the store failed; retrying")
