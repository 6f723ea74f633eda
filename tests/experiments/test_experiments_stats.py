"""The statistics against hand-computed numbers and independent computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from agora.experiments import stats
from agora.experiments.assignment import assign, unit_draw


def test_two_proportion_z_test_matches_the_hand_computation() -> None:
    # 60/1000 vs 40/1000: pooled p = 0.05, SE0 = sqrt(0.05 * 0.95 * 2/1000) = 0.0097468,
    # z = 0.02 / 0.0097468 = 2.0520, two-sided p = 0.04017;
    # Wald SE = sqrt(0.06*0.94/1000 + 0.04*0.96/1000) = 0.0097365, 95% CI 0.02 +- 0.019083
    c = stats.two_proportions(60, 1000, 40, 1000)
    assert c.difference == pytest.approx(0.02)
    assert c.p_value == pytest.approx(0.04017, abs=5e-5)
    assert c.se == pytest.approx(0.0097365, abs=1e-6)
    assert (c.low, c.high) == pytest.approx((0.02 - 0.019083, 0.02 + 0.019083), abs=1e-5)
    assert c.relative == pytest.approx(0.5)
    assert stats.two_proportions(0, 0, 3, 10).difference is None


def test_welch_matches_scipy_and_the_hand_interval() -> None:
    arm, control = np.array([3.0, 4, 5, 6, 7]), np.array([1.0, 2, 3, 4, 5, 6, 7, 8])
    c = stats.welch(arm, control)
    ref = sps.ttest_ind(arm, control, equal_var=False)
    assert c.difference == pytest.approx(0.5)
    assert c.p_value == pytest.approx(ref.pvalue)
    # SE = sqrt(2.5/5 + 6/8) = 1.118034; df = 1.25^2 / (0.5^2/4 + 0.75^2/7) = 10.96
    df = 1.25**2 / (0.5**2 / 4 + 0.75**2 / 7)
    half = sps.t.ppf(0.975, df) * math.sqrt(1.25)
    assert (c.low, c.high) == pytest.approx((0.5 - half, 0.5 + half))


def test_delta_method_reduces_to_the_mean_of_rates_with_equal_denominators() -> None:
    rng = np.random.default_rng(3)
    clicks_a, clicks_c = rng.binomial(10, 0.3, 400), rng.binomial(10, 0.25, 500)
    tens_a, tens_c = np.full(400, 10), np.full(500, 10)
    c = stats.ratio_delta(clicks_a, tens_a, clicks_c, tens_c)
    rates_a, rates_c = clicks_a / 10, clicks_c / 10
    assert c.difference == pytest.approx(rates_a.mean() - rates_c.mean())
    se = math.sqrt(rates_a.var(ddof=1) / 400 + rates_c.var(ddof=1) / 500)
    assert c.se == pytest.approx(se)
    assert c.p_value == pytest.approx(2 * sps.norm.sf(abs(c.difference) / se))


def test_sample_size_and_power_are_inverse() -> None:
    # the textbook case: 5% -> 6%, alpha 0.05 two-sided, power 0.8 -> 8,158 users per arm
    n = stats.sample_size_proportions(0.05, 0.01, 0.05, 0.8)
    assert n == 8158
    assert stats.power_proportions(0.05, 0.01, 0.05, n) == pytest.approx(0.8, abs=1e-3)
    # means: sd 1, mde 0.1 -> 2 * (1.959964 + 0.841621)^2 / 0.01 = 1569.8 -> 1570
    assert stats.sample_size_means(1.0, 0.1, 0.05, 0.8) == 1570
    with pytest.raises(ValueError, match="between 0 and 1"):
        stats.sample_size_proportions(0.95, 0.1, 0.05, 0.8)


def test_obrien_fleming_bounds_spend_exactly_alpha() -> None:
    assert stats.obrien_fleming_bounds(1, 0.05) == pytest.approx((1.644854,), abs=1e-4)
    bounds = stats.obrien_fleming_bounds(5, 0.05)
    # Jennison & Turnbull's O'Brien-Fleming constant C_B(5) for one-sided 0.05 is 1.751
    assert bounds[-1] == pytest.approx(1.751, abs=2e-3)
    assert bounds[0] == pytest.approx(bounds[-1] * math.sqrt(5))
    assert stats.crossing_probability(np.array(bounds)) == pytest.approx(0.05, abs=1e-5)
    # naive peeking (1.645 at each of 5 looks) would raise false stops well above 0.05
    assert stats.crossing_probability(np.full(5, 1.644854)) > 0.12


def test_assignment_is_deterministic_balanced_and_salted() -> None:
    arms = [("control", 1.0), ("treatment", 1.0)]
    users = [f"user-{i}" for i in range(20000)]
    first = [assign("exp-a", u, arms) for u in users]
    assert first == [assign("exp-a", u, arms) for u in users]
    share = first.count("treatment") / len(users)
    assert abs(share - 0.5) < 3 * math.sqrt(0.25 / len(users))
    other = [assign("exp-b", u, arms) for u in users]
    agree = sum(a == b for a, b in zip(first, other, strict=True)) / len(users)
    assert abs(agree - 0.5) < 0.03  # independent splits across experiments
    weighted = [assign("exp-a", u, [("a", 1.0), ("b", 3.0)]) for u in users]
    assert abs(weighted.count("b") / len(users) - 0.75) < 0.015
    assert 0 <= unit_draw("s", "u") < 1
    with pytest.raises(ValueError, match="positive"):
        assign("s", "u", [("a", 0.0)])
