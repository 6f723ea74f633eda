"""Differential privacy of the figures non-admin keys read (agora.api.dp)."""

from __future__ import annotations

import time
from collections import Counter
from types import SimpleNamespace

import numpy as np
import pytest
from dp_support import ADMIN, HEAVY_DAY, READ, START, WRITE, community

from agora.api import dp

#: Every route that releases a figure under differential privacy, with a query.
RELEASED = [
    "/analytics/engagement/active?bucket=day",
    "/analytics/engagement/rates?by=item&n=5",
    "/analytics/engagement/retention?weeks=3",
    "/analytics/engagement/response-times",
    "/analytics/engagement/attention",
    "/analytics/reach?by=author&n=5",
    "/analytics/trending?bucket=day&buckets=14&min_count=2",
    "/analytics/sentiment?by=tag",
    "/trust/levels",
    "/feed/sources?hours=48",
]

CAMPAIGN = {
    "campaign_id": "c1",
    "advertiser": "Acme",
    "items": ["p0", "p1"],
    "bid": 1.0,
    "daily_budget": 1000.0,
}
#: Tight bounds and a large epsilon: noise far below the margins the tests allow.
SHARP = {
    "dp_epsilon": 100.0,
    "dp_figures": {"active_users": {"max_partitions": 16, "max_per_partition": 8}},
}
#: |discrete Laplace| of scale 128 / 50 exceeds this with probability < e^-23 per draw
MARGIN = 60


def _by_day(rows: list[dict]) -> dict[str, dict]:
    return {r["start"][:10]: r for r in rows}


# ------------------------------------------------------------------------------- the kit


def test_bounds_keep_at_most_k_per_partition_and_m_partitions() -> None:
    rng = np.random.default_rng(1)
    users = np.concatenate([np.zeros(10_000, dtype=np.int64), rng.integers(1, 200, 5_000)])
    keys = np.concatenate([np.full(10_000, 3), rng.integers(0, 40, 5_000)])
    keep = dp.bound_contributions(users, keys, dp.Bounds(4, 2), rng)
    per_pair = Counter(zip(users[keep].tolist(), keys[keep].tolist(), strict=True))
    assert max(per_pair.values()) <= 2
    per_user = Counter(u for u, _ in per_pair)
    assert max(per_user.values()) <= 4
    assert per_pair[(0, 3)] == 2  # 10,000 records of one person: 2 counted
    # nothing dropped that the bounds allow: a user with one record keeps it
    single = dp.bound_contributions(np.arange(50), np.arange(50) % 7, dp.Bounds(1, 1), rng)
    assert single.all()


def test_one_person_moves_a_released_count_by_at_most_the_bound() -> None:
    rng = np.random.default_rng(2)
    users = np.arange(3_000)  # everyone else within the bounds: nothing of theirs is dropped
    keys = rng.integers(0, 10, 3_000)
    grant = dp.Grant(1e6, dp.Bounds(3, 2), rng)  # noise ~1e-5: the bound is all that shows
    without = grant.histogram(users, keys, 10, grant.epsilon)
    heavy_users = np.concatenate([users, np.full(10_000, 99_999)])
    heavy_keys = np.concatenate([keys, np.arange(10_000) % 10])  # 1,000 records in each key
    with_heavy = grant.histogram(heavy_users, heavy_keys, 10, grant.epsilon)
    moved = with_heavy - without
    assert moved.min() >= 0 and moved.max() <= 2  # at most 2 records in one key
    assert moved.sum() <= 3 * 2  # in at most 3 keys
    assert np.abs(without - np.bincount(keys, minlength=10)).max() == 0


def test_mechanisms_come_from_opendp_and_respect_their_budget() -> None:
    counts = np.array([100, 200, 300])
    noisy = dp.noisy_counts(counts, sensitivity=2, epsilon=1.0)
    assert noisy.dtype == np.int64 and noisy.shape == (3,)
    sums = dp.noisy_sums(np.array([1.5, -2.0]), sensitivity=1.0, epsilon=1.0)
    assert sums.shape == (2,)
    top = dp.noisy_top_k(np.array([0.0, 1000.0, 5.0, 2000.0]), 2, 1.0, 50.0)
    assert sorted(top.tolist()) == [1, 3]
    with pytest.raises(ValueError, match="spends"):
        dp._checked(dp._opendp().m.make_laplace(
            dp._opendp().atom_domain(T=float, nan=False), dp._opendp().absolute_distance(T=float),
            scale=1.0), 1.0, 0.5)  # fmt: skip


def test_noisy_trending_picks_by_the_models_scores() -> None:
    from agora.privacy.dp_trending import noisy_trending

    model = SimpleNamespace(item_scores_=np.array([1.0, 500.0, 3.0, 900.0, 2.0]))
    loaded = SimpleNamespace(model=model, item_ids=["a", "b", "c", "d", "e"])
    grant = dp.Grant(200.0, dp.Bounds(1, 1))
    assert noisy_trending(loaded, grant, 2)["items"] == ["d", "b"]
    assert grant.mechanisms == ["noisy_top_k"]


# ---------------------------------------------------------------------------------- routes


def test_off_by_default_every_key_gets_todays_exact_figures(dp_client) -> None:
    client = dp_client()
    for path in RELEASED:
        exact = client.get(path, headers=ADMIN)
        read = client.get(path, headers=READ)
        assert read.status_code == exact.status_code == 200, (path, read.text)
        assert read.json() == exact.json(), path
        assert dp.HEADER not in read.headers
        assert "privacy" not in read.text
    days = _by_day(client.get("/analytics/engagement/active", headers=READ).json())
    assert days[(START.date().replace(day=START.day + HEAVY_DAY)).isoformat()]["events"] > 10_000


def test_on_released_figures_are_noisy_marked_and_bounded(dp_client) -> None:
    client = dp_client(**SHARP)
    exact = _by_day(client.get("/analytics/engagement/active", headers=ADMIN).json())
    answer = client.get("/analytics/engagement/active", headers=READ)
    assert answer.status_code == 200
    assert answer.headers[dp.HEADER].startswith("dp; epsilon=100;")
    assert "discrete_laplace" in answer.headers[dp.HEADER]
    released = _by_day(answer.json())
    assert released.keys() == exact.keys()
    heavy_day = (START.date().replace(day=START.day + HEAVY_DAY)).isoformat()
    for day, row in released.items():
        assert abs(row["users"] - exact[day]["users"]) <= MARGIN, day  # nobody over 16 days
        regular = exact[day]["events"] - (10_000 if day == heavy_day else 0)
        # one person's 10,000 likes count 8 at most (max_per_partition)
        assert abs(row["events"] - regular) <= 8 + MARGIN, day
    assert released[heavy_day]["events"] < 1_000 < exact[heavy_day]["events"]


def test_admin_keys_keep_exact_figures_while_on(dp_client) -> None:
    on = dp_client(**SHARP)
    answer = on.get("/analytics/engagement/active", headers=ADMIN)
    assert answer.headers[dp.HEADER] == "exact"
    assert sum(r["events"] for r in answer.json()) == len(community().events)


def test_every_released_route_answers_marked(dp_client) -> None:
    client = dp_client(dp_epsilon=5.0, dp_daily_budget=1000.0)
    for path in RELEASED:
        for headers in (READ, WRITE):
            answer = client.get(path, headers=headers)
            assert answer.status_code == 200, (path, answer.text)
            assert answer.headers[dp.HEADER].startswith("dp; epsilon=5;"), path
            body = answer.json()
            if isinstance(body, dict) and "privacy" in body:
                assert body["privacy"]["epsilon"] == 5.0
                assert body["privacy"]["stale"] is False


def test_the_same_figure_twice_costs_once_and_answers_the_same(dp_client) -> None:
    client = dp_client(dp_epsilon=0.5, dp_daily_budget=10.0)
    first = client.get("/analytics/engagement/retention?weeks=2", headers=READ)
    again = client.get("/analytics/engagement/retention?weeks=2", headers=WRITE)
    assert first.status_code == again.status_code == 200
    assert first.json() == again.json()  # no fresh noise to average away
    other = client.get("/analytics/engagement/retention?weeks=3", headers=READ)
    assert other.status_code == 200
    budget = client.get("/admin/privacy/budget", headers=ADMIN).json()
    assert budget["spent"] == pytest.approx(1.0)
    assert [r["figure"] for r in budget["releases"]] == ["retention", "retention"]
    assert {r["params"]["weeks"] for r in budget["releases"]} == {2, 3}
    # limit-like parameters slice one release: n=3 and n=5 cost one
    client.get("/analytics/reach?n=3", headers=READ)
    client.get("/analytics/reach?n=5", headers=READ)
    spent = client.get("/admin/privacy/budget", headers=ADMIN).json()["spent"]
    assert spent == pytest.approx(1.5)


def test_a_spent_budget_answers_429_or_the_last_release_marked_stale(dp_client) -> None:
    client = dp_client(dp_epsilon=1.0, dp_daily_budget=1.0, dp_period_hours=0.0002)  # 0.72 s
    first = client.get("/trust/levels", headers=READ)
    assert first.status_code == 200
    refused = client.get("/analytics/engagement/attention", headers=READ)
    assert refused.status_code == 429
    assert "privacy budget" in refused.json()["detail"]
    assert 0 < int(refused.headers["Retry-After"]) <= 86_400
    time.sleep(1.0)  # the next period: a new release is due, but the day's budget is spent
    stale = client.get("/trust/levels", headers=READ)
    assert stale.status_code == 200
    assert stale.json() == first.json()
    assert stale.headers[dp.HEADER].endswith("; stale")
    assert client.get("/admin/privacy/budget", headers=ADMIN).json()["remaining"] == 0.0
    # admin keys still get exact figures
    assert client.get("/analytics/engagement/attention", headers=ADMIN).status_code == 200


def test_the_budget_route_is_for_admins(dp_client) -> None:
    client = dp_client(dp_epsilon=2.0)
    assert client.get("/admin/privacy/budget", headers=READ).status_code == 403
    assert client.get("/admin/privacy/budget", headers=WRITE).status_code == 403
    assert client.get("/admin/privacy/budget").status_code == 401
    body = client.get("/admin/privacy/budget", headers=ADMIN).json()
    assert body["enabled"] is True and body["budget"] == 40.0 and body["spent"] == 0.0
    assert {f["figure"] for f in body["figures"]} == set(dp.FIGURES)
    for bad in ("2020-02-30", "0", "20200101", "2020-01-01T00:00:00Z"):
        answer = client.get(f"/admin/privacy/budget?day={bad}", headers=ADMIN)
        assert answer.status_code == 422, bad
    past = client.get("/admin/privacy/budget?day=2020-01-01", headers=ADMIN).json()
    assert past["releases"] == [] and past["day"] == "2020-01-01"


def test_the_budget_route_says_off_when_off(dp_client) -> None:
    body = dp_client().get("/admin/privacy/budget", headers=ADMIN).json()
    assert body["enabled"] is False and body["budget"] is None and body["remaining"] is None
    assert all(f["epsilon"] is None for f in body["figures"])


def test_a_campaign_report_for_the_advertiser_is_released_with_dp(dp_client) -> None:
    from agora.market.config import MarketConfig

    market = MarketConfig(holdout_share=0.0, pacing=False)
    campaign = {**CAMPAIGN, "frequency_cap": 100}
    off = dp_client(market=market)
    assert off.post("/campaigns", json=campaign, headers=ADMIN).status_code == 201
    refused = off.get("/campaigns/c1/report?release=advertiser", headers=ADMIN)
    assert refused.status_code == 409 and "AGORA_DP_EPSILON" in refused.json()["detail"]


def test_the_advertiser_report_bounds_each_person(dp_client) -> None:
    from agora.market.config import MarketConfig

    market = MarketConfig(holdout_share=0.0, pacing=False)
    campaign = {**CAMPAIGN, "frequency_cap": 100}
    client = dp_client(market=market, dp_epsilon=100.0, dp_daily_budget=1000.0)
    assert client.post("/campaigns", json=campaign, headers=ADMIN).status_code == 201
    for user in ("u2", "u3", "u4"):
        page = client.get(f"/users/{user}/feed?n=4", headers=READ)
        assert page.status_code == 200, page.text
    for _ in range(30):  # one person sees the ad 30 times
        client.get("/users/u5/feed?n=4", headers=READ)
    exact = client.get("/campaigns/c1/report", headers=ADMIN)
    assert exact.headers[dp.HEADER] == "exact" and "privacy" not in exact.json()
    shown = exact.json()["impressions"]
    assert shown >= 20
    released = client.get("/campaigns/c1/report?release=advertiser", headers=ADMIN)
    assert released.status_code == 200, released.text
    body = released.json()
    assert body["privacy"]["epsilon"] == 100.0 and released.headers[dp.HEADER].startswith("dp;")
    # u5 counts 10 impressions at most; noise of scale 10 / 20 stays far below 15
    assert body["impressions"] <= (shown - 30) + 10 + 15 and body["impressions"] >= 3
    assert body["spend"] == exact.json()["spend"]  # the bill stays exact
    again = client.get("/campaigns/c1/report?release=advertiser", headers=ADMIN)
    assert again.json() == body
    assert client.get("/campaigns/c1/report?release=advertiser", headers=READ).status_code == 403
    assert client.get("/campaigns/c9/report?release=advertiser", headers=ADMIN).status_code == 404


@pytest.mark.parametrize("sealed", [False, True], ids=["plain-ids", "pseudonymous-ids"])
def test_an_erased_author_leaves_the_stored_releases(dp_client, sealed: bool) -> None:
    """A release naming people (reach per author) keeps its other entries after one of them is
    erased; asking again answers that release, without them. With pseudonymous ids the stored
    release is sealed, and the erasure finds them in it all the same."""
    from sqlalchemy import select

    from agora.api.dp_models import DPRelease

    secret = {"pseudonymize_ids": True, "id_secret": "sixteen chars or more"} if sealed else {}
    client = dp_client(dp_epsilon=5.0, dp_daily_budget=1000.0, **secret)
    first = client.get("/analytics/reach?by=author&n=20", headers=READ)
    assert first.status_code == 200 and "u0" in first.text
    assert client.delete("/users/u0", headers=ADMIN).status_code == 204
    with client.app.state.sessions() as session:
        stored = [(r.payload, r.params) for r in session.scalars(select(DPRelease))]
    assert stored and '"u0"' not in repr(stored).replace("'", '"')
    again = client.get("/analytics/reach?by=author&n=20", headers=READ)
    assert again.status_code == 200 and '"u0"' not in again.text


def test_a_stored_release_that_no_longer_reads_is_released_afresh(dp_client) -> None:
    """A stored release another version wrote, or someone altered, must not answer 500 to
    every reader of the figure: it is dropped and the figure released again."""
    from sqlalchemy import select, update

    from agora.api.dp_models import DPRelease
    from agora.db.engine import transaction

    client = dp_client(dp_epsilon=5.0, dp_daily_budget=1000.0)
    sessions = client.app.state.sessions
    for path in ("/analytics/engagement/active", "/analytics/reach?by=author"):
        assert client.get(path, headers=READ).status_code == 200
    odd = [{"points": [{"day": "not a point"}]}, {"rows": "not a list"}]
    with transaction(sessions) as session:
        rows = session.scalars(select(DPRelease).order_by(DPRelease.id)).all()
        assert [r.figure for r in rows] == ["active_users", "reach"]
        for row, payload in zip(rows, odd, strict=True):
            session.execute(update(DPRelease).where(DPRelease.id == row.id).values(payload=payload))
    for path in ("/analytics/engagement/active", "/analytics/reach?by=author"):
        answer = client.get(path, headers=READ)
        assert answer.status_code == 200, (path, answer.text)
        assert answer.headers[dp.HEADER].startswith("dp;")
    with sessions() as session:
        payloads = [r.payload for r in session.scalars(select(DPRelease))]
    assert len(payloads) == 2 and not any(p in odd for p in payloads)
