"""The points ledger: applying the event log (points, visit days, badge awards, trust levels of
the users touched) and reading points and leaderboards.

The ``engagement_state`` row keeps the last ``events.id`` applied, and :func:`catch_up` applies
newer events in id order (points with daily caps to the append-only ledger, visit days, badge
awards, then the trust level of every user they touched). Reads never write: ``POST /events``
catches up after its answer (a small backlog; :func:`apply_after_write`), the writes of
``engagement_after_write_seconds`` together, and the background job of ``agora serve`` catches
up every few seconds (events written by other routes and imports); :func:`pending_events` says
how many stored events reads do not count yet. :func:`replay` clears the derived tables and
applies every stored event again under the current rules; applying in id
order makes a replay give the same ledger and awards as the increments did. When the rules'
fingerprint differs from the one the ledger was built under, :func:`catch_up` replays.

A catch-up reads the trust counts of the users its pending events touch before it locks the
state row (on SQLite that lock is the database's write lock, which event writes queue behind),
and counts an author's likes received only where they can change the level; under the lock it
applies those events and stores the levels.

Post-attribute badges (e.g. a Stack Exchange score, an item attribute rather than events) are
checked when an item is new and when it gets an event; a replay checks every item.
Trust levels count upheld flags over a window ending at ``now``: the stored level is as of the
user's latest applied event, :func:`.trust_levels.trust` computes it at request time.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from agora.db.engine import insert_for
from agora.db.tables import Event, Item
from agora.engagement.config import BadgeRule, EngagementConfig, PointRule
from agora.engagement.models import (
    ActiveDay,
    BadgeAward,
    EngagementState,
    LedgerEntry,
    PointsTotal,
    TrustState,
)
from agora.engagement.service import IN_CHUNK, chunks, external_users, streak
from agora.engagement.trust_levels import (
    EVENT_METRICS,
    EarlyCounts,
    decides,
    level_requirements,
    store_trust,
    substitutions,
    trust_metrics,
)
from agora.ingest.schemas import as_utc
from agora.ingest.service import known_user_pk

STATE_ID = 1
GAP_SECONDS = 600.0  # longer than any transaction that writes events
MAX_GAPS = 1000
DERIVED = (LedgerEntry, PointsTotal, ActiveDay, BadgeAward, TrustState)


# -- applying events ----------------------------------------------------------------------------
def _lock_state(session: Session, now: datetime) -> EngagementState:
    """The state row, locked for this transaction so concurrent catch-ups apply events once."""
    if session.get_bind().dialect.name == "sqlite":  # a write first takes SQLite's write lock
        session.execute(
            update(EngagementState).where(EngagementState.id == STATE_ID).values(updated=now)
        )
    stmt = (
        select(EngagementState)
        .where(EngagementState.id == STATE_ID)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    state = session.scalar(stmt)
    if state is None:
        try:
            with session.begin_nested():
                session.add(
                    EngagementState(
                        id=STATE_ID, event_cursor=0, item_cursor=0, rules="", gaps=[], updated=now
                    )
                )
        except IntegrityError:  # created by a concurrent request meanwhile
            pass
        state = session.scalar(stmt)
    assert state is not None
    return state


def _clear(session: Session, state: EngagementState, config: EngagementConfig) -> None:
    for table in DERIVED:
        session.execute(delete(table))
    state.event_cursor = 0
    state.item_cursor = 0
    state.gaps = []
    state.rules = config.fingerprint()


@dataclass
class _Run:
    """Counters of one catch-up, loaded from the store on first use and kept in memory."""

    start: int  # events with id <= start were applied before this run (but the pending ones)
    pending: list[int] = field(default_factory=list)
    capped: dict[tuple[int, str, date], int] = field(default_factory=dict)
    on_item: dict[tuple[int, str], int] = field(default_factory=dict)
    by_actor: dict[tuple[int, str], int] = field(default_factory=dict)
    by_others: dict[tuple[int, str], int] = field(default_factory=dict)
    days: dict[int, set[date]] = field(default_factory=dict)
    awards: set[tuple[int, str, int | None]] = field(default_factory=set)
    award_users: set[int] = field(default_factory=set)  # their per-user awards are loaded
    award_posts: set[tuple[int, int]] = field(default_factory=set)  # (author, item): loaded
    checked_items: set[int] = field(default_factory=set)
    touched: set[int] = field(default_factory=set)
    seen: set[int] | None = None  # pending events the early trust counts saw (None: none)
    unseen: set[int] = field(default_factory=set)  # users of events applied but not seen


@dataclass
class _Ev:
    id: int
    user: int
    item: int
    type: str
    ts: datetime
    author: int | None

    @property
    def day(self) -> date:
        return self.ts.date()


#: Pending events up to which a catch-up reads the trust counts before taking the lock.
EARLY_MAX = 100_000


def _state_row(session: Session) -> Any:
    """The state row's cursors, rules and gaps, read without a lock (None: no catch-up yet)."""
    return session.execute(
        select(
            EngagementState.event_cursor,
            EngagementState.item_cursor,
            EngagementState.rules,
            EngagementState.gaps,
        ).where(EngagementState.id == STATE_ID)
    ).first()


def _early_counts(
    session: Session, config: EngagementConfig, now: datetime, row: Any
) -> EarlyCounts | None:  # fmt: skip
    """:data:`EVENT_METRICS` of the actors and authors of the events pending after the state
    ``row``'s cursor and gaps; None when there is none. Likes received (costly for prolific
    authors) are counted only where they can change the level."""
    cursor, gaps = (row.event_cursor, [int(i) for i, _ in row.gaps or []]) if row else (0, [])
    pending = Event.id > cursor
    if gaps:
        pending = pending | Event.id.in_(gaps[-IN_CHUNK:])
    rows = session.execute(
        select(Event.id, Event.user_id, Item.author_id)
        .join(Item, Item.id == Event.item_id)
        .where(pending)
        .limit(EARLY_MAX + 1)
    ).all()
    if not rows:
        return None
    if len(rows) > EARLY_MAX:  # a replay-sized backlog: counted under the lock
        return EarlyCounts()
    users = sorted({r[1] for r in rows} | {r[2] for r in rows if r[2] is not None})
    stand_ins = substitutions(session, config)
    cheap = [m for m in EVENT_METRICS if m != "likes_received"]
    counts: dict[int, dict[str, int | None]] = trust_metrics(  # type: ignore[assignment]
        session, config, users, now, stand_ins, which=cheap
    )
    requirements = level_requirements(config)
    wanted = [u for u in users if decides(requirements, counts[u], "likes_received")]
    received = trust_metrics(session, config, wanted, now, stand_ins, which=["likes_received"])
    for user in users:
        counts[user].update(received.get(user, {"likes_received": None}))
    return EarlyCounts({r[0] for r in rows}, counts, max(r[0] for r in rows), stand_ins)


def catch_up(session: Session, config: EngagementConfig, now: datetime) -> int:
    """Apply the events stored since the last call (those stored when it starts: later ones are
    the next call's); returns how many were applied.

    Replays everything instead when the rules changed since the ledger was built."""
    return _catch_up(session, config, now, _state_row(session))


def _catch_up(session: Session, config: EngagementConfig, now: datetime, row: Any) -> int:
    """:func:`catch_up` from the state ``row`` read already."""
    early = _early_counts(session, config, now, row)
    if early is None and _up_to_date(session, config, row):
        return 0  # no write: reads do not queue behind one another
    state = _lock_state(session, now)
    if state.rules != config.fingerprint():
        _clear(session, state, config)
        early = None
    return _apply(session, config, state, now, early)


#: ``apply_after_write`` applies at most this many new events inline; more are left to the
#: background job (a write must never turn into a minutes-long catch-up).
AFTER_WRITE_MAX = 2000


def _cursor(row: Any, config: EngagementConfig) -> int:
    """The last event id counted (0 when the rules changed: the next catch-up replays)."""
    return 0 if row is None or row.rules != config.fingerprint() else row.event_cursor


def pending_events(session: Session, config: EngagementConfig) -> int:
    """Stored events the derived tables do not count yet (all of them when the rules changed
    since the ledger was built: the next catch-up replays)."""
    cursor = _cursor(_state_row(session), config)
    return int(session.scalar(select(func.count()).where(Event.id > cursor)) or 0)


def apply_after_write(session: Session, config: EngagementConfig, now: datetime) -> bool:
    """Catch up now when at most :data:`AFTER_WRITE_MAX` events are pending (so that new
    events count within moments of being stored); returns False, applying nothing, when the
    backlog is for the background job."""
    row = _state_row(session)
    beyond = (
        select(Event.id)
        .where(Event.id > _cursor(row, config))
        .order_by(Event.id)
        .offset(AFTER_WRITE_MAX)
        .limit(1)
    )
    if session.scalar(beyond) is not None:
        return False
    _catch_up(session, config, now, row)
    return True


def _up_to_date(session: Session, config: EngagementConfig, row: Any) -> bool:
    """Whether the state ``row`` counts everything, given that no event is pending after its
    cursor: same rules, no gap left, and no new item for post-attribute badges."""
    if row is None or row.rules != config.fingerprint() or row.gaps:
        return False
    if any(b.kind == "post_attribute" for b in config.badges):
        return (session.scalar(select(func.max(Item.id))) or 0) <= row.item_cursor
    return True


def replay(session: Session, config: EngagementConfig, now: datetime) -> int:
    """Rebuild the ledger, totals, visit days, badges and trust levels from every stored event
    under ``config``; returns how many events were applied."""
    state = _lock_state(session, now)
    _clear(session, state, config)
    return _apply(session, config, state, now)


def _event_rows(session: Session, condition: Any, limit: int | None = None) -> list[_Ev]:
    stmt = (
        select(Event.id, Event.user_id, Event.item_id, Event.type, Event.timestamp)
        .add_columns(Item.author_id)
        .join(Item, Item.id == Event.item_id)
        .where(condition)
        .order_by(Event.id)
        .limit(limit)
    )
    return [_Ev(r[0], r[1], r[2], r[3], as_utc(r[4]), r[5]) for r in session.execute(stmt)]


def _apply(
    session: Session,
    config: EngagementConfig,
    state: EngagementState,
    now: datetime,
    early: EarlyCounts | None = None,
) -> int:
    stamp = now.timestamp()
    gaps = {int(i): seen for i, seen in state.gaps or [] if stamp - seen < GAP_SECONDS}
    run = _Run(start=state.event_cursor, pending=sorted(gaps), seen=early.events if early else None)
    attribute_badges = [b for b in config.badges if b.kind == "post_attribute"]
    applied = 0
    if gaps:  # events committed after later ones: applied now, out of id order
        late = _event_rows(session, Event.id.in_(sorted(gaps)))
        if late:
            _apply_events(session, config, late, run, attribute_badges)
            applied += len(late)
            for e in late:
                del gaps[e.id]
        run.pending = sorted(gaps)
    if attribute_badges:  # the item cursor only matters to them
        max_item = session.scalar(select(func.max(Item.id))) or 0
        for low in range(state.item_cursor, max_item, config.batch_size):
            high = min(low + config.batch_size, max_item)
            items = select(Item.id).where(Item.id > low, Item.id <= high).order_by(Item.id)
            _check_attributes(session, attribute_badges, list(session.scalars(items)), run)
        state.item_cursor = max(max_item, state.item_cursor)
    cursor = state.event_cursor
    upto = early.upto if early else None  # later events: the next catch-up
    while True:
        events = _event_rows(
            session,
            (Event.id > cursor) & (Event.id <= upto) if upto else Event.id > cursor,
            config.batch_size,
        )
        if not events:
            break
        _apply_events(session, config, events, run, attribute_badges)
        seen = {e.id for e in events}
        low = max(cursor + 1, events[-1].id - MAX_GAPS)
        gaps.update({i: stamp for i in range(low, events[-1].id) if i not in seen})
        cursor, applied = events[-1].id, applied + len(events)
        if len(events) < config.batch_size:  # the last batch
            break
    if run.touched:
        store_trust(session, config, sorted(run.touched), now, early, run.unseen)
    state.event_cursor = cursor
    state.gaps = [[i, gaps[i]] for i in sorted(gaps)[-MAX_GAPS:]]
    state.updated = now
    session.flush()
    return applied


def _apply_events(
    session: Session, config: EngagementConfig, events: list[_Ev], run: _Run,
    attribute_badges: list[BadgeRule],
) -> None:  # fmt: skip
    _apply_batch(session, config, events, run)
    if attribute_badges:
        fresh = sorted({e.item for e in events} - run.checked_items)
        _check_attributes(session, attribute_badges, fresh, run)


def _load_awards(
    session: Session, run: _Run, users: Iterable[int], posts: Iterable[tuple[int, int]]
) -> None:  # fmt: skip
    """The stored awards this run could give again: the per-user badges of ``users`` and the
    per-post badges of ``posts`` (author, item), not those on the authors' other posts."""
    wanted: list[tuple[int, int | None]] = [(u, None) for u in sorted(set(users) - run.award_users)]
    wanted += sorted(set(posts) - run.award_posts)
    for part in chunks(wanted):
        owners = sorted({u for u, _ in part})
        on_posts = sorted({i for _, i in part if i is not None})
        on = BadgeAward.item_id.is_(None)
        if on_posts:
            on = on | BadgeAward.item_id.in_(on_posts)
        rows = session.execute(
            select(BadgeAward.user_id, BadgeAward.badge, BadgeAward.item_id).where(
                BadgeAward.user_id.in_(owners), on
            )
        )
        run.awards.update((u, b, i) for u, b, i in rows)
        run.award_users.update(owners)
        run.award_posts.update((u, i) for u, i in part if i is not None)


def _award(
    run: _Run, awards: list[dict], user: int, badge: BadgeRule, item: int | None,
    when: datetime, event: int | None,
) -> None:  # fmt: skip
    key = (user, badge.name, item if badge.each_post else None)
    if key in run.awards:
        return
    run.awards.add(key)
    awards.append(
        {
            "user_id": user,
            "badge": badge.name,
            "item_id": key[2],
            "event_id": event,
            "awarded": when,
        }
    )


def _load_counts(session: Session, run: _Run, events: list[_Ev], config: EngagementConfig) -> None:
    """Counts of events applied before this run, for the keys this batch needs."""
    rules = config.badges
    item_types = {b.event for b in rules if b.kind == "post_events"}
    actor_types = {b.event for b in rules if b.kind == "count" and b.who == "actor"}
    other_types = {b.event for b in rules if b.kind == "count" and b.who == "author"}
    need_item = {(e.item, e.type) for e in events if e.type in item_types} - run.on_item.keys()
    need_actor = {(e.user, e.type) for e in events if e.type in actor_types} - run.by_actor.keys()
    need_other = {
        (e.author, e.type) for e in events if e.type in other_types and e.author is not None
    } - run.by_others.keys()
    for key in need_item:
        run.on_item[key] = 0
    for key in need_actor:
        run.by_actor[key] = 0
    for key in need_other:
        run.by_others[key] = 0  # type: ignore[index]
    if run.start == 0:
        return
    others = Event.user_id != func.coalesce(Item.author_id, -1)
    for keys, target, column, extra in (
        (need_item, run.on_item, Event.item_id, others),
        (need_actor, run.by_actor, Event.user_id, None),
        (need_other, run.by_others, Item.author_id, others),
    ):
        for etype in {t for _, t in keys}:
            ids = sorted({k for k, t in keys if t == etype})
            for part in chunks(ids):
                stmt = (
                    select(column, func.count())
                    .select_from(Event)
                    .join(Item, Item.id == Event.item_id)
                    .where(Event.type == etype, Event.id <= run.start, column.in_(part))
                    .group_by(column)
                )
                if run.pending:  # not applied yet: counted when they are
                    stmt = stmt.where(Event.id.not_in(run.pending))
                if extra is not None:
                    stmt = stmt.where(extra)
                for key, n in session.execute(stmt):
                    target[(key, etype)] = n


def _load_days(session: Session, run: _Run, users: set[int]) -> None:
    wanted = sorted(users - run.days.keys())
    for user in wanted:
        run.days[user] = set()
    for part in chunks(wanted):
        rows = session.execute(
            select(ActiveDay.user_id, ActiveDay.day).where(ActiveDay.user_id.in_(part))
        )
        for user, day in rows:
            run.days[user].add(day)


def _load_caps(
    session: Session, run: _Run, keys: set[tuple[int, str, date]]
) -> None:  # fmt: skip
    wanted = keys - run.capped.keys()
    for key in wanted:
        run.capped[key] = 0
    if run.start == 0 or not wanted:
        return
    users = sorted({u for u, _, _ in wanted})
    days = sorted({d for _, _, d in wanted})
    rules = sorted({r for _, r, _ in wanted})
    # ``day`` is the UTC date of ``created``: a range on the (user, created) index, a day wider
    # either way, spares reading the users' whole ledgers
    since = datetime.combine(days[0] - timedelta(days=1), datetime.min.time(), UTC)
    until = datetime.combine(days[-1] + timedelta(days=2), datetime.min.time(), UTC)
    for part in chunks(users):
        rows = session.execute(
            select(
                LedgerEntry.user_id, LedgerEntry.rule, LedgerEntry.day, func.sum(LedgerEntry.points)
            )
            .where(
                LedgerEntry.user_id.in_(part),
                LedgerEntry.created >= since,
                LedgerEntry.created < until,
                LedgerEntry.rule.in_(rules),
                LedgerEntry.day.in_(days),
            )
            .group_by(LedgerEntry.user_id, LedgerEntry.rule, LedgerEntry.day)
        )
        for user, rule, day, total in rows:
            if (user, rule, day) in wanted:
                run.capped[(user, rule, day)] = abs(int(total))


@dataclass
class _BadgesByKind:
    """The configured badges, by what they count."""

    post: list[BadgeRule]  # events of others on one post
    actor: list[BadgeRule]  # events the user made
    others: list[BadgeRule]  # events of others on the user's posts
    streak: list[BadgeRule]  # consecutive visit days

    @classmethod
    def of(cls, badges: Sequence[BadgeRule]) -> _BadgesByKind:
        return cls(
            [b for b in badges if b.kind == "post_events"],
            [b for b in badges if b.kind == "count" and b.who == "actor"],
            [b for b in badges if b.kind == "count" and b.who == "author"],
            [b for b in badges if b.kind == "streak"],
        )


def _apply_batch(
    session: Session, config: EngagementConfig, events: list[_Ev], run: _Run
) -> None:  # fmt: skip
    """Apply a batch of events in id order: points (with daily caps), count badges, visit days
    and streak badges; the rows written at once."""
    rules_by_type: dict[str, list[PointRule]] = defaultdict(list)
    for rule in config.points:
        rules_by_type[rule.event].append(rule)
    badges = _BadgesByKind.of(config.badges)
    _load_batch(session, config, events, run, rules_by_type)
    entries: list[dict] = []
    awards: list[dict] = []
    new_days: list[dict] = []
    for e in events:
        entries += _points_entries(e, rules_by_type.get(e.type, ()), run)
        _count_badges(e, badges, run, awards)
        days = run.days[e.user]
        if e.day not in days:
            days.add(e.day)
            new_days.append({"user_id": e.user, "day": e.day})
            if badges.streak:
                length = streak(days, e.day)
                for b in badges.streak:
                    if length >= b.threshold:
                        _award(run, awards, e.user, b, None, e.ts, e.id)
    _write_batch(session, entries, new_days, awards)


def _load_batch(
    session: Session,
    config: EngagementConfig,
    events: list[_Ev],
    run: _Run,
    rules_by_type: Mapping[str, list[PointRule]],
) -> None:
    """Read what the batch's events build on (awards, counts, visit days, capped points) for
    the users they touch, marking the users of events not seen before the lock."""
    users = {e.user for e in events} | {e.author for e in events if e.author is not None}
    run.touched |= users
    for e in events:
        if run.seen is None or e.id not in run.seen:
            run.unseen.update(u for u in (e.user, e.author) if u is not None)
    _load_awards(session, run, users, {(e.author, e.item) for e in events if e.author is not None})
    _load_counts(session, run, events, config)
    _load_days(session, run, {e.user for e in events})
    cap_keys = set()
    for e in events:
        for rule in rules_by_type.get(e.type, ()):
            if rule.daily_cap is not None:
                to = e.user if rule.to == "actor" else e.author
                if to is not None:
                    cap_keys.add((to, rule.name, e.day))
    _load_caps(session, run, cap_keys)


def _points_entries(e: _Ev, rules: Sequence[PointRule], run: _Run) -> list[dict]:
    """The ledger entries of one event: one per rule that pays someone, within its daily cap."""
    entries = []
    for rule in rules:
        to = e.user if rule.to == "actor" else e.author
        if to is None or (rule.to == "author" and to == e.user and not rule.include_self):
            continue
        points, capped = rule.points, False
        if rule.daily_cap is not None:
            key = (to, rule.name, e.day)
            room = rule.daily_cap - run.capped[key]
            if room <= 0:
                continue
            if abs(points) > room:
                points, capped = room if points > 0 else -room, True
            run.capped[key] += abs(points)
        entries.append(
            {
                "user_id": to,
                "rule": rule.name,
                "points": points,
                "capped": capped,
                "event_id": e.id,
                "item_id": e.item,
                "day": e.day,
                "created": e.ts,
            }
        )
    return entries


def _count_badges(e: _Ev, badges: _BadgesByKind, run: _Run, awards: list[dict]) -> None:
    """Count one event for the count badges it feeds and award those it completes."""
    by_other = e.author is not None and e.author != e.user
    if by_other and (e.item, e.type) in run.on_item:
        run.on_item[(e.item, e.type)] += 1
        for b in badges.post:
            if b.event == e.type and run.on_item[(e.item, e.type)] >= b.threshold:
                _award(run, awards, e.author, b, e.item, e.ts, e.id)  # type: ignore[arg-type]
    if (e.user, e.type) in run.by_actor:
        run.by_actor[(e.user, e.type)] += 1
        for b in badges.actor:
            if b.event == e.type and run.by_actor[(e.user, e.type)] >= b.threshold:
                _award(run, awards, e.user, b, None, e.ts, e.id)
    if by_other and (e.author, e.type) in run.by_others:
        run.by_others[(e.author, e.type)] += 1  # type: ignore[index]
        for b in badges.others:
            if b.event == e.type and run.by_others[(e.author, e.type)] >= b.threshold:  # type: ignore[index]
                _award(run, awards, e.author, b, None, e.ts, e.id)  # type: ignore[arg-type]


def _write_batch(
    session: Session, entries: list[dict], new_days: list[dict], awards: list[dict]
) -> None:
    """Insert the batch's ledger entries (adding them to the totals), visit days and awards."""
    if entries:
        session.execute(insert(LedgerEntry), entries)
        totals: Counter[int] = Counter()
        for entry in entries:
            totals[entry["user_id"]] += entry["points"]
        _add_totals(session, totals)
    if new_days:
        session.execute(insert(ActiveDay), new_days)
    if awards:
        session.execute(insert(BadgeAward), awards)


def _add_totals(session: Session, deltas: Counter[int]) -> None:
    """Add ``deltas`` to the users' totals: one upsert for the whole batch."""
    table = PointsTotal.__table__
    stmt = insert_for(session, table)
    stmt = stmt.on_conflict_do_update(
        index_elements=["user_id"], set_={"points": table.c.points + stmt.excluded.points}
    )
    session.execute(stmt, [{"user_id": u, "points": deltas[u]} for u in sorted(deltas)])


def _meets(attributes: dict[str, Any], badge: BadgeRule) -> bool:
    if badge.post_type is not None and attributes.get("post_type") != badge.post_type:
        return False
    for cond in badge.conditions:
        value = attributes.get(cond.attribute)
        if value is None:
            return False
        try:
            if cond.op == "eq" and value != cond.value:
                return False
            if cond.op == "ge" and not value >= cond.value:
                return False
            if cond.op == "le" and not value <= cond.value:
                return False
        except TypeError:  # an attribute of another type than the condition's value
            return False
    return True


def _check_attributes(
    session: Session, badges: list[BadgeRule], items: list[int], run: _Run
) -> None:  # fmt: skip
    """Award post-attribute badges for these items (in id order) to their authors."""
    awards: list[dict] = []
    for part in chunks(items):
        rows = session.execute(
            select(Item.id, Item.author_id, Item.attributes, Item.created)
            .where(Item.id.in_(part), Item.author_id.is_not(None))
            .order_by(Item.id)
        ).all()
        _load_awards(session, run, {r[1] for r in rows}, {(r[1], r[0]) for r in rows})
        for item, author, attributes, created in rows:
            for b in badges:
                if _meets(attributes or {}, b):
                    _award(run, awards, author, b, item, as_utc(created), None)
            run.touched.add(author)
    run.checked_items.update(items)
    if awards:
        session.execute(insert(BadgeAward), awards)


# -- points -------------------------------------------------------------------------------------
@dataclass
class PointsReport:
    user_id: str
    total: int
    by_rule: dict[str, int]
    recent: list[dict[str, Any]]


def points(
    session: Session, config: EngagementConfig, user_id: str, now: datetime, n: int = 20
) -> PointsReport:
    """A user's total, their points per rule and their ``n`` latest ledger entries."""
    pk = known_user_pk(session, user_id)
    total = session.scalar(select(PointsTotal.points).where(PointsTotal.user_id == pk)) or 0
    by_rule = dict(
        session.execute(
            select(LedgerEntry.rule, func.sum(LedgerEntry.points))
            .where(LedgerEntry.user_id == pk)
            .group_by(LedgerEntry.rule)
        ).all()
    )
    rows = session.execute(
        select(LedgerEntry, Item.external_id)
        .outerjoin(Item, Item.id == LedgerEntry.item_id)
        .where(LedgerEntry.user_id == pk)
        .order_by(LedgerEntry.created.desc(), LedgerEntry.id.desc())
        .limit(n)
    ).all()
    recent = [
        {
            "rule": entry.rule,
            "points": entry.points,
            "capped": entry.capped,
            "item_id": item,
            "created": as_utc(entry.created),
        }
        for entry, item in rows
    ]
    return PointsReport(user_id, int(total), {k: int(v) for k, v in by_rule.items()}, recent)


def leaderboard(
    session: Session,
    config: EngagementConfig,
    now: datetime,
    period: str = "all",
    tag: str | None = None,
    n: int = 20,
) -> list[dict[str, Any]]:
    """Users ranked by points from the ledger: all time or the last 7 days (``week``),
    optionally only points earned on items with ``tag``."""
    if period not in ("all", "week"):
        raise ValueError(f"period must be 'all' or 'week', not {period!r}")
    since = now - timedelta(days=7) if period == "week" else None
    scores: Counter[int] = Counter()
    if tag is None and since is None:
        rows = session.execute(select(PointsTotal.user_id, PointsTotal.points)).all()
        scores.update({u: p for u, p in rows})
    else:
        stmt = select(LedgerEntry.user_id, LedgerEntry.points)
        if tag is not None:
            stmt = stmt.add_columns(Item.tags).join(Item, Item.id == LedgerEntry.item_id)
        if since is not None:
            stmt = stmt.where(LedgerEntry.created >= since)
        for row in session.execute(stmt):
            if tag is None or tag in (row[2] or ()):
                scores[row[0]] += row[1]
    ranked = sorted(scores.items(), key=lambda up: (-up[1], up[0]))[:n]
    names = external_users(session, [u for u, _ in ranked])
    return [
        {"rank": rank, "user_id": names[u], "points": int(p)}
        for rank, (u, p) in enumerate(ranked, 1)
    ]


def points_since(session: Session, pk: int, since: datetime) -> int:
    """Points the user earned (or lost) after ``since``."""
    total = session.scalar(
        select(func.sum(LedgerEntry.points)).where(
            LedgerEntry.user_id == pk, LedgerEntry.created > since
        )
    )
    return int(total or 0)
