"""Fake-engagement detection: an anomaly score per user and per item, with the reasons.

Five signals per user, each a number in [0, 1]:

``new_account``
    Share of the user's engagements given within ``new_days`` of their start (the earlier of
    the account's creation and their first event). Farms use fresh accounts.
``burst``
    Share of the user's engagements that fall in an item-level burst: at least ``burst_min``
    distinct users engaging with one item within ``burst_window`` seconds, a count whose Poisson
    tail probability under the item's own baseline rate (its engagements spread over its active
    span, at least ``baseline_days``) is below ``burst_alpha``.
``reciprocity``
    Share of the user's engagements with posts of ring partners: authors who engage with the
    user's posts back and share another such reciprocal partner with the user (a closed
    triangle, so a question author and the answerer they thank do not count); zero unless
    the user has ``ring_min`` ring partners.
``synchrony``
    The largest Jaccard index, over other accounts, of the items both engaged with within
    ``sync_window`` seconds of each other, among accounts with at least ``min_engagements``
    engagements and at least two such synchronous items (by chance, two accounts rarely hit
    the same items minutes apart twice).
``no_dwell``
    Share of the user's ``click`` events not followed, within ``dwell_window`` seconds, by a
    ``dwell`` event of the same user on the same item with a value of at least ``dwell_min``
    seconds (click-through without reading).

Share signals are shrunk by ``n / (n + 2)`` (n = events they are a share of) so that one or
two events cannot max a signal out. Signals combine by a noisy-OR with the weights
:data:`WEIGHTS`: ``score = 1 - prod(1 - w_k * s_k)``; one strong signal alone scores up to its
weight, several together approach 1. A signal of at least :data:`REASON_AT` is listed as a
reason. An item's score is the noisy-OR of the share of its engagements given by users scoring
at least ``flag_at`` (shrunk like the user shares) and half its burstiness (share of its
engagements inside bursts).

Engagements are events of the types in ``engagement_types`` on items the user did not author.
Everything is read in two queries and computed with numpy/scipy in memory.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from agora.db.tables import Event, Item, User

#: Event types counted as engagement (positive attention given to someone else's item).
ENGAGEMENT_TYPES: tuple[str, ...] = ("like", "bookmark", "share", "rating", "comment", "answer")
#: Noisy-OR weight of each signal (its score when it is the only one, at full strength).
WEIGHTS: dict[str, float] = {
    "new_account": 0.4,
    "burst": 0.7,
    "reciprocity": 0.6,
    "synchrony": 0.7,
    "no_dwell": 0.7,
}
#: A signal at least this strong is reported as a reason.
REASON_AT = 0.5
REASONS: dict[str, str] = {
    "new_account": "engages mostly as a new account",
    "burst": "engagements fall in item-level bursts",
    "reciprocity": "engages mostly with authors who engage back (ring)",
    "synchrony": "engages with the same items minutes apart from another account",
    "no_dwell": "clicks without dwell",
}


@dataclass(frozen=True)
class AnomalyParams:
    """Thresholds of the signals (see the module docstring)."""

    engagement_types: tuple[str, ...] = ENGAGEMENT_TYPES
    new_days: float = 7.0
    burst_window: float = 3600.0
    burst_min: int = 5
    burst_alpha: float = 1e-4
    baseline_days: float = 30.0
    ring_min: int = 2
    min_engagements: int = 3
    sync_window: float = 600.0
    dwell_window: float = 1800.0
    dwell_min: float = 5.0
    flag_at: float = 0.5


@dataclass
class UserAnomaly:
    user_id: str
    score: float
    signals: dict[str, float]
    reasons: list[str]
    engagements: int
    clicks: int


@dataclass
class ItemAnomaly:
    item_id: str
    score: float
    flagged_share: float
    burstiness: float
    engagements: int
    reasons: list[str] = field(default_factory=list)


@dataclass
class AnomalyReport:
    users: list[UserAnomaly]
    items: list[ItemAnomaly]
    params: AnomalyParams

    def flagged(self) -> list[UserAnomaly]:
        """Users scoring at least ``params.flag_at``."""
        return [u for u in self.users if u.score >= self.params.flag_at]


def _seconds(when: datetime) -> float:
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


def _shrunk(part: np.ndarray, total: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(total > 0, part / np.maximum(total, 1), 0.0)
    return share * total / (total + 2.0)


def _burst_flags(items: np.ndarray, users: np.ndarray, ts: np.ndarray, p: AnomalyParams):
    """Per engagement: inside an item burst? Rows must be sorted by (item, time)."""
    # scipy.stats is imported on use: at module level it cost every command and server start
    # about half a second
    from scipy.stats import poisson

    flags = np.zeros(len(ts), dtype=bool)
    bounds = np.flatnonzero(np.diff(items)) + 1
    for lo, hi in zip(np.r_[0, bounds], np.r_[bounds, len(ts)], strict=True):
        n = hi - lo
        if n < p.burst_min:
            continue
        t, u = ts[lo:hi], users[lo:hi]
        span = max(t[-1] - t[0], p.baseline_days * 86400.0)
        rate = n * p.burst_window / span
        ends = np.searchsorted(t, t + p.burst_window, side="right")
        for i, end in enumerate(ends):
            if end - i < p.burst_min:
                continue
            distinct = len(set(u[i:end].tolist()))
            if distinct >= p.burst_min and poisson.sf(distinct - 1, rate) < p.burst_alpha:
                flags[lo + i : lo + end] = True
    return flags


def _synchrony(
    items: np.ndarray, users: np.ndarray, ts: np.ndarray, eligible: np.ndarray, p: AnomalyParams
) -> np.ndarray:
    """Per user: max Jaccard of synchronous co-engaged items with another eligible account."""
    sync: dict[tuple[int, int], set[int]] = defaultdict(set)
    bounds = np.flatnonzero(np.diff(items)) + 1
    for lo, hi in zip(np.r_[0, bounds], np.r_[bounds, len(ts)], strict=True):
        t, u = ts[lo:hi], users[lo:hi]
        ends = np.searchsorted(t, t + p.sync_window, side="right")
        for i in range(hi - lo):
            a = int(u[i])
            if not eligible[a]:
                continue
            for j in range(i + 1, int(ends[i])):
                b = int(u[j])
                if b != a and eligible[b]:
                    sync[(min(a, b), max(a, b))].add(int(items[lo]))
    out = np.zeros(len(eligible))
    if not sync:
        return out
    item_sets: dict[int, set[int]] = defaultdict(set)
    for it, us in zip(items.tolist(), users.tolist(), strict=True):
        item_sets[us].add(it)
    for (a, b), common in sync.items():
        if len(common) < 2:
            continue
        jac = len(common) / len(item_sets[a] | item_sets[b])
        out[a] = max(out[a], jac)
        out[b] = max(out[b], jac)
    return out


@dataclass
class _Activity:
    """What detection reads from the store: every user (in store order, with the time of their
    first activity), the engagements on others' posts as rows ``(item, time, user, author)``
    sorted by item and time (user and author as indexes into ``user_rows``; author -1 when
    unknown), and the clicks and dwells."""

    user_rows: list[Any]
    item_ids: dict[int, str]
    first: np.ndarray
    engagements: np.ndarray
    clicks: list[tuple[int, int, float]]
    dwells: dict[tuple[int, int], list[tuple[float, float]]]


def _read_activity(session: Session, p: AnomalyParams) -> _Activity:
    types = set(p.engagement_types) | {"click", "dwell"}
    rows = session.execute(
        select(
            Event.user_id, Event.item_id, Item.author_id, Event.type, Event.value, Event.timestamp
        )
        .join(Item, Item.id == Event.item_id)
        .where(Event.type.in_(types))
    ).all()
    user_rows = session.execute(select(User.id, User.external_id, User.created)).all()
    item_ids = dict(session.execute(select(Item.id, Item.external_id)).all())
    uindex = {uid: k for k, (uid, _, _) in enumerate(user_rows)}
    created = np.array([_seconds(c) for _, _, c in user_rows]) if user_rows else np.zeros(0)

    eng, clicks, dwells = [], [], defaultdict(list)
    first = created.copy()
    for uid, iid, aid, etype, value, when in rows:
        u, t = uindex[uid], _seconds(when)
        first[u] = min(first[u], t)
        if etype == "click":
            clicks.append((u, iid, t))
        elif etype == "dwell":
            dwells[(u, iid)].append((t, value or 0.0))
        elif aid != uid:
            eng.append((iid, t, u, -1 if aid is None else uindex[aid]))
    arr = np.array(eng, dtype=float).reshape(-1, 4)
    arr = arr[np.lexsort((arr[:, 1], arr[:, 0]))]
    return _Activity(user_rows, item_ids, first, arr, clicks, dwells)


def _ring_engagements(e_user: np.ndarray, e_author: np.ndarray, p: AnomalyParams) -> np.ndarray:
    """Per engagement, whether it goes to a ring partner: a reciprocal partner (``u -> v`` where
    ``v`` also engages with ``u``'s posts) who shares another reciprocal partner with the user
    (a closed triangle: a question author and the answerer they thank form a dyad, a ring is
    denser), for users with at least ``ring_min`` such partners."""
    has_author = e_author >= 0
    pairs = set(zip(e_user[has_author].tolist(), e_author[has_author].tolist(), strict=True))
    back = np.array(
        [
            (int(a) >= 0 and (int(a), int(u)) in pairs)
            for u, a in zip(e_user, e_author, strict=True)
        ],
        dtype=bool,
    )
    partners: dict[int, set[int]] = defaultdict(set)
    for u, a in zip(e_user[back].tolist(), e_author[back].tolist(), strict=True):
        partners[u].add(a)
    ring = {u: {v for v in vs if vs & partners[v]} for u, vs in list(partners.items())}
    return np.array(
        [
            bool(b) and len(ring.get(u, ())) >= p.ring_min and a in ring[u]
            for u, a, b in zip(e_user.tolist(), e_author.tolist(), back.tolist(), strict=True)
        ],
        dtype=bool,
    )


def _engagement_signals(
    activity: _Activity, p: AnomalyParams, signals: dict[str, np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """Fill the engagement signals (new account, burst, reciprocity, synchrony) into
    ``signals``; returns the engagements per user and each engagement's burst flag."""
    n_users = len(activity.user_rows)
    arr = activity.engagements
    e_item, e_t = arr[:, 0].astype(np.int64), arr[:, 1]
    e_user, e_author = arr[:, 2].astype(np.int64), arr[:, 3].astype(np.int64)
    bursts = _burst_flags(e_item, e_user, e_t, p)
    n_eng = np.zeros(n_users)
    if len(arr):
        n_eng = np.bincount(e_user, minlength=n_users).astype(float)
        young = (e_t - activity.first[e_user]) <= p.new_days * 86400.0
        signals["new_account"] = _shrunk(np.bincount(e_user, young, n_users), n_eng)
        signals["burst"] = _shrunk(np.bincount(e_user, bursts, n_users), n_eng)
        in_ring = _ring_engagements(e_user, e_author, p)
        signals["reciprocity"] = _shrunk(np.bincount(e_user, in_ring, n_users), n_eng)
        signals["synchrony"] = _synchrony(e_item, e_user, e_t, n_eng >= p.min_engagements, p)
    return n_eng, bursts


def _click_signal(
    activity: _Activity, p: AnomalyParams, signals: dict[str, np.ndarray]
) -> np.ndarray:
    """Fill the share of clicks without a dwell after them into ``signals``; returns the
    clicks per user."""
    n_users = len(activity.user_rows)
    n_clicks = np.zeros(n_users)
    if activity.clicks:
        c_user = np.array([c[0] for c in activity.clicks])
        bare = np.array(
            [
                not any(
                    t <= dt <= t + p.dwell_window and dv >= p.dwell_min
                    for dt, dv in activity.dwells.get((u, i), ())
                )
                for u, i, t in activity.clicks
            ],
            dtype=float,
        )
        n_clicks = np.bincount(c_user, minlength=n_users).astype(float)
        signals["no_dwell"] = _shrunk(np.bincount(c_user, bare, n_users), n_clicks)
    return n_clicks


def _user_anomalies(
    activity: _Activity,
    signals: dict[str, np.ndarray],
    score: np.ndarray,
    n_eng: np.ndarray,
    n_clicks: np.ndarray,
) -> list[UserAnomaly]:
    """Every user with engagements or clicks, highest score first."""
    keep = np.flatnonzero((n_eng > 0) | (n_clicks > 0))
    users = [
        UserAnomaly(
            user_id=activity.user_rows[k][1],
            score=float(score[k]),
            signals={name: round(float(s[k]), 4) for name, s in signals.items()},
            reasons=[REASONS[name] for name, s in signals.items() if s[k] >= REASON_AT],
            engagements=int(n_eng[k]),
            clicks=int(n_clicks[k]),
        )
        for k in keep
    ]
    users.sort(key=lambda r: (-r.score, r.user_id))
    return users


def _item_anomalies(
    activity: _Activity, score: np.ndarray, bursts: np.ndarray, p: AnomalyParams
) -> list[ItemAnomaly]:
    """Every engaged item: the share of its engagements by flagged users and in bursts."""
    arr = activity.engagements
    if not len(arr):
        return []
    e_item, e_user = arr[:, 0].astype(np.int64), arr[:, 2].astype(np.int64)
    flagged = score[e_user] >= p.flag_at
    ucodes, inverse = np.unique(e_item, return_inverse=True)
    total = np.bincount(inverse).astype(float)
    fshare = _shrunk(np.bincount(inverse, flagged), total)
    bshare = np.bincount(inverse, bursts) / total
    iscore = 1.0 - (1.0 - fshare) * (1.0 - 0.5 * bshare)
    items: list[ItemAnomaly] = []
    for k, code in enumerate(ucodes.tolist()):
        reasons = []
        if fshare[k] >= REASON_AT:
            reasons.append("engaged mostly by flagged users")
        if bshare[k] >= REASON_AT:
            reasons.append("engagement mostly in bursts")
        items.append(
            ItemAnomaly(
                item_id=activity.item_ids[code],
                score=float(iscore[k]),
                flagged_share=float(fshare[k]),
                burstiness=float(bshare[k]),
                engagements=int(total[k]),
                reasons=reasons,
            )
        )
    items.sort(key=lambda r: (-r.score, -r.engagements, r.item_id))
    return items


def detect(session: Session, params: AnomalyParams | None = None) -> AnomalyReport:
    """Score every user with engagements or clicks, and every engaged item; highest first."""
    p = params or AnomalyParams()
    activity = _read_activity(session, p)
    signals = {name: np.zeros(len(activity.user_rows)) for name in WEIGHTS}
    n_eng, bursts = _engagement_signals(activity, p, signals)
    n_clicks = _click_signal(activity, p, signals)
    score = 1.0 - np.prod([1.0 - WEIGHTS[k] * s for k, s in signals.items()], axis=0)
    users = _user_anomalies(activity, signals, score, n_eng, n_clicks)
    items = _item_anomalies(activity, score, bursts, p)
    return AnomalyReport(users=users, items=items, params=p)
