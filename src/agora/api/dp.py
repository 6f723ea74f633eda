"""Differentially private release of the aggregates non-admin keys read.

When ``AGORA_DP_EPSILON`` is set, a route that answers a figure about many people (trending
tags, active users, sentiment per tag, trust levels...) to a ``read`` or ``write`` key answers a
*released* figure instead of the exact one; admin keys keep the exact figure on the same route.

**What is protected.** One person: every record they made (posts, comments, events,
impressions) counts in a released figure only within *contribution bounds*: in at most
``max_partitions`` cells (a tag-day, an item, a day, a trust level...) and at most
``max_per_partition`` times in each (e.g. at most one post per tag per day). The records over the
bounds are dropped at random before aggregation (:func:`bound_contributions`), so one person
moves the vector of counts by at most ``max_partitions x max_per_partition`` in L1 distance,
however much they post (10,000 events move a count no more than one event does past the bound).
Keys themselves (tags, items, days, trust levels, sources) are public: the catalogue and the
calendar the platform shows anyway.

**Mechanisms** come from OpenDP (``opendp``, the library's own samplers, not hand-written noise):
the discrete Laplace mechanism on integer counts (:func:`noisy_counts`), the Laplace mechanism on
bounded float sums (:func:`noisy_sums`) and one-shot noisy top-k selection on scores whose
per-person change is bounded (:func:`noisy_top_k`, for ranked lists whose own scores are not
released). Each measurement is built for the stated sensitivity and its privacy map is checked
against the epsilon granted before it runs. Everything computed from the noisy figures
afterwards (ranks, rates, bursts, Gini) is post-processing and costs nothing more.

**Budget.** A released figure costs ``dp_epsilon x weight`` (its entry in :data:`FIGURES`, or
``AGORA_DP_FIGURES``); a figure made of several measured parts splits that epsilon evenly among
them (sequential composition). All releases of a UTC day together spend at most
``AGORA_DP_DAILY_BUDGET`` (default 20 x dp_epsilon), accounted in the database
(:mod:`agora.api.dp_budget`), so every worker sees the same spend. A figure released once
is answered again, the same numbers, for ``AGORA_DP_PERIOD_HOURS`` (default 24): asking again
neither spends budget nor draws fresh noise to average away. Once the day's budget is spent, a
route answers the figure it released last for the same question, marked ``stale``, or 429 with
``Retry-After`` (seconds to midnight UTC) when it never released one.

**Marking.** A released answer has the header ``X-Privacy: dp; epsilon=<e>; mechanism=<m>``
(with ``; stale`` when it is an earlier release) and, where the body is a JSON object, a
``privacy`` field (:class:`PrivacyOut`); list bodies carry the header only. Admin answers carry
``X-Privacy: exact`` while differential privacy is on; with it off, nothing changes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import cache
from typing import Any, TypeVar

import numpy as np
from fastapi import HTTPException, Request, Response, status

from agora.api.dp_marks import HEADER, PrivacyOut

# the marks (the HTTP kit's) re-exported: the domains' routes that release figures declare them
# as dp.RESPONSES, dp.HEADER_DOC and dp.Marked
from agora.api.dp_marks import HEADER_DOC as HEADER_DOC
from agora.api.dp_marks import RESPONSES as RESPONSES
from agora.api.dp_marks import Marked as Marked
from agora.config import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class FigureSpec:
    """Defaults of one kind of released figure."""

    description: str
    max_partitions: int
    max_per_partition: int
    weight: float = 1.0


#: Every kind of released figure with its default contribution bounds (bench/dp_error.py
#: measures the error they give; docs/privacy.md, "Differential privacy", says how they
#: were chosen).
FIGURES: dict[str, FigureSpec] = {
    "trending_topics": FigureSpec(
        "GET /analytics/trending: posts per tag (or keyword) per bucket, then bursts", 4, 1
    ),
    "trending_items": FigureSpec(
        "GET /items/trending: noisy top-k over the trending model's decayed distinct-user "
        "scores (each person adds at most 1 to an item's score)",
        1,
        1,
    ),
    "sentiment": FigureSpec(
        "GET /analytics/sentiment: label counts and score sums per tag, author or day", 4, 2
    ),
    "active_users": FigureSpec(
        "GET /analytics/engagement/active: distinct users and events per day or week", 4, 4
    ),
    "interaction_rates": FigureSpec(
        "GET /analytics/engagement/rates: other users' events and distinct users per item or "
        "author",
        4,
        2,
    ),
    "retention": FigureSpec(
        "GET /analytics/engagement/retention: cohort sizes and week-N active counts", 9, 1
    ),
    "attention": FigureSpec(
        "GET /analytics/engagement/attention: events per item and per creator (Gini, Lorenz)",
        8,
        2,
    ),
    "response_times": FigureSpec(
        "GET /analytics/engagement/response-times: posts, answered posts, response-time histogram",
        4,
        1,
    ),
    "reach": FigureSpec(
        "GET /analytics/reach: distinct other users and events per item or author", 4, 2
    ),
    "trust_levels": FigureSpec("GET /trust/levels: users per trust level", 1, 1),
    "campaign_report": FigureSpec(
        "GET /campaigns/{id}/report?release=advertiser: impressions, clicks, conversions and "
        "their value (at most max_per_partition of each per person), holdout arms",
        1,
        10,
    ),
    "feed_sources": FigureSpec("GET /feed/sources: impressions per candidate source", 8, 20),
}


# --------------------------------------------------------------------------------- settings


def enabled(settings: Settings) -> bool:
    return settings.dp_epsilon is not None


@dataclass(frozen=True)
class Bounds:
    """How much one person may contribute to one released figure."""

    max_partitions: int
    max_per_partition: int

    @property
    def l1(self) -> int:
        """The L1 sensitivity of a vector of counts under these bounds."""
        return self.max_partitions * self.max_per_partition


def figure_epsilon(settings: Settings, figure: str) -> float:
    spec = FIGURES[figure]
    override = settings.dp_figures.get(figure)
    weight = override.weight if override is not None and override.weight else spec.weight
    return float(settings.dp_epsilon or 0.0) * weight


def figure_bounds(settings: Settings, figure: str) -> Bounds:
    spec = FIGURES[figure]
    override = settings.dp_figures.get(figure)
    m = override.max_partitions if override and override.max_partitions else spec.max_partitions
    k = (
        override.max_per_partition
        if override and override.max_per_partition
        else spec.max_per_partition
    )
    return Bounds(int(m), int(k))


# ------------------------------------------------------------------------------- mechanisms


@cache
def _opendp() -> Any:
    """OpenDP with its ``contrib`` features on (imported on first use: ~1 s)."""
    import opendp.prelude as dp

    dp.enable_features("contrib")
    return dp


def _checked(measurement: Any, d_in: float, epsilon: float) -> Any:
    """``measurement`` once OpenDP's privacy map confirms it is epsilon-DP at ``d_in``."""
    spent = float(measurement.map(d_in))
    if spent > epsilon * (1 + 1e-9):
        raise ValueError(f"measurement spends {spent} > {epsilon} at d_in={d_in}")
    return measurement


def noisy_counts(counts: np.ndarray, sensitivity: float, epsilon: float) -> np.ndarray:
    """Integer counts plus discrete Laplace noise of scale ``sensitivity / epsilon`` (L1)."""
    counts = np.asarray(counts, dtype=np.int64)
    if counts.size == 0:
        return counts.copy()
    dp = _opendp()
    scale = float(sensitivity) / float(epsilon)
    meas = _checked(
        dp.m.make_laplace(
            dp.vector_domain(dp.atom_domain(T=dp.i64)), dp.l1_distance(T=dp.i64), scale=scale
        ),
        int(math.ceil(sensitivity)),
        epsilon,
    )
    return np.asarray(meas(counts.ravel().tolist()), dtype=np.int64).reshape(counts.shape)


def noisy_sums(sums: np.ndarray, sensitivity: float, epsilon: float) -> np.ndarray:
    """Float sums plus Laplace noise of scale ``sensitivity / epsilon`` (L1)."""
    sums = np.asarray(sums, dtype=np.float64)
    if sums.size == 0:
        return sums.copy()
    dp = _opendp()
    scale = float(sensitivity) / float(epsilon)
    meas = _checked(
        dp.m.make_laplace(
            dp.vector_domain(dp.atom_domain(T=float, nan=False)),
            dp.l1_distance(T=float),
            scale=scale,
        ),
        float(sensitivity),
        epsilon,
    )
    return np.asarray(meas(sums.ravel().tolist()), dtype=np.float64).reshape(sums.shape)


def noisy_top_k(scores: np.ndarray, k: int, sensitivity: float, epsilon: float) -> np.ndarray:
    """Indices of ``k`` top scores picked with OpenDP's one-shot noisy top-k (Gumbel, monotonic
    scores: one person raises or lowers each score by at most ``sensitivity``, never both).
    Only the indices are private; the scores themselves are not released by this."""
    scores = np.asarray(scores, dtype=np.float64)
    k = min(int(k), scores.size)
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    dp = _opendp()
    scale = k * float(sensitivity) / float(epsilon)
    meas = _checked(
        dp.m.make_noisy_top_k(
            dp.vector_domain(dp.atom_domain(T=float, nan=False)),
            dp.linf_distance(T=float, monotonic=True),
            dp.max_divergence(),
            k=k,
            scale=scale,
        ),
        float(sensitivity),
        epsilon,
    )
    return np.asarray(meas(np.nan_to_num(scores).tolist()), dtype=np.int64)


# --------------------------------------------------------------------- contribution bounds


def bound_contributions(
    users: np.ndarray,
    keys: np.ndarray,
    bounds: Bounds,
    rng: np.random.Generator,
) -> np.ndarray:
    """A mask of the records kept so that each user has records in at most
    ``bounds.max_partitions`` distinct keys and at most ``bounds.max_per_partition`` records in
    each; which ones are kept is chosen at random (uniformly among a user's keys, then among
    their records in a key). ``users`` and ``keys`` are non-negative integer arrays."""
    users = np.asarray(users, dtype=np.int64)
    keys = np.asarray(keys, dtype=np.int64)
    n = users.size
    if n == 0:
        return np.zeros(0, dtype=bool)
    # the (user, key) pair of each record, as one integer id
    _, pair = np.unique(np.stack([users, keys], axis=1), axis=0, return_inverse=True)
    pair = pair.ravel()
    n_pairs = int(pair.max()) + 1
    # rank of each record among its pair's records, in random order
    order = np.lexsort((rng.random(n), pair))
    starts = np.zeros(n_pairs + 1, dtype=np.int64)
    np.add.at(starts, pair + 1, 1)
    starts = np.cumsum(starts)
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n) - starts[pair[order]]
    # rank of each pair among its user's pairs, in random order
    pair_user = np.empty(n_pairs, dtype=np.int64)
    pair_user[pair] = users
    porder = np.lexsort((rng.random(n_pairs), pair_user))
    _, first = np.unique(pair_user[porder], return_index=True)
    group_start = np.repeat(first, np.diff(np.append(first, n_pairs)))
    pair_rank = np.empty(n_pairs, dtype=np.int64)
    pair_rank[porder] = np.arange(n_pairs) - group_start
    return (rank < bounds.max_per_partition) & (pair_rank[pair] < bounds.max_partitions)


def dense_ids(values: Sequence[Any] | np.ndarray) -> tuple[np.ndarray, list[Any]]:
    """Integer ids for hashable values (e.g. user ids, None made unique per record by the
    caller), and the distinct values in id order."""
    index: dict[Any, int] = {}
    ids = np.fromiter((index.setdefault(v, len(index)) for v in values), dtype=np.int64)
    return ids, list(index)


@dataclass
class Grant:
    """What one release may spend: its epsilon, the contribution bounds, a random generator
    (for choosing the records kept), and the mechanisms it used (reported with the figure)."""

    epsilon: float
    bounds: Bounds
    rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng())
    mechanisms: list[str] = field(default_factory=list)

    def split(self, parts: int) -> float:
        """The epsilon of each of ``parts`` measured parts (sequential composition)."""
        return self.epsilon / parts

    def histogram(
        self,
        users: np.ndarray,
        keys: np.ndarray,
        n_keys: int,
        epsilon: float,
        *,
        distinct: bool = False,
        bounds: Bounds | None = None,
    ) -> np.ndarray:
        """Noisy records per key (``distinct``: noisy distinct users per key), each user
        bounded first; integer and possibly negative (clamp where a count must be >= 0)."""
        b = bounds or self.bounds
        if distinct:
            b = Bounds(b.max_partitions, 1)
        users, keys = np.asarray(users, dtype=np.int64), np.asarray(keys, dtype=np.int64)
        keep = bound_contributions(users, keys, b, self.rng)
        exact = np.bincount(keys[keep], minlength=n_keys)[:n_keys]
        self.mechanisms.append("discrete_laplace")
        return noisy_counts(exact, b.l1, epsilon)

    def sums(
        self,
        users: np.ndarray,
        keys: np.ndarray,
        values: np.ndarray,
        n_keys: int,
        epsilon: float,
        low: float,
        high: float,
        bounds: Bounds | None = None,
    ) -> np.ndarray:
        """Noisy sums per key of ``values`` clamped to ``[low, high]``, each user bounded."""
        b = bounds or self.bounds
        users, keys = np.asarray(users, dtype=np.int64), np.asarray(keys, dtype=np.int64)
        keep = bound_contributions(users, keys, b, self.rng)
        clamped = np.clip(np.asarray(values, dtype=np.float64), low, high)
        exact = np.bincount(keys[keep], weights=clamped[keep], minlength=n_keys)[:n_keys]
        self.mechanisms.append("laplace")
        return noisy_sums(exact, b.l1 * max(abs(low), abs(high)), epsilon)

    def top_k(self, scores: np.ndarray, k: int, sensitivity: float, epsilon: float) -> np.ndarray:
        self.mechanisms.append("noisy_top_k")
        return noisy_top_k(scores, k, sensitivity, epsilon)


# ---------------------------------------------------------------------------------- release


@dataclass
class Release:
    """A released figure: its JSON ``payload`` and how it was made private."""

    payload: dict[str, Any]
    privacy: PrivacyOut
    row: int | None = None  # the stored release's id

    def header(self) -> str:
        value = f"dp; epsilon={self.privacy.epsilon:g}; mechanism={self.privacy.mechanism}"
        return value + ("; stale" if self.privacy.stale else "")


def _principal_is_admin(request: Request) -> bool:
    principal = getattr(request.state, "principal", None)
    return principal is not None and principal.allows("admin")


def applies(request: Request) -> bool:
    """Whether this request gets released (differentially private) figures."""
    return enabled(request.app.state.settings) and not _principal_is_admin(request)


def period_start(now: datetime, hours: float) -> datetime:
    width = hours * 3600.0
    return datetime.fromtimestamp(math.floor(now.timestamp() / width) * width, UTC)


def figure_key(figure: str, params: dict[str, Any], epsilon: float, bounds: Bounds) -> str:
    text = json.dumps(
        {"figure": figure, "params": params, "epsilon": epsilon, "bounds": vars(bounds)},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(text.encode()).hexdigest()


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def seconds_to_midnight(now: datetime) -> int:
    tomorrow = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), UTC)
    return max(1, math.ceil((tomorrow - now).total_seconds()))


def release(
    request: Request,
    figure: str,
    params: dict[str, Any],
    compute: Callable[[Grant], dict[str, Any]],
    now: datetime | None = None,
    for_admin: bool = False,
) -> Release | None:
    """The released figure for this request, or None when the exact figure is to be answered
    (differential privacy off, or an admin key unless ``for_admin``: an admin asking for the
    release to hand on, such as a campaign report for its advertiser). ``compute(grant)``
    builds the noisy payload (a JSON object) within the grant; it runs only when the figure is
    not released yet for the current period and the day's budget allows it."""
    from agora.api import dp_budget

    settings: Settings = request.app.state.settings
    if not enabled(settings) or (_principal_is_admin(request) and not for_admin):
        return None
    now = now or datetime.now(UTC)
    params = json.loads(json.dumps(params, sort_keys=True, default=str))
    epsilon = figure_epsilon(settings, figure)
    bounds = figure_bounds(settings, figure)
    key = figure_key(figure, params, epsilon, bounds)
    start = period_start(now, settings.dp_period_hours)
    end = start + timedelta(hours=settings.dp_period_hours)
    sessions = request.app.state.sessions
    stored = dp_budget.find(sessions, key, start)
    if stored is None:
        day = now.date()
        if not dp_budget.spend(sessions, day, epsilon, settings.dp_budget or 0.0):
            return _stale_or_refuse(sessions, key, figure, day, settings, now)
        grant = Grant(epsilon, bounds, np.random.default_rng(secrets.randbits(128)))
        try:
            payload = json.loads(json.dumps(compute(grant), default=_jsonable))
        except BaseException:
            dp_budget.refund(sessions, day, epsilon)
            raise
        mechanism = "+".join(dict.fromkeys(grant.mechanisms)) or "none"
        stored, created = dp_budget.store(
            sessions, key, start, day, figure, params, epsilon, mechanism, now, payload
        )
        if not created:  # another worker released it first: its answer stands
            dp_budget.refund(sessions, day, epsilon)
    return Release(
        stored.payload,
        PrivacyOut(
            mechanism=stored.mechanism,
            epsilon=stored.epsilon,
            max_partitions=bounds.max_partitions,
            max_per_partition=bounds.max_per_partition,
            released=stored.released,
            valid_until=end,
        ),
        stored.id,
    )


def _stale_or_refuse(
    sessions: Any, key: str, figure: str, day: date, settings: Settings, now: datetime
) -> Release:
    from agora.api import dp_budget

    last = dp_budget.latest(sessions, key)
    if last is None:
        wait = seconds_to_midnight(now)
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            detail=f"differential privacy: the privacy budget of {day.isoformat()} "
            f"(epsilon {settings.dp_budget:g}) is spent and this {figure} figure was not "
            "released before; it can be released after midnight UTC",
            headers={"Retry-After": str(wait)},
        )
    bounds = figure_bounds(settings, figure)
    return Release(
        last.payload,
        PrivacyOut(
            mechanism=last.mechanism,
            epsilon=last.epsilon,
            max_partitions=bounds.max_partitions,
            max_per_partition=bounds.max_per_partition,
            released=last.released,
            valid_until=now + timedelta(seconds=seconds_to_midnight(now)),
            stale=True,
        ),
        last.id,
    )


def mark(response: Response, settings: Settings, released: Release | None) -> None:
    """Set ``X-Privacy`` on ``response`` (nothing when differential privacy is off)."""
    if released is not None:
        response.headers[HEADER] = released.header()
    elif enabled(settings):
        response.headers[HEADER] = "exact"


#: What reading a stored payload that no longer has the shape a route expects raises
#: (pydantic's ValidationError is a ValueError).
UNREADABLE = (KeyError, IndexError, TypeError, ValueError, AttributeError)


def answer(
    request: Request,
    response: Response,
    figure: str,
    params: dict[str, Any],
    compute: Callable[[Grant], dict[str, Any]],
    shape: Callable[[Release], T],
    for_admin: bool = False,
) -> T | None:
    """The route's answer made from the released figure by ``shape`` (None: answer the exact
    figure), with ``X-Privacy`` set (:func:`release`, :func:`mark`). A stored release that
    ``shape`` cannot read (stored by another version, or altered) is dropped and the figure
    released afresh: one odd row must not take the route down for everyone."""
    from agora.api import dp_budget

    released = release(request, figure, params, compute, for_admin=for_admin)
    mark(response, request.app.state.settings, released)
    if released is None:
        return None
    try:
        return shape(released)
    except UNREADABLE as exc:
        log.warning(
            "the stored %s release %s no longer reads (%s): dropped, released afresh",
            figure, released.row, type(exc).__name__,
        )  # fmt: skip
        if released.row is not None:
            dp_budget.drop(request.app.state.sessions, released.row)
    released = release(request, figure, params, compute, for_admin=for_admin)
    mark(response, request.app.state.settings, released)
    return shape(released) if released is not None else None


def drop_noise_floor(
    counts: np.ndarray, sensitivity: float, epsilon: float, tail: float = 0.05
) -> np.ndarray:
    """Noisy counts with every value the noise alone reaches with probability ``tail`` or more
    set to 0 (post-processing: for sparse tables, where most cells are 0 and clamped noise
    would otherwise add up to more than the data). The cut is ``scale x ln(1 / (2 tail))``."""
    cut = float(sensitivity) / float(epsilon) * math.log(1.0 / (2.0 * tail))
    counts = np.asarray(counts, dtype=np.int64)
    return np.where(counts >= cut, counts, 0)


def clamp_counts(values: np.ndarray) -> np.ndarray:
    """Noisy counts made non-negative integers (post-processing)."""
    return np.maximum(np.asarray(values, dtype=np.int64), 0)
