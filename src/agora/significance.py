"""Normal-approximation tests a domain reports (a kit: it knows no domain).

The pooled two-proportion z-test and the normal quantiles behind confidence intervals, for the
experiments' comparisons (``agora.experiments.stats``) and the ad campaigns' lift over their
holdout (``agora.market.service``), so both give the same p-value for the same counts.
"""

from __future__ import annotations

import math
from statistics import NormalDist

NORMAL = NormalDist()


def z_quantile(confidence: float) -> float:
    """The z of a two-sided interval at ``confidence`` (1.96 for 0.95)."""
    return NORMAL.inv_cdf(0.5 + confidence / 2)


def two_sided_p(z: float) -> float:
    """Two-sided p-value of a standard normal statistic."""
    return 2 * (1 - NORMAL.cdf(abs(z)))


def pooled_two_proportion_p(k1: int, n1: int, k0: int, n0: int) -> float | None:
    """Two-sided p-value of the pooled two-proportion z-test of k1/n1 against k0/n0 (both n
    positive); None when the pooled standard error is 0 (no or only successes)."""
    pooled = (k1 + k0) / (n1 + n0)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n0))
    return two_sided_p((k1 / n1 - k0 / n0) / se) if se > 0 else None
