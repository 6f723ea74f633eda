"""Pacing: the traffic forecast, the target curve, throttling and the budget cap on charges."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from agora.db.engine import session_factory, transaction
from agora.ingest.schemas import EventIn
from agora.ingest.service import add_events
from agora.market import pacing
from agora.market.config import MarketConfig
from agora.market.service import effective_bid, in_holdout, lift, usable_slots, wilson


def test_profile_is_uniform_without_traffic_and_normalised_with_it() -> None:
    assert pacing.hourly_profile(np.zeros(24)) == pytest.approx(np.full(24, 1 / 24))
    counts = np.zeros(24)
    counts[[9, 10]] = [1, 3]
    profile = pacing.hourly_profile(counts)
    assert profile[9] == pytest.approx(0.25) and profile[10] == pytest.approx(0.75)
    with pytest.raises(ValueError, match="24 counts"):
        pacing.hourly_profile([1, 2])


def test_target_share_follows_the_profile_within_the_hour() -> None:
    counts = np.zeros(24)
    counts[[9, 10]] = [1, 3]
    profile = pacing.hourly_profile(counts)
    day = datetime(2026, 1, 1, tzinfo=UTC)
    assert pacing.target_share(profile, day.replace(hour=8)) == 0
    assert pacing.target_share(profile, day.replace(hour=10)) == pytest.approx(0.25)
    assert pacing.target_share(profile, day.replace(hour=10, minute=30)) == pytest.approx(0.625)
    assert pacing.target_share(profile, day.replace(hour=23, minute=59)) == pytest.approx(1.0)


def test_pass_probability_throttles_linearly_when_ahead() -> None:
    assert pacing.pass_probability(10, 100, 0.2, 0.1) == 1.0  # behind the curve
    assert pacing.pass_probability(25, 100, 0.2, 0.1) == pytest.approx(0.5)  # 5% ahead of 10%
    assert pacing.pass_probability(40, 100, 0.2, 0.1) == 0.0
    assert pacing.pass_probability(40, 100, 0.2, 0.1, floor=0.2) == 0.2
    assert pacing.pass_probability(0, 0, 0.5, 0.1) == 0.0


def test_charge_is_capped_at_what_is_left() -> None:
    assert pacing.charge(1.0, 0.0, 10.0) == 1.0
    assert pacing.charge(1.0, 9.5, 10.0) == 0.5
    assert pacing.charge(1.0, 10.0, 10.0) == 0.0


def test_effective_bid_sits_out_at_cap_without_budget_and_when_throttled() -> None:
    cfg = MarketConfig(reserve_price=0.1, pacing=True, pacing_tolerance=0.1)
    args = {"budget": 10.0, "cap": 2, "share": 0.5, "config": cfg, "draw": 0.99}
    assert effective_bid(1.0, spent=1.0, shown=0, **args) == 1.0
    assert effective_bid(1.0, spent=1.0, shown=2, **args) is None  # frequency cap
    assert effective_bid(1.0, spent=9.95, shown=0, **{**args, "share": 1.0}) is None  # < reserve
    assert (
        effective_bid(1.0, spent=9.5, shown=0, **{**args, "share": 1.0}) == 0.5
    )  # bids what is left
    assert effective_bid(1.0, spent=8.0, shown=0, **args) is None  # 30% ahead: throttled
    off = {**args, "config": MarketConfig(reserve_price=0.1, pacing=False)}
    assert effective_bid(1.0, spent=8.0, shown=0, **off) == 1.0


def test_holdout_is_stable_and_close_to_its_share() -> None:
    users = [f"user-{i}" for i in range(20000)]
    held = [in_holdout("salt", u, 0.1) for u in users]
    assert held == [in_holdout("salt", u, 0.1) for u in users]
    assert 0.09 < np.mean(held) < 0.11
    other = [in_holdout("other", u, 0.1) for u in users]
    assert held != other  # each campaign has its own split


def test_usable_slots() -> None:
    assert usable_slots([3, 10], 20) == [3, 10]
    assert usable_slots([3, 10], 8) == [3, 10]  # 3rd, then 10th of 8 + 2 ads: 9 before it
    assert usable_slots([3, 10], 7) == [3]
    assert usable_slots([1], 0) == []


def test_traffic_profile_from_events(engine) -> None:
    day = datetime(2026, 3, 2, tzinfo=UTC)
    events = [
        EventIn(
            event_id=f"e{i}",
            user_id="u",
            item_id="i",
            type="view",
            timestamp=day + timedelta(hours=18 if i < 3 else 6),
        )
        for i in range(4)
    ]
    sessions = session_factory(engine)
    with transaction(sessions) as session:
        assert pacing.traffic_profile(session, 28) == pytest.approx(np.full(24, 1 / 24))
        add_events(session, events, ["view"], max_future_seconds=1e9)
    with sessions() as session:
        profile = pacing.traffic_profile(session, 28)
    assert profile[18] == pytest.approx(0.75) and profile[6] == pytest.approx(0.25)


def test_lift_interval_matches_newcombe_and_handles_empty_arms() -> None:
    # Newcombe (1998), Statistics in Medicine 17:873, method 10: 56/70 vs 48/80
    out = lift(56, 70, 48, 80, 0.95)
    assert out["difference"]["estimate"] == pytest.approx(0.2)
    assert out["difference"]["low"] == pytest.approx(0.0524, abs=1e-4)
    assert out["difference"]["high"] == pytest.approx(0.3339, abs=1e-4)
    assert out["p_value"] == pytest.approx(0.008, abs=1e-3)
    # no conversion in a small holdout: the interval stays wide (Wald would collapse to a point)
    few = lift(5, 100, 0, 10, 0.95)["difference"]
    assert few["low"] < 0 < few["high"]
    assert lift(3, 10, 0, 0, 0.95)["difference"]["estimate"] is None


def test_wilson_interval() -> None:
    p, low, high = wilson(0, 20, 0.95)
    assert p == 0 and low == pytest.approx(0, abs=1e-12)
    assert high == pytest.approx(0.1611, abs=1e-4)
    assert wilson(0, 0, 0.95) == (None, None, None)
