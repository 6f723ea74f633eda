"""Helpers of the Spark engine tests: the comparisons of the local and Spark engines' outputs
(counts exactly, floats within 1e-9)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from agora.analytics.engagement import service as eg
from agora.analytics.engagement.report import Engagement

RELATIVE = 1e-9


def close(a: Any, b: Any) -> bool:
    """``a`` and ``b`` equal, floats within :data:`RELATIVE` (None only equals None)."""
    if a is None or b is None:
        return a is b
    return a == pytest.approx(b, rel=RELATIVE, abs=1e-12)


def assert_rates_equal(local: list[eg.InteractionRate], spark: list[eg.InteractionRate]) -> None:
    assert [(r.key, r.items, r.events, r.users) for r in spark] == [
        (r.key, r.items, r.events, r.users) for r in local
    ]
    assert all(close(a.rate, b.rate) for a, b in zip(local, spark, strict=True))


def assert_retention_equal(local: eg.Retention, spark: eg.Retention) -> None:
    assert [(c.start, c.users) for c in spark.cohorts] == [
        (c.start, c.users) for c in local.cohorts
    ]
    for a, b in zip(local.cohorts, spark.cohorts, strict=True):
        assert all(close(x, y) for x, y in zip(a.retention, b.retention, strict=True))
    assert all(close(x, y) for x, y in zip(local.overall, spark.overall, strict=True))
    assert len(spark.overall) == len(local.overall)


def assert_response_equal(local: eg.ResponseTimes, spark: eg.ResponseTimes) -> None:
    assert (spark.items, spark.answered) == (local.items, local.answered)
    assert np.array_equal(np.sort(spark.seconds), np.sort(local.seconds))
    for name in ("share_answered", "median_seconds", "p90_seconds", "mean_seconds"):
        assert close(getattr(local, name), getattr(spark, name)), name


def assert_attention_equal(local: eg.Attention, spark: eg.Attention) -> None:
    for a, b in ((local.items, spark.items), (local.creators, spark.creators)):
        assert (b.population, b.engaged, b.events) == (a.population, a.engaged, a.events)
        assert np.array_equal(np.sort(b.counts), np.sort(a.counts))
        assert close(a.gini, b.gini) and close(a.top1_share, b.top1_share)
        assert close(a.top10_share, b.top10_share)
        assert np.allclose(a.lorenz, b.lorenz, rtol=RELATIVE, atol=1e-12)


def assert_engagement_equal(local: Engagement, spark: Engagement) -> None:
    """Every analytic of the two engines' reports equal."""
    assert spark.daily == local.daily
    assert spark.weekly == local.weekly
    assert_rates_equal(local.top_items, spark.top_items)
    assert_rates_equal(local.top_authors, spark.top_authors)
    assert_retention_equal(local.retention, spark.retention)
    assert_response_equal(local.response, spark.response)
    assert_attention_equal(local.attention, spark.attention)
