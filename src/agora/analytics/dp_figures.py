"""Differentially private versions of the analytics figures non-admin keys read.

Each ``*_arrays`` function takes plain arrays (one row per record, the person it belongs to
first) and a :class:`~agora.api.dp.Grant`, and returns the noisy figure; the ``*_payload``
functions read those arrays from the store and shape the answer as the exact route does (so the
route's response model is unchanged). ``bench/dp_error.py`` calls the array functions directly
on the bundled community and MovieLens-1M. Keys (tags, items, authors, days) are public; people
are bounded by the grant (see :mod:`agora.api.dp`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from agora.analytics.engagement import service as eg
from agora.analytics.sentiment import service as sa
from agora.analytics.trending import service as tr
from agora.api.dp import Bounds, Grant, clamp_counts, dense_ids, drop_noise_floor
from agora.db import queries
from agora.db.tables import Event, Item, User

#: Most rows a released ranked list keeps (the routes' largest ``n``).
MAX_ROWS = 1000


def person_ids(values: Sequence[Any]) -> np.ndarray:
    """Integer person ids; a record without a person (None) is a person of its own."""
    return dense_ids([v if v is not None else ("anonymous", i) for i, v in enumerate(values)])[0]


# ------------------------------------------------------------------------ trending topics


def trending_arrays(
    people: np.ndarray,
    key_ids: np.ndarray,
    buckets: np.ndarray,
    n_keys: int,
    n_buckets: int,
    grant: Grant,
) -> np.ndarray:
    """Noisy posts per key per bucket (``n_keys x n_buckets``, >= 0): one record per post and
    key, each person in at most ``max_partitions`` key-buckets, ``max_per_partition`` each.
    The table is sparse (most tags have no post most days): counts the noise alone reaches
    with probability 5% are set to 0, so noise does not pile up into baselines and bursts."""
    cells = np.asarray(key_ids, dtype=np.int64) * n_buckets + np.asarray(buckets, dtype=np.int64)
    noisy = grant.histogram(people, cells, n_keys * n_buckets, grant.epsilon)
    kept = drop_noise_floor(noisy, grant.bounds.l1, grant.epsilon)
    return kept.reshape(n_keys, n_buckets)


def trending_payload(
    session: Session,
    grant: Grant,
    now: datetime,
    bucket: str,
    n_buckets: int,
    source: str,
    alpha: float,
    min_count: int,
) -> dict[str, Any]:
    """The ``GET /analytics/trending`` answer computed on noisy counts."""
    width = tr.BUCKETS[bucket]
    start = now - timedelta(seconds=width * n_buckets)
    window = (Item.created >= start, Item.created < now)
    stmt = select(Item.id, Item.author_id, Item.created, Item.tags, Item.title, Item.body).where(
        *window
    )
    seen = queries.image_texts(session, where=window) if source == "keywords" else {}
    authors, keys, cols = [], [], []
    key_index: dict[str, int] = {}
    for item_id, author, created, tags, title, body in session.execute(stmt):
        created = created.replace(tzinfo=UTC) if created.tzinfo is None else created
        t = int((created - start).total_seconds() // width)
        if not 0 <= t < n_buckets:
            continue
        for key in dict.fromkeys(tr.item_keys(tags, title, body, source, seen.get(item_id, ""))):
            authors.append(author)
            keys.append(key_index.setdefault(key, len(key_index)))
            cols.append(t)
    counts = trending_arrays(
        person_ids(authors), np.asarray(keys), np.asarray(cols), len(key_index), n_buckets, grant
    )
    series = tr.VolumeSeries(list(key_index), start, width, counts)
    bursts = tr.detect_bursts(series, 7.0, min(7, n_buckets - 1), alpha, min_count)
    last = series.bucket_start(n_buckets)
    return {
        "now": now,
        "bucket": bucket,
        "trending": [asdict(b) for b in bursts if b.end == last],
        "bursts": [asdict(b) for b in bursts],
    }


# ------------------------------------------------------------------------------ sentiment


def sentiment_arrays(
    people: np.ndarray,
    group_ids: np.ndarray,
    labels: np.ndarray,
    scores: np.ndarray,
    n_groups: int,
    grant: Grant,
) -> dict[str, np.ndarray]:
    """Noisy label counts (``labels``: 0 negative, 1 neutral, 2 positive) and noisy score sums
    per group; half the epsilon each. Each person counts in at most ``max_partitions`` groups,
    ``max_per_partition`` texts each (the same texts for counts and sums)."""
    people = np.asarray(people, dtype=np.int64)
    group_ids = np.asarray(group_ids, dtype=np.int64)
    from agora.api.dp import bound_contributions, noisy_counts, noisy_sums

    keep = bound_contributions(people, group_ids, grant.bounds, grant.rng)
    g, lab = group_ids[keep], np.asarray(labels, dtype=np.int64)[keep]
    s = np.clip(np.asarray(scores, dtype=np.float64)[keep], -1.0, 1.0)
    eps = grant.split(2)
    l1 = grant.bounds.l1
    exact_labels = np.bincount(g * 3 + lab, minlength=n_groups * 3)[: n_groups * 3]
    noisy_labels = clamp_counts(noisy_counts(exact_labels, l1, eps)).reshape(n_groups, 3)
    exact_sums = np.bincount(g, weights=s, minlength=n_groups)[:n_groups]
    noisy_score = noisy_sums(exact_sums, l1 * 1.0, eps)
    grant.mechanisms += ["discrete_laplace", "laplace"]
    n = noisy_labels.sum(axis=1)
    mean = np.clip(noisy_score / np.maximum(n, 1), -1.0, 1.0)
    return {"n": n, "mean": mean, "labels": noisy_labels}


LABELS = {"negative": 0, "neutral": 1, "positive": 2}


def sentiment_payload(
    session: Session, grant: Grant, by: str, since: datetime | None, until: datetime | None
) -> dict[str, Any]:
    """The ``GET /analytics/sentiment`` groups on noisy counts (``n_texts`` noisy too)."""
    scored = sa.stored_scores(session, since=since, until=until)
    authors, groups, labels, scores = [], [], [], []
    group_index: dict[str, int] = {}
    for s in scored:
        keys = s.tags if by == "tag" else [s.author] if by == "author" else [s.day]
        for key in dict.fromkeys(k for k in keys if k):
            authors.append(s.author)
            groups.append(group_index.setdefault(key, len(group_index)))
            labels.append(LABELS.get(s.label, 1))
            scores.append(s.score)
    names = list(group_index)
    out = sentiment_arrays(
        person_ids(authors),
        np.asarray(groups),
        np.asarray(labels),
        np.asarray(scores),
        len(names),
        grant,
    )
    rows = [
        {
            "key": names[i],
            "n": int(out["n"][i]),
            "mean_score": float(out["mean"][i]),
            "negative": int(out["labels"][i, 0]),
            "neutral": int(out["labels"][i, 1]),
            "positive": int(out["labels"][i, 2]),
        }
        for i in range(len(names))
        if out["n"][i] > 0
    ]
    if by == "day":
        rows.sort(key=lambda r: r["key"])
    else:
        rows.sort(key=lambda r: (-r["n"], r["key"]))
    return {"n_texts": int(sum(r["n"] for r in rows)), "groups": rows[:MAX_ROWS]}


# --------------------------------------------------------------------------- active users


def active_arrays(
    users: np.ndarray, buckets: np.ndarray, n_buckets: int, grant: Grant
) -> tuple[np.ndarray, np.ndarray]:
    """Noisy distinct users and noisy events per bucket (half the epsilon each)."""
    eps = grant.split(2)
    distinct = grant.histogram(users, buckets, n_buckets, eps, distinct=True)
    events = grant.histogram(users, buckets, n_buckets, eps)
    return clamp_counts(distinct), clamp_counts(events)


def active_payload(
    session: Session,
    grant: Grant,
    bucket: str,
    since: datetime | None,
    until: datetime | None,
) -> dict[str, Any]:
    """``GET /analytics/engagement/active`` on noisy counts, every bucket from the first to the
    last with events (the span is public: the calendar the platform ran)."""
    width = eg.BUCKETS[bucket]
    users, seconds = eg._user_times(session, since, until)
    if users.size == 0:
        return {"points": []}
    index = eg._bucket_index(seconds, width)
    first = int(index.min())
    offset = index - first
    n = int(offset.max()) + 1
    distinct, events = active_arrays(users, offset, n, grant)
    return {
        "points": [
            {
                "start": eg._bucket_start(first + i, width),
                "users": int(distinct[i]),
                "events": int(events[i]),
            }
            for i in range(n)
        ]
    }


# ---------------------------------------------------------- per-item engagement (rates, reach)


def _other_events(session: Session, event_types: Sequence[str] | None = None) -> list[np.ndarray]:
    """Every event by someone other than the item's author: user, item, author (NaN: none)."""
    cond = [or_(Item.author_id.is_(None), Event.user_id != Item.author_id)]
    if event_types is not None:
        cond.append(Event.type.in_(list(event_types)))
    stmt = select(Event.user_id, Item.id, Item.author_id).join(
        Item, and_(Event.item_id == Item.id, *cond)
    )
    return eg._columns(session, stmt, 3)


def engagement_arrays(
    users: np.ndarray, keys: np.ndarray, n_keys: int, grant: Grant
) -> tuple[np.ndarray, np.ndarray]:
    """Noisy events and noisy distinct users per key (item or author), half the epsilon each."""
    eps = grant.split(2)
    events = grant.histogram(users, keys, n_keys, eps)
    distinct = grant.histogram(users, keys, n_keys, eps, distinct=True)
    return clamp_counts(events), clamp_counts(distinct)


def _per_key(session: Session, grant: Grant, by: str) -> dict[str, Any] | None:
    users, items, authors = _other_events(session)
    if by == "author":
        has = ~np.isnan(authors)
        users, items, authors = users[has], items[has], authors[has]
    if users.size == 0:
        return None
    raw = authors if by == "author" else items
    key_values, key_ids = np.unique(raw.astype(np.int64), return_inverse=True)
    events, distinct = engagement_arrays(
        users.astype(np.int64), key_ids.ravel(), key_values.size, grant
    )
    return {"keys": key_values, "events": events, "users": distinct}


def _names(session: Session, table: Any, pks: Sequence[int]) -> dict[int, str]:
    found: dict[int, str] = {}
    pks = [int(p) for p in pks]
    for i in range(0, len(pks), 500):
        chunk = pks[i : i + 500]
        found.update(
            session.execute(select(table.id, table.external_id).where(table.id.in_(chunk))).all()
        )
    return found


def rates_payload(session: Session, grant: Grant, by: str) -> dict[str, Any]:
    """``GET /analytics/engagement/rates`` ranked by noisy events per item-day (item ages and
    the store's last event time are public)."""
    per = _per_key(session, grant, by)
    if per is None:
        return {"rows": []}
    end = float(session.scalar(select(func.max(eg._epoch(session, Event.timestamp)))) or 0.0)
    items = session.execute(select(Item.id, Item.author_id, eg._epoch(session, Item.created)))
    days_of: dict[int, float] = {}
    items_of: dict[int, int] = {}
    for pk, author, created in items:
        key = pk if by == "item" else author
        if key is None:
            continue
        days_of[key] = days_of.get(key, 0.0) + max((end - float(created or end)) / eg.DAY, 1.0)
        items_of[key] = items_of.get(key, 0) + 1
    keys = per["keys"]
    days = np.asarray([days_of.get(int(k), 1.0) for k in keys])
    rate = per["events"] / days
    order = np.lexsort((keys, -rate))[:MAX_ROWS]
    names = _names(session, User if by == "author" else Item, keys[order])
    return {
        "rows": [
            {
                "key": names.get(int(keys[i]), str(int(keys[i]))),
                "items": items_of.get(int(keys[i]), 1),
                "events": int(per["events"][i]),
                "users": int(per["users"][i]),
                "rate": float(rate[i]),
            }
            for i in order
        ]
    }


def reach_payload(session: Session, grant: Grant, by: str) -> dict[str, Any]:
    """``GET /analytics/reach`` ranked by noisy distinct users."""
    per = _per_key(session, grant, by)
    if per is None:
        return {"rows": []}
    keys = per["keys"]
    order = np.lexsort((keys, -per["events"], -per["users"]))[:MAX_ROWS]
    names = _names(session, User if by == "author" else Item, keys[order])
    return {
        "rows": [
            {
                "key": names.get(int(keys[i]), str(int(keys[i]))),
                "users": int(per["users"][i]),
                "events": int(per["events"][i]),
            }
            for i in order
        ]
    }


# ------------------------------------------------------------------------------ attention


def attention_payload(
    session: Session, grant: Grant, event_types: Sequence[str] | None, include_zero: bool
) -> dict[str, Any]:
    """``GET /analytics/engagement/attention`` from noisy events per item; a creator's count is
    the sum of their items' noisy counts (post-processing). Items and creators are public."""
    users, items, _ = _other_events(session, event_types)
    rows = session.execute(select(Item.id, Item.author_id).order_by(Item.id)).all()
    pks = np.asarray([r[0] for r in rows], dtype=np.int64)
    authors = np.asarray([np.nan if r[1] is None else r[1] for r in rows], dtype=np.float64)
    index = np.searchsorted(pks, items.astype(np.int64)) if pks.size else np.zeros(0, np.int64)
    noisy = clamp_counts(grant.histogram(users.astype(np.int64), index, pks.size, grant.epsilon))
    authored = ~np.isnan(authors)
    _, inverse = np.unique(authors[authored], return_inverse=True)
    creators = np.bincount(inverse.ravel(), weights=noisy[authored]).astype(np.int64)
    if not include_zero:
        noisy, creators = noisy[noisy > 0], creators[creators > 0]

    def shape(c: eg.Concentration) -> dict[str, Any]:
        out = asdict(c)
        out.pop("counts")
        return out

    return {
        "items": shape(eg._concentration(noisy)),
        "creators": shape(eg._concentration(creators)),
    }


# ------------------------------------------------------------------------------ retention


def retention_payload(session: Session, grant: Grant, weeks: int) -> dict[str, Any]:
    """``GET /analytics/engagement/retention`` from noisy cohort sizes (each person in one
    cohort, half the epsilon) and noisy week-N active counts (N >= 1; each person in at most
    ``max_partitions`` cohort-weeks, half the epsilon); shares are clipped to [0, 1]."""
    users, seconds = eg._user_times(session)
    if users.size == 0:
        return {"cohorts": [], "overall": [None] * (weeks + 1)}
    pairs = eg.cohort_pairs(users, seconds)
    cohorts, first_week, n_after = pairs.cohorts, pairs.first_week, pairs.n_after
    pair_user, c_index, last_week = pairs.pair_user, pairs.c_index, pairs.last_week
    eps = grant.split(2)
    sizes = clamp_counts(
        grant.histogram(
            np.arange(first_week.size),
            np.searchsorted(cohorts, first_week),
            cohorts.size,
            eps,
            bounds=Bounds(1, 1),
        )
    )
    later = (n_after >= 1) & (n_after <= weeks)
    cells = c_index[later] * (weeks + 1) + n_after[later]
    active = clamp_counts(
        grant.histogram(pair_user[later], cells, cohorts.size * (weeks + 1), eps, distinct=True)
    ).reshape(cohorts.size, weeks + 1)
    active[:, 0] = sizes
    reached = (last_week - cohorts)[:, None] >= np.arange(weeks + 1)[None, :]
    out = []
    for c, start in enumerate(cohorts):
        shares = np.clip(active[c] / max(int(sizes[c]), 1), 0.0, 1.0)
        out.append(
            {
                "start": eg._bucket_start(int(start), eg.WEEK),
                "users": int(sizes[c]),
                "retention": [
                    float(s) if r else None for s, r in zip(shares, reached[c], strict=True)
                ],
            }
        )
    overall: list[float | None] = []
    for n in range(weeks + 1):
        base = sizes[reached[:, n]].sum()
        value = active[reached[:, n], n].sum() / base if base else None
        overall.append(None if value is None else float(min(max(value, 0.0), 1.0)))
    return {"cohorts": out, "overall": overall}


# ------------------------------------------------------------------------- response times

#: Bin edges (seconds) of the response-time histogram: 0, then 1 minute to a year, log-spaced.
RESPONSE_EDGES = np.concatenate([[0.0], np.geomspace(60.0, 366 * 86400.0, 40)])


def response_times_payload(session: Session, grant: Grant, of: str | None) -> dict[str, Any]:
    """``GET /analytics/engagement/response-times`` from a noisy histogram of each post's
    time to first response (one cell per bin, plus one for unanswered posts): each author
    counts at most ``max_partitions`` x ``max_per_partition`` posts. Median, p90 and mean are
    read off the noisy histogram (bin centres, geometric). The first responder's part in a
    post's time is not bounded separately (it is the post's figure)."""
    first = (
        select(Event.item_id.label("item_id"), func.min(Event.timestamp).label("at"))
        .join(Item, Item.id == Event.item_id)
        .where(
            Event.type.in_(list(eg.RESPONSE_TYPES)),
            or_(Item.author_id.is_(None), Event.user_id != Item.author_id),
        )
        .group_by(Event.item_id)
        .subquery()
    )
    stmt = select(
        Item.author_id, eg._epoch(session, Item.created), eg._epoch(session, first.c.at)
    ).outerjoin(first, first.c.item_id == Item.id)
    if of is not None:
        from sqlalchemy.orm import aliased

        marked = aliased(Event)
        stmt = stmt.where(
            select(marked.id).where(marked.item_id == Item.id, marked.type == of).exists()
        )
    authors, created, first_at = eg._columns(session, stmt, 3)
    n_bins = RESPONSE_EDGES.size  # bins 0..n-2 answered, n-1 unanswered
    if created.size == 0:
        return {"items": 0, "answered": 0, "share_answered": 0.0} | dict.fromkeys(
            ("median_seconds", "p90_seconds", "mean_seconds")
        )
    answered = ~np.isnan(first_at)
    seconds = np.maximum(np.nan_to_num(first_at - created), 0.0)
    cell = np.clip(np.searchsorted(RESPONSE_EDGES, seconds, side="right") - 1, 0, n_bins - 2)
    cell = np.where(answered, cell, n_bins - 1)
    people = person_ids([None if np.isnan(a) else int(a) for a in authors])
    hist = clamp_counts(grant.histogram(people, cell, n_bins, grant.epsilon))
    answered_hist = hist[:-1].astype(np.float64)
    n_answered = int(answered_hist.sum())
    items = n_answered + int(hist[-1])
    centres = np.concatenate(
        [[30.0], np.sqrt(RESPONSE_EDGES[1:-1] * RESPONSE_EDGES[2:])]
    )  # bin 0 is [0, 60 s)

    def quantile(q: float) -> float | None:
        if n_answered == 0:
            return None
        cum = np.cumsum(answered_hist) / n_answered
        return float(centres[min(int(np.searchsorted(cum, q)), centres.size - 1)])

    return {
        "items": items,
        "answered": n_answered,
        "share_answered": n_answered / items if items else 0.0,
        "median_seconds": quantile(0.5),
        "p90_seconds": quantile(0.9),
        "mean_seconds": float((answered_hist * centres).sum() / n_answered) if n_answered else None,
    }
