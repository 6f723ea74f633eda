"""A campaign report fit to hand to its advertiser: the measurement of
:func:`agora.market.service.report` with differential privacy (``GET
/campaigns/{id}/report?release=advertiser``, admin, with ``AGORA_DP_EPSILON`` set).

Each person counts at most ``max_per_partition`` impressions, clicks and converted clicks
(chosen at random), a conversion's value is clamped to the campaign's ``conversion_value``
(1.0 when it has none), and each eligible person is in one holdout arm. Five noisy parts
share the epsilon evenly: impressions, clicks, converted clicks, conversion value (discrete
Laplace and Laplace from OpenDP) and the arms' users and converters. CTR, CVR, CPC, ROI and
lift are computed from the noisy counts (their intervals do not widen for the noise). Spend,
the campaign's bill, stays exact, and so do today's spend and the serving status.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from agora.api.dp import Bounds, Grant, bound_contributions, noisy_counts, noisy_sums
from agora.market import service
from agora.market.config import MarketConfig
from agora.market.models import AdClick, AdImpression, Eligibility

PARTS = 5


def _bounded(users: list[int], grant: Grant) -> np.ndarray:
    """Mask of the records kept: at most ``max_per_partition`` per person."""
    arr = np.asarray(users, dtype=np.int64)
    k = grant.bounds.max_per_partition
    return bound_contributions(arr, np.zeros(arr.size, dtype=np.int64), Bounds(1, k), grant.rng)


def _count(n: int, sensitivity: float, eps: float) -> int:
    return max(int(noisy_counts(np.asarray([n]), sensitivity, eps)[0]), 0)


def private_report(
    session: Session, campaign_id: str, config: MarketConfig, now: datetime, grant: Grant
) -> dict[str, Any]:
    exact = service.report(session, campaign_id, config, now)
    c = service._campaign(session, campaign_id)
    k = grant.bounds.max_per_partition
    eps = grant.split(PARTS)
    cap = float(c.conversion_value) if c.conversion_value and c.conversion_value > 0 else 1.0

    shown = session.scalars(select(AdImpression.user_id).where(AdImpression.campaign_id == c.id))
    shown_users = list(shown)
    impressions = _count(int(_bounded(shown_users, grant).sum()), k, eps)

    clicks = session.execute(
        select(AdClick.user_id, AdClick.clicked).where(AdClick.campaign_id == c.id)
    ).all()
    kept = _bounded([u for u, _ in clicks], grant)
    window = timedelta(days=config.attribution_days)
    clickers = select(AdClick.user_id).where(AdClick.campaign_id == c.id)
    by_user: dict[int, list[tuple[datetime, float]]] = {}
    for u, t, v in service._conversions(session, c, clickers):
        by_user.setdefault(u, []).append((t, v))
    converted, value = 0, 0.0
    for (u, clicked), keep in zip(clicks, kept, strict=True):
        if not keep:
            continue
        start = service._aware(clicked)
        after = sorted(x for x in by_user.get(u, []) if start <= x[0] <= start + window)
        if after:
            converted += 1
            value += min(max(float(after[0][1]), 0.0), cap)
    n_clicks = _count(int(kept.sum()), k, eps)
    n_converted = min(_count(converted, k, eps), n_clicks)
    noisy_value = max(float(noisy_sums(np.asarray([value]), k * cap, eps)[0]), 0.0)

    arms = session.execute(
        select(Eligibility.user_id, Eligibility.holdout, Eligibility.first_seen).where(
            Eligibility.campaign_id == c.id
        )
    ).all()
    eligible = select(Eligibility.user_id).where(Eligibility.campaign_id == c.id)
    first: dict[int, datetime] = {}
    for u, t, _ in service._conversions(session, c, eligible):
        first[u] = min(first.get(u, t), t)
    cells = np.zeros(4, dtype=np.int64)  # exposed users, exposed converters, holdout ...
    for u, held, seen in arms:
        cells[2 * int(held)] += 1
        if u in first and first[u] >= service._aware(seen):
            cells[2 * int(held) + 1] += 1
    arm = np.maximum(noisy_counts(cells, 2, eps), 0)
    arm[1] = min(arm[1], arm[0])
    arm[3] = min(arm[3], arm[2])
    grant.mechanisms += ["discrete_laplace", "laplace"]

    spend = exact["spend"]
    ctr = service.wilson(n_clicks, impressions, config.confidence)
    cvr = service.wilson(n_converted, n_clicks, config.confidence)
    return exact | {
        "impressions": impressions,
        "clicks": n_clicks,
        "ctr": dict(zip(("estimate", "low", "high"), ctr, strict=True)),
        "cpc": spend / n_clicks if n_clicks else None,
        "conversions": n_converted,
        "cvr": dict(zip(("estimate", "low", "high"), cvr, strict=True)),
        "conversion_value": noisy_value,
        "roi": (noisy_value - spend) / spend if spend > 0 else None,
        "lift": service.lift(int(arm[1]), int(arm[0]), int(arm[3]), int(arm[2]), config.confidence),
    }
