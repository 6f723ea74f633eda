"""Budget pacing: spend a campaign's daily budget along the day's traffic, never past it.

A traffic forecast (the share of a day's feed traffic in each UTC hour, from the store's
events) gives the target spend curve: by time t a campaign should have spent about
``budget x share of the day's traffic before t``. A campaign ahead of its curve is throttled:
it enters an auction with a probability that falls linearly from 1 (on the curve) to the floor
(``tolerance`` of the budget ahead). Budget safety does not depend on pacing: a campaign bids
at most what is left of its budget, and a click is charged at most what is left.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from agora.db.tables import Event

HOURS = 24


def hourly_profile(counts: Sequence[float]) -> np.ndarray:
    """Shares of a day's traffic per hour (sum 1); uniform when there is no traffic."""
    c = np.asarray(counts, dtype=float)
    if c.shape != (HOURS,):
        raise ValueError(f"an hourly profile has {HOURS} counts, got shape {c.shape}")
    total = c.clip(min=0).sum()
    if total <= 0:
        return np.full(HOURS, 1.0 / HOURS)
    return c.clip(min=0) / total


def traffic_profile(session: Session, days: int) -> np.ndarray:
    """The hourly profile of the store's events over the ``days`` before the latest event."""
    latest = session.scalar(select(func.max(Event.timestamp)))
    counts = np.zeros(HOURS)
    if latest is None:
        return hourly_profile(counts)
    if session.get_bind().dialect.name == "postgresql":
        hour = func.extract("hour", func.timezone("UTC", Event.timestamp))
    else:
        hour = func.extract("hour", Event.timestamp)
    rows = session.execute(
        select(hour, func.count())
        .where(Event.timestamp >= latest - timedelta(days=days))
        .group_by(hour)
    )
    for h, n in rows:
        counts[int(h) % HOURS] += n
    return hourly_profile(counts)


def target_share(profile: np.ndarray, now: datetime) -> float:
    """Share of the day's forecast traffic that lies before ``now`` (UTC, within the hour
    linearly)."""
    hour = now.hour
    within = (now.minute * 60 + now.second + now.microsecond / 1e6) / 3600.0
    return float(profile[:hour].sum() + profile[hour] * within)


def pass_probability(
    spent: float, budget: float, share: float, tolerance: float, floor: float = 0.0
) -> float:
    """Probability that a campaign enters an auction now, given its spend against the curve."""
    if budget <= 0:
        return 0.0
    ahead = spent / budget - share
    if ahead <= 0:
        return 1.0
    if tolerance <= 0 or ahead >= tolerance:
        return floor
    return 1.0 - (1.0 - floor) * ahead / tolerance


def charge(price: float, spent: float, budget: float) -> float:
    """What a click at ``price`` costs given the day's spend: capped at what is left."""
    return max(0.0, min(price, budget - spent))
