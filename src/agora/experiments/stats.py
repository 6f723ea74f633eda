"""The statistics of an experiment: comparisons of an arm with the control, sample sizes, and
the sequential bound that lets guardrails look at the data several times.

Methods (each result names its own in ``method``):

* **Proportions** (retention): difference ``p1 - p0`` with a Wald interval (unpooled standard
  error); two-sided p-value of the pooled two-proportion z-test.
* **Means per user** (engagement events per exposed user): difference of means with Welch's
  t interval (Welch-Satterthwaite degrees of freedom) and Welch's two-sided t-test; valid for
  skewed counts through the central limit theorem at experiment sizes.
* **Ratios** (CTR = clicks / impressions, users are the randomised unit): the delta method
  gives the variance of ``sum(clicks) / sum(impressions)`` per arm from the per-user pairs
  (Deng et al. 2018), then a z interval and two-sided z-test on the difference.
* **Sample size** for two proportions (per arm), the classic normal approximation
  ``n = (z_{1-a/2} sqrt(2 p(1-p)) + z_{1-b} sqrt(p0(1-p0) + p1(1-p1)))^2 / mde^2``; for means
  ``n = 2 (z_{1-a/2} + z_{1-b})^2 sd^2 / mde^2``.
* **Guardrails** are one-sided tests of harm, "the arm is worse than control by more than the
  margin", taken at ``K`` planned looks (at k/K of the planned users). Looking K times at a
  fixed-level test inflates the false alarm rate (about 0.14 instead of 0.05 for K = 5), so
  look k uses the O'Brien-Fleming-shaped bound ``c_k = C sqrt(K / k)``: strict early, close to
  the fixed-sample value at the end. ``C`` is solved so that, under no harm, the probability
  that *any* of the K cumulative z-statistics crosses its bound is exactly ``alpha``; the
  cumulative statistics at equally spaced looks are a Gaussian random walk, and that crossing
  probability is computed by numerical integration over the walk (Armitage, McPherson & Rowe
  1969), so the whole sequence of looks has false-stop rate alpha (Jennison & Turnbull 2000,
  ch. 2). ``bench/experiment_sim.py`` checks it by simulation.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from agora.significance import NORMAL, pooled_two_proportion_p, two_sided_p, z_quantile

GRID_STEP = 0.01  # of the random walk's integration grid (crossing probability error < 1e-4)


@dataclass
class Comparison:
    """One metric of an arm against the control: values, difference with CI, p-value."""

    metric: str
    method: str
    control_value: float | None
    arm_value: float | None
    difference: float | None
    low: float | None
    high: float | None
    se: float | None
    p_value: float | None
    control_n: int
    arm_n: int

    @property
    def relative(self) -> float | None:
        """The difference as a share of the control value."""
        if self.difference is None or not self.control_value:
            return None
        return self.difference / self.control_value

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "relative": self.relative}


def _empty(metric: str, method: str, n0: int, n1: int, v0=None, v1=None) -> Comparison:  # noqa: ANN001
    return Comparison(metric, method, v0, v1, None, None, None, None, None, n0, n1)


def two_proportions(
    k1: int, n1: int, k0: int, n0: int, confidence: float = 0.95, metric: str = "proportion"
) -> Comparison:
    """Arm rate k1/n1 against control rate k0/n0: Wald CI, pooled two-proportion z-test."""
    method = "difference of proportions: Wald CI (unpooled SE), pooled two-proportion z-test"
    if n1 <= 0 or n0 <= 0:
        return _empty(metric, method, n0, n1, k0 / n0 if n0 else None, k1 / n1 if n1 else None)
    p1, p0 = k1 / n1, k0 / n0
    diff = p1 - p0
    se = math.sqrt(p1 * (1 - p1) / n1 + p0 * (1 - p0) / n0)
    p_value = pooled_two_proportion_p(k1, n1, k0, n0)
    half = z_quantile(confidence) * se
    return Comparison(metric, method, p0, p1, diff, diff - half, diff + half, se, p_value, n0, n1)


def welch(
    arm: np.ndarray, control: np.ndarray, confidence: float = 0.95, metric: str = "mean"
) -> Comparison:
    """Difference of means (arm - control): Welch t interval and Welch's two-sided t-test."""
    method = "difference of means: Welch t interval and Welch's t-test"
    x1, x0 = np.asarray(arm, dtype=float), np.asarray(control, dtype=float)
    n1, n0 = len(x1), len(x0)
    m1 = float(x1.mean()) if n1 else None
    m0 = float(x0.mean()) if n0 else None
    if n1 < 2 or n0 < 2:
        return _empty(metric, method, n0, n1, m0, m1)
    v1, v0 = x1.var(ddof=1) / n1, x0.var(ddof=1) / n0
    se = math.sqrt(v1 + v0)
    diff = m1 - m0
    if se == 0:
        return Comparison(metric, method, m0, m1, diff, diff, diff, 0.0, None, n0, n1)
    from scipy import stats as sps  # on use: scipy.stats takes about half a second to import

    df = (v1 + v0) ** 2 / (v1**2 / (n1 - 1) + v0**2 / (n0 - 1))
    half = float(sps.t.ppf(0.5 + confidence / 2, df)) * se
    p_value = float(2 * sps.t.sf(abs(diff) / se, df))
    return Comparison(metric, method, m0, m1, diff, diff - half, diff + half, se, p_value, n0, n1)


def _ratio(num: np.ndarray, den: np.ndarray) -> tuple[float, float]:
    """sum(num) / sum(den) over users and its delta-method variance."""
    n = len(num)
    mx, my = num.mean(), den.mean()
    ratio = mx / my
    if n < 2:
        return float(ratio), math.nan
    cov = np.cov(num, den, ddof=1)
    var = (cov[0, 0] - 2 * ratio * cov[0, 1] + ratio**2 * cov[1, 1]) / (n * my**2)
    return float(ratio), float(max(var, 0.0))


def ratio_delta(
    arm_num: np.ndarray,
    arm_den: np.ndarray,
    control_num: np.ndarray,
    control_den: np.ndarray,
    confidence: float = 0.95,
    metric: str = "ratio",
) -> Comparison:
    """Difference of ratio metrics (e.g. clicks / impressions) with per-user pairs: delta-method
    variance per arm, z interval and two-sided z-test. Users with a zero denominator count
    (they add to neither sum); an arm without any denominator has no value."""
    method = "difference of ratios: delta-method SE (users randomised), z interval and z-test"
    a_num, a_den = np.asarray(arm_num, float), np.asarray(arm_den, float)
    c_num, c_den = np.asarray(control_num, float), np.asarray(control_den, float)
    n1, n0 = len(a_den), len(c_den)
    if a_den.sum() <= 0 or c_den.sum() <= 0:
        r1 = float(a_num.sum() / a_den.sum()) if a_den.sum() > 0 else None
        r0 = float(c_num.sum() / c_den.sum()) if c_den.sum() > 0 else None
        return _empty(metric, method, n0, n1, r0, r1)
    r1, var1 = _ratio(a_num, a_den)
    r0, var0 = _ratio(c_num, c_den)
    diff = r1 - r0
    if math.isnan(var1) or math.isnan(var0):
        return _empty(metric, method, n0, n1, r0, r1)
    se = math.sqrt(var1 + var0)
    half = z_quantile(confidence) * se
    p_value = two_sided_p(diff / se) if se > 0 else None
    return Comparison(metric, method, r0, r1, diff, diff - half, diff + half, se, p_value, n0, n1)


# ---------------------------------------------------------------- planning


def sample_size_proportions(baseline: float, mde: float, alpha: float, power: float) -> int:
    """Users per arm for a two-sided test at ``alpha`` to detect ``baseline -> baseline + mde``
    (absolute) with probability ``power``."""
    p0, p1 = baseline, baseline + mde
    if not (0 < p0 < 1 and 0 < p1 < 1) or mde == 0:
        raise ValueError("baseline and baseline + mde must lie strictly between 0 and 1, mde != 0")
    _check_levels(alpha, power)
    za, zb = NORMAL.inv_cdf(1 - alpha / 2), NORMAL.inv_cdf(power)
    pbar = (p0 + p1) / 2
    top = za * math.sqrt(2 * pbar * (1 - pbar)) + zb * math.sqrt(p0 * (1 - p0) + p1 * (1 - p1))
    return math.ceil(top**2 / mde**2)


def power_proportions(baseline: float, mde: float, alpha: float, n: int) -> float:
    """Power of the two-sided two-proportion test with ``n`` users per arm (the inverse of
    :func:`sample_size_proportions`)."""
    p0, p1 = baseline, baseline + mde
    za = NORMAL.inv_cdf(1 - alpha / 2)
    pbar = (p0 + p1) / 2
    se0 = math.sqrt(2 * pbar * (1 - pbar) / n)
    se1 = math.sqrt((p0 * (1 - p0) + p1 * (1 - p1)) / n)
    return NORMAL.cdf((abs(mde) - za * se0) / se1)


def sample_size_means(sd: float, mde: float, alpha: float, power: float) -> int:
    """Users per arm for a two-sided test of means (standard deviation ``sd`` per user)."""
    if sd <= 0 or mde == 0:
        raise ValueError("sd must be positive and mde non-zero")
    _check_levels(alpha, power)
    za, zb = NORMAL.inv_cdf(1 - alpha / 2), NORMAL.inv_cdf(power)
    return math.ceil(2 * (za + zb) ** 2 * sd**2 / mde**2)


def _check_levels(alpha: float, power: float) -> None:
    if not 0 < alpha < 1 or not 0 < power < 1:
        raise ValueError("alpha and power must lie strictly between 0 and 1")


# ---------------------------------------------------------------- sequential guardrails


def crossing_probability(bounds: np.ndarray) -> float:
    """Probability that a standard Gaussian random walk's z-statistic ``S_k / sqrt(k)`` falls
    below ``-bounds[k-1]`` at some look k = 1..K (equally spaced information)."""
    from scipy import stats as sps
    from scipy.signal import fftconvolve

    bounds = np.asarray(bounds, dtype=float)
    looks = len(bounds)
    walk = bounds * np.sqrt(np.arange(1, looks + 1))  # thresholds on the sum S_k
    h = GRID_STEP
    grid = np.arange(-walk.max(), 8 * math.sqrt(looks) + 2, h) + h / 2
    kernel = sps.norm.pdf(np.arange(-8, 8 + h / 2, h)) * h
    density = sps.norm.pdf(grid) * (grid > -walk[0])
    total = float(sps.norm.cdf(-walk[0]))
    for k in range(1, looks):
        total += float(np.sum(density * sps.norm.cdf(-walk[k] - grid)) * h)
        density = fftconvolve(density, kernel, mode="same") * (grid > -walk[k])
    return total


@lru_cache(maxsize=64)
def obrien_fleming_bounds(looks: int, alpha: float) -> tuple[float, ...]:
    """One-sided z bounds ``C sqrt(K/k)`` for looks k = 1..K with overall false-alarm rate
    ``alpha`` (see the module docstring)."""
    if looks < 1:
        raise ValueError("at least one look")
    if not 0 < alpha < 0.5:
        raise ValueError("alpha must lie in (0, 0.5)")
    from scipy.optimize import brentq

    shape = np.sqrt(looks / np.arange(1, looks + 1))
    c = brentq(lambda c: crossing_probability(c * shape) - alpha, 0.5, 8.0, xtol=1e-6)
    return tuple(float(c * s) for s in shape)


def harm_z(comparison: Comparison, margin: float) -> float | None:
    """z-statistic of "the arm is worse than control by more than ``margin`` (a share of the
    control value)": (difference + margin x control) / SE; very negative = harm."""
    c = comparison
    if c.difference is None or not c.se or c.control_value is None:
        return None
    return (c.difference + margin * abs(c.control_value)) / c.se
