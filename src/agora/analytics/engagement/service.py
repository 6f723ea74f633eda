"""Engagement analytics over the store: active users, interaction rates, retention cohorts,
time to first response and how concentrated attention is (Gini, Lorenz curve).

Every function runs one or two SQL queries (aggregates where SQL does it on both databases, else
event times as epoch seconds) and finishes with numpy, so a million events take seconds.
Times are UTC; days start at midnight, weeks on Monday (ISO weeks). Events a user makes on their
own item (a Stack Exchange ``ask``, an author commenting on their post) are not engagement with
it: rates, response times and attention count only other users' events.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
from sqlalchemy import ColumnElement, Float, Select, and_, case, cast, func, or_, select
from sqlalchemy.orm import Session, aliased

from agora.db.tables import TIME_CEILING, TIME_FLOOR, Event, Item, User

DAY = 86_400
WEEK = 7 * DAY
#: 1970-01-01 was a Thursday: shifting by 3 days puts week boundaries on Mondays.
MONDAY_SHIFT = 3 * DAY
BUCKETS = {"day": DAY, "week": WEEK}
#: Event types that answer a post, for :func:`time_to_first_response`.
RESPONSE_TYPES = ("answer", "comment")
#: Points of a returned Lorenz curve (the curve is sampled evenly over the population).
LORENZ_POINTS = 101


def _epoch(session: Session, column: ColumnElement) -> ColumnElement:
    """``column`` (a timestamp) as epoch seconds, in the session's SQL dialect, clamped to the
    engine's time span as the ORM reads it (an odd stored time cannot make a span of millennia)."""
    low, high = TIME_FLOOR.timestamp(), TIME_CEILING.timestamp()
    if session.get_bind().dialect.name == "sqlite":
        return func.max(func.min(cast(func.strftime("%s", column), Float), high), low)
    clamped = func.greatest(func.least(func.extract("epoch", column), high), low)
    return case((column.is_(None), None), else_=clamped)  # PostgreSQL's least() skips NULLs


def _bucket_index(seconds: np.ndarray, width: int) -> np.ndarray:
    """Whole days or Monday-aligned weeks since the epoch."""
    shift = MONDAY_SHIFT if width == WEEK else 0
    return np.floor_divide(seconds.astype(np.int64) + shift, width)


def _bucket_start(index: int, width: int) -> datetime:
    shift = MONDAY_SHIFT if width == WEEK else 0
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=int(index) * width - shift)


def _columns(session: Session, stmt: Select, n: int) -> list[np.ndarray]:
    """The ``n`` columns of ``stmt``'s rows as float arrays (NULL becomes NaN), without
    touching every row in Python (a row list through ``np.asarray`` is 10x slower)."""
    rows = session.execute(stmt).all()
    if not rows:
        return [np.zeros(0) for _ in range(n)]
    return [np.array(column, dtype=np.float64) for column in zip(*rows, strict=True)]


def _user_times(
    session: Session, since: datetime | None = None, until: datetime | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Every event's user id and time (epoch seconds), optionally within ``[since, until)``."""
    stmt = select(Event.user_id, _epoch(session, Event.timestamp))
    if since is not None:
        stmt = stmt.where(Event.timestamp >= since)
    if until is not None:
        stmt = stmt.where(Event.timestamp < until)
    users, seconds = _columns(session, stmt, 2)
    return users.astype(np.int64), seconds


def _distinct_pairs(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct ``(a, b)`` pairs of two non-negative int arrays, sorted by a then b."""
    width = int(b.max()) + 1
    key = np.unique(a * width + b)
    return key // width, key % width


# --------------------------------------------------------------------------- active users


@dataclass(frozen=True)
class ActivePoint:
    start: datetime
    users: int
    events: int


def active_users(
    session: Session,
    bucket: str = "day",
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[ActivePoint]:
    """Distinct users with any event per day (DAU) or per ISO week (WAU), from the first to the
    last active bucket in ``[since, until)``; buckets without events are included with 0."""
    if bucket not in BUCKETS:
        raise ValueError(f"bucket must be one of {', '.join(BUCKETS)}, not {bucket!r}")
    width = BUCKETS[bucket]
    users, seconds = _user_times(session, since, until)
    if users.size == 0:
        return []
    index = _bucket_index(seconds, width)
    first = int(index.min())
    offset = index - first
    n = int(offset.max()) + 1
    events = np.bincount(offset, minlength=n)
    distinct = np.bincount(_distinct_pairs(offset, users)[0], minlength=n)
    return [
        ActivePoint(_bucket_start(first + i, width), int(distinct[i]), int(events[i]))
        for i in range(n)
    ]


# --------------------------------------------------------------------------- interaction rates


@dataclass(frozen=True)
class InteractionRate:
    """Other users' events on a post (or on an author's posts) and the rate they come at."""

    key: str
    items: int
    events: int
    users: int
    #: events per item-day: per day since the post was created, up to the store's last event
    rate: float


def interaction_rates(session: Session, by: str = "item", top: int = 20) -> list[InteractionRate]:
    """Posts (``by="item"``) or authors (``by="author"``) by their interaction rate: events by
    other users per day since the post was created (up to the store's last event), summed over
    an author's posts and divided by their post-days. Largest first; at least one day each."""
    if by not in ("item", "author"):
        raise ValueError(f"by must be 'item' or 'author', not {by!r}")
    end = session.scalar(select(func.max(_epoch(session, Event.timestamp))))
    if end is None:
        return []
    stmt = (
        select(
            Item.id,
            Item.author_id,
            _epoch(session, Item.created),
            func.count(Event.id),
            func.count(Event.user_id.distinct()),
        )
        .select_from(Item)
        .join(
            Event,
            and_(
                Event.item_id == Item.id,
                or_(Item.author_id.is_(None), Event.user_id != Item.author_id),
            ),
        )
        .group_by(Item.id, Item.author_id, Item.created)
    )
    if by == "author":
        stmt = stmt.where(Item.author_id.is_not(None))
    ids, authors, created, n_events, n_users = _columns(session, stmt, 5)
    if ids.size == 0:
        return []
    days = np.maximum((float(end) - created) / DAY, 1.0)
    if by == "item":
        keys, items, events, users = ids, np.ones(ids.size), n_events, n_users
    else:
        # distinct users per author need SQL (a user can engage with several of their posts)
        author_users = dict(
            session.execute(
                select(Item.author_id, func.count(Event.user_id.distinct()))
                .join(Event, Event.item_id == Item.id)
                .where(Item.author_id.is_not(None), Event.user_id != Item.author_id)
                .group_by(Item.author_id)
            ).all()
        )
        keys, inverse = np.unique(authors, return_inverse=True)
        items = np.bincount(inverse)
        events = np.bincount(inverse, weights=n_events)
        days = np.bincount(inverse, weights=days)
        users = np.asarray([author_users[int(k)] for k in keys], dtype=np.float64)
    rate = events / days
    order = np.lexsort((keys, -rate))[:top]
    table = User if by == "author" else Item
    names = dict(
        session.execute(
            select(table.id, table.external_id).where(table.id.in_([int(k) for k in keys[order]]))
        ).all()
    )
    return [
        InteractionRate(
            names[int(keys[i])], int(items[i]), int(events[i]), int(users[i]), float(rate[i])
        )
        for i in order
    ]


# --------------------------------------------------------------------------- retention


@dataclass(frozen=True)
class Cohort:
    """Users whose first event fell in the week starting ``start``, and the share of them active
    in week N after (``retention[0]`` is 1.0; None where week N is past the data)."""

    start: datetime
    users: int
    retention: list[float | None]


@dataclass(frozen=True)
class Retention:
    cohorts: list[Cohort]
    #: Share active in week N over all cohorts that reached week N (weighted by cohort size).
    overall: list[float | None]


@dataclass(frozen=True)
class CohortPairs:
    """Each user's distinct active weeks against their first week (their cohort): what the
    retention figures count, exact or released with differential privacy."""

    pair_user: np.ndarray  # per (user, active week) pair, sorted by user then week
    n_after: np.ndarray  # per pair: weeks since the user's first week
    c_index: np.ndarray  # per pair: index of the user's cohort in ``cohorts``
    first_week: np.ndarray  # per user: their first week
    cohorts: np.ndarray  # the distinct first weeks, ascending
    last_week: int  # the newest week with an event


def cohort_pairs(users: np.ndarray, seconds: np.ndarray) -> CohortPairs:
    """:class:`CohortPairs` of events given as user and epoch seconds (at least one)."""
    week = _bucket_index(seconds, WEEK)
    first = int(week.min())
    pair_user, pair_week = _distinct_pairs(users, week - first)  # sorted by user, then week
    pair_week += first
    _, first_at = np.unique(pair_user, return_index=True)
    first_week = pair_week[first_at]
    cohort_of_pair = np.repeat(first_week, np.diff(np.append(first_at, pair_user.size)))
    cohorts = np.unique(first_week)
    return CohortPairs(
        pair_user,
        pair_week - cohort_of_pair,
        np.searchsorted(cohorts, cohort_of_pair),
        first_week,
        cohorts,
        int(week.max()),
    )


def retention_cohorts(session: Session, weeks: int = 8) -> Retention:
    """Weekly cohorts by first event and their week-0..``weeks`` retention: a user counts in
    week N if they have any event in the N-th week after their first week (weeks between do
    not matter: active in weeks 0 and 2 counts for week 2, not week 1)."""
    if weeks < 0:
        raise ValueError(f"weeks must be >= 0, not {weeks}")
    users, seconds = _user_times(session)
    if users.size == 0:
        return Retention([], [None] * (weeks + 1))
    pairs = cohort_pairs(users, seconds)
    keep = pairs.n_after <= weeks
    active = np.zeros((len(pairs.cohorts), weeks + 1), dtype=np.int64)
    np.add.at(active, (pairs.c_index[keep], pairs.n_after[keep]), 1)
    return retention_from(active, pairs.cohorts, pairs.last_week)


def retention_from(active: np.ndarray, cohorts: np.ndarray, last_week: int) -> Retention:
    """:class:`Retention` from ``active[c, n]``: the users of cohort ``c`` (first week
    ``cohorts[c]``, ascending) active ``n`` weeks after it; ``last_week`` is the newest week."""
    weeks = active.shape[1] - 1
    sizes = active[:, 0]
    reached = (last_week - cohorts)[:, None] >= np.arange(weeks + 1)[None, :]
    out: list[Cohort] = []
    for c, start in enumerate(cohorts):
        shares = active[c] / sizes[c]
        out.append(
            Cohort(
                _bucket_start(int(start), WEEK),
                int(sizes[c]),
                [float(s) if r else None for s, r in zip(shares, reached[c], strict=True)],
            )
        )
    overall: list[float | None] = []
    for n in range(weeks + 1):
        base = sizes[reached[:, n]].sum()
        overall.append(float(active[reached[:, n], n].sum() / base) if base else None)
    return Retention(out, overall)


# --------------------------------------------------------------------------- response times


@dataclass(frozen=True)
class ResponseTimes:
    """Seconds from a post's creation to the first answer/comment by someone else."""

    items: int
    answered: int
    share_answered: float
    median_seconds: float | None
    p90_seconds: float | None
    mean_seconds: float | None
    seconds: np.ndarray = field(repr=False)


def time_to_first_response(
    session: Session,
    response_types: Sequence[str] = RESPONSE_TYPES,
    of: str | None = None,
) -> ResponseTimes:
    """For every post (only those with an event of type ``of`` when given: ``"ask"`` = Stack
    Exchange questions), the time from its ``created`` to the first ``response_types`` event
    on it by a user other than its author; median, p90 and mean over the answered posts, and the
    share answered. A response stamped before the post (clock skew) counts as 0 s."""
    first = (
        select(Event.item_id.label("item_id"), func.min(Event.timestamp).label("at"))
        .join(Item, Item.id == Event.item_id)
        .where(
            Event.type.in_(list(response_types)),
            or_(Item.author_id.is_(None), Event.user_id != Item.author_id),
        )
        .group_by(Event.item_id)
        .subquery()
    )
    stmt = select(_epoch(session, Item.created), _epoch(session, first.c.at)).outerjoin(
        first, first.c.item_id == Item.id
    )
    if of is not None:
        marked = aliased(Event)
        stmt = stmt.where(
            select(marked.id).where(marked.item_id == Item.id, marked.type == of).exists()
        )
    created, first_at = _columns(session, stmt, 2)
    return response_times_from(created, first_at)


def response_times_from(created: np.ndarray, first_at: np.ndarray) -> ResponseTimes:
    """:class:`ResponseTimes` of posts created at ``created`` (epoch seconds) whose first
    response came at ``first_at`` (NaN: none)."""
    if created.size == 0:
        return ResponseTimes(0, 0, 0.0, None, None, None, np.zeros(0))
    answered = ~np.isnan(first_at)  # NULL: nobody else answered or commented
    seconds = np.maximum(first_at[answered] - created[answered], 0.0)
    n = int(answered.sum())
    return ResponseTimes(
        items=int(created.size),
        answered=n,
        share_answered=n / created.size,
        median_seconds=float(np.median(seconds)) if n else None,
        p90_seconds=float(np.quantile(seconds, 0.9)) if n else None,
        mean_seconds=float(seconds.mean()) if n else None,
        seconds=seconds,
    )


# --------------------------------------------------------------------------- attention


def gini(counts: Sequence[float] | np.ndarray) -> float:
    """Gini coefficient of non-negative counts: 0 when everyone gets the same, (n-1)/n when one
    gets everything. Over the ascending counts x_1..x_n: G = 2 sum(i x_i) / (n sum x) - (n+1)/n;
    0 for an empty or all-zero population."""
    x = np.sort(np.asarray(counts, dtype=np.float64))
    if x.size == 0 or x.sum() == 0:
        return 0.0
    if x[0] < 0:
        raise ValueError("Gini needs non-negative counts")
    n = x.size
    i = np.arange(1, n + 1)
    return float(2.0 * (i * x).sum() / (n * x.sum()) - (n + 1) / n)


def lorenz(counts: Sequence[float] | np.ndarray, points: int = LORENZ_POINTS) -> list[list[float]]:
    """Lorenz curve ``[[population share, attention share], ...]`` from (0, 0) to (1, 1), the
    population sorted from least to most attention, sampled at ``points`` population shares."""
    x = np.sort(np.asarray(counts, dtype=np.float64))
    if x.size == 0 or x.sum() == 0:
        return [[0.0, 0.0], [1.0, 1.0]]
    cum = np.concatenate([[0.0], np.cumsum(x) / x.sum()])
    pop = np.linspace(0.0, 1.0, points)
    share = np.interp(pop * x.size, np.arange(x.size + 1), cum)
    return [[float(p), float(s)] for p, s in zip(pop, share, strict=True)]


@dataclass(frozen=True)
class Concentration:
    """How concentrated attention is over a population (items or creators)."""

    population: int
    engaged: int
    events: int
    gini: float
    top1_share: float
    top10_share: float
    lorenz: list[list[float]] = field(repr=False)
    counts: np.ndarray = field(repr=False)


def _concentration(counts: np.ndarray) -> Concentration:
    x = np.sort(counts.astype(np.float64))[::-1]
    total = x.sum()

    def top(share: float) -> float:
        k = max(1, int(np.ceil(share * x.size)))
        return float(x[:k].sum() / total) if total else 0.0

    return Concentration(
        population=int(x.size),
        engaged=int((x > 0).sum()),
        events=int(total),
        gini=gini(x),
        top1_share=top(0.01),
        top10_share=top(0.10),
        lorenz=lorenz(x),
        counts=counts,
    )


@dataclass(frozen=True)
class Attention:
    event_types: list[str] | None
    include_zero: bool
    items: Concentration
    creators: Concentration


def attention_gini(
    session: Session, event_types: Sequence[str] | None = None, include_zero: bool = True
) -> Attention:
    """Gini and Lorenz curve of engagement (other users' events of ``event_types``, all types
    when None) across items and across creators (authors, summed over their items).
    ``include_zero`` keeps items and creators nobody engaged with (they are part of the
    population attention is shared over); without it only engaged ones count."""
    cond = [or_(Item.author_id.is_(None), Event.user_id != Item.author_id)]
    if event_types is not None:
        cond.append(Event.type.in_(list(event_types)))
    authors, counts = _columns(
        session,
        select(Item.author_id, func.count(Event.id))
        .select_from(Item)
        .outerjoin(Event, and_(Event.item_id == Item.id, *cond))
        .group_by(Item.id, Item.author_id),
        2,
    )
    return attention_from(authors, counts, event_types, include_zero)


def attention_from(
    authors: np.ndarray,
    counts: np.ndarray,
    event_types: Sequence[str] | None = None,
    include_zero: bool = True,
) -> Attention:
    """:class:`Attention` from each item's author (NaN: none) and engagement count."""
    item_counts = counts.astype(np.int64)
    authored = ~np.isnan(authors)
    _, inverse = np.unique(authors[authored], return_inverse=True)
    creator_counts = np.bincount(inverse, weights=counts[authored]).astype(np.int64)
    if not include_zero:
        item_counts = item_counts[item_counts > 0]
        creator_counts = creator_counts[creator_counts > 0]
    return Attention(
        event_types=list(event_types) if event_types is not None else None,
        include_zero=include_zero,
        items=_concentration(item_counts),
        creators=_concentration(creator_counts),
    )
