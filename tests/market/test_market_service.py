"""Serving, charging and measuring ads against the real store (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from market_support import NOW, USERS
from sqlalchemy import func, select

from agora.db.engine import transaction
from agora.feed.service import ad_viewer
from agora.ingest.schemas import EventIn
from agora.ingest.service import add_events
from agora.market import pacing, service
from agora.market.config import MarketConfig
from agora.market.models import AdClick, AdImpression, Campaign, Eligibility
from agora.market.schemas import CampaignIn

PAGE = [(f"p{i}", ["python"]) for i in range(10)]


def campaign(cid: str = "c1", **fields) -> CampaignIn:
    spec = {
        "advertiser": "Acme",
        "items": ["a0", "a1"],
        "bid": 1.0,
        "daily_budget": 100.0,
        "frequency_cap": 2,
    }
    return CampaignIn(campaign_id=cid, **{**spec, **fields})


def add(sessions, *specs: CampaignIn) -> None:
    with transaction(sessions) as session:
        for spec in specs:
            service.create_campaign(session, spec, NOW)


def serve(sessions, user: str, config: MarketConfig, now=NOW, seed=0, page=PAGE):
    with transaction(sessions) as session:
        viewer = ad_viewer(session, user)
        return service.serve_ads(session, viewer, page, config, now, np.random.default_rng(seed))


def test_create_is_idempotent_and_conflicts_and_checks_items(sessions) -> None:
    with transaction(sessions) as session:
        _, created = service.create_campaign(session, campaign(), NOW)
        assert created
        _, again = service.create_campaign(session, campaign(), NOW)
        assert not again
        with pytest.raises(service.CampaignConflict):
            service.create_campaign(session, campaign(bid=2.0), NOW)
        with pytest.raises(service.MissingItems) as missing:
            service.create_campaign(session, campaign("c2", items=["a0", "nope"]), NOW)
        assert missing.value.missing == [(1, "nope")]
        assert len(service.list_campaigns(session)) == 1


def test_update_keeps_campaign_valid(sessions, config) -> None:
    add(sessions, campaign(start_at=NOW - timedelta(days=1)))
    with transaction(sessions) as session:
        row = service.update_campaign(session, "c1", {"bid": 0.5, "status": "paused"}, NOW)
        assert (row.bid, row.status) == (0.5, "paused")
        with pytest.raises(ValueError, match="end_at must be after start_at"):
            service.update_campaign(session, "c1", {"end_at": NOW - timedelta(days=2)}, NOW)
    assert serve(sessions, "u1", config) == []  # paused: no ads


def test_ads_fill_the_slots_with_gsp_prices(sessions, config) -> None:
    add(
        sessions,
        campaign("hi", bid=2.0),
        campaign("lo", bid=1.0, advertiser="Beta"),
        campaign("under", bid=0.01, advertiser="Cheap"),  # below the 0.05 reserve
    )
    ads = serve(sessions, "u1", config)
    assert [(a.position, a.campaign_id) for a in ads] == [(3, "hi"), (10, "lo")]
    # equal empirical CTR priors: "hi" pays lo's bid + epsilon, "lo" (last) the reserve
    assert ads[0].price == pytest.approx(1.0 + config.epsilon)
    assert ads[1].price == pytest.approx(config.reserve_price)
    assert all(a.item_id in {"a0", "a1"} and a.ctr > 0 for a in ads)
    with sessions() as session:
        stored = session.scalars(select(AdImpression).order_by(AdImpression.position)).all()
        assert [(i.position, i.nth) for i in stored] == [(3, 1), (10, 1)]


def test_short_pages_carry_fewer_ads_and_empty_pages_none(sessions, config) -> None:
    add(sessions, campaign("x"), campaign("y"))
    assert [a.position for a in serve(sessions, "u1", config, page=PAGE[:4])] == [3]
    assert serve(sessions, "u2", config, page=[]) == []


def test_frequency_cap_holds_per_user_per_day(sessions, config) -> None:
    add(sessions, campaign(frequency_cap=2))
    served = [len(serve(sessions, "u1", config, seed=s)) for s in range(5)]
    assert served == [1, 1, 0, 0, 0]
    assert len(serve(sessions, "u1", config, now=NOW + timedelta(days=1))) == 1  # a new day
    assert len(serve(sessions, "u2", config)) == 1  # another user


def test_targeting_by_tags_and_segments(sessions, config) -> None:
    add(
        sessions,
        campaign("garden", items=["a2"], target_tags=["garden"]),
        campaign("pros", target_segments=["pro"], advertiser="Pro"),
    )
    garden_page = [(f"p{i}", ["garden"]) for i in range(5, 10)] * 2
    python_page = [(f"p{i}", ["python"]) for i in range(5)] * 2
    # u25 reads garden posts, is not in 'pro'; u1 reads python posts and is in 'pro'
    assert {a.campaign_id for a in serve(sessions, "u25", config, page=python_page)} == {"garden"}
    assert {a.campaign_id for a in serve(sessions, "u1", config, page=python_page)} == {"pros"}
    # the page itself counts: a python reader looking at garden posts sees the garden ad
    assert "garden" in {a.campaign_id for a in serve(sessions, "u2", config, page=garden_page)}


def test_schedule_window_and_hours(sessions, config) -> None:
    add(
        sessions,
        campaign("later", start_at=NOW + timedelta(hours=1)),
        campaign("mornings", hours=[6, 7, 8], advertiser="Early"),
    )
    assert serve(sessions, "u1", config) == []
    assert {a.campaign_id for a in serve(sessions, "u1", config, now=NOW + timedelta(hours=2))} == {
        "later"
    }
    early = NOW.replace(hour=7)
    assert {a.campaign_id for a in serve(sessions, "u2", config, now=early)} == {"mornings"}


def test_holdout_users_never_see_the_campaign_but_are_recorded(sessions) -> None:
    config = MarketConfig(holdout_share=0.5, pacing=False)
    add(sessions, campaign(frequency_cap=50))
    with sessions() as session:
        salt = session.scalar(select(Campaign.holdout_salt))
    held = {u for u in USERS if service.in_holdout(salt, u, 0.5)}
    assert 5 < len(held) < 35  # the hash splits users
    for seed in range(3):
        for user in USERS:
            ads = serve(sessions, user, config, seed=seed)
            assert (ads == []) == (user in held)
    with sessions() as session:
        arms = dict(
            session.execute(
                select(Eligibility.holdout, func.count()).group_by(Eligibility.holdout)
            ).all()
        )
        assert arms == {True: len(held), False: len(USERS) - len(held)}
        shown_to = set(session.scalars(select(func.distinct(AdImpression.user_id))))
        assert len(shown_to) == len(USERS) - len(held)


def test_clicks_are_charged_once_and_never_past_the_budget(sessions, config) -> None:
    add(sessions, campaign(bid=1.0, daily_budget=2.5, frequency_cap=10), campaign("o", bid=0.9))
    impressions = []
    for i, user in enumerate(USERS[:6]):
        impressions += [a for a in serve(sessions, user, config, seed=i) if a.campaign_id == "c1"]
    assert len(impressions) == 6
    costs = []
    with transaction(sessions) as session:
        for a in impressions:
            click, cid, duplicate = service.record_click(session, a.impression_id, NOW)
            assert (cid, duplicate) == ("c1", False)
            costs.append(click.cost)
        again, _, duplicate = service.record_click(session, impressions[0].impression_id, NOW)
        assert duplicate and again.cost == costs[0]
        with pytest.raises(service.UnknownReference):
            service.record_click(session, 10**9, NOW)
    price = impressions[0].price  # 0.9 + epsilon
    assert costs[:2] == [pytest.approx(price)] * 2
    assert costs[2] == pytest.approx(2.5 - 2 * price)  # capped at what is left
    assert costs[3:] == [0.0, 0.0, 0.0]
    with sessions() as session:
        assert session.scalar(select(func.sum(AdClick.cost))) == pytest.approx(2.5)
    # out of budget: the campaign no longer bids today
    assert {a.campaign_id for a in serve(sessions, "u30", config)} == {"o"}


def test_pacing_throttles_a_campaign_ahead_of_its_curve(sessions) -> None:
    config = MarketConfig(holdout_share=0.0, pacing=True, pacing_tolerance=0.05, reserve_price=1)
    add(sessions, campaign(bid=1.0, daily_budget=10.0, frequency_cap=100))
    first = serve(sessions, "u1", config)
    with transaction(sessions) as session:
        service.record_click(session, first[0].impression_id, NOW)  # 10% of the budget
    # at 00:10 the uniform-ish forecast has ~0% of the day behind: 10% spent is far ahead
    midnight = NOW.replace(hour=0, minute=10)
    assert all(serve(sessions, "u1", config, now=midnight, seed=s) == [] for s in range(5))
    # by 10:30 a larger share of the day's traffic is behind: it bids again
    assert serve(sessions, "u2", config, seed=1) != []


def test_report_measures_clicks_conversions_and_lift(sessions) -> None:
    config = MarketConfig(holdout_share=0.5, pacing=False)
    add(sessions, campaign(conversion_event="like", conversion_value=3.0, frequency_cap=5))
    for user in USERS:
        ads = serve(sessions, user, config)
        if ads and user in USERS[:10]:
            with transaction(sessions) as session:
                service.record_click(session, ads[0].impression_id, NOW)
    with sessions() as session:
        arms = dict(session.execute(select(Eligibility.user_id, Eligibility.holdout)).all())
        pk = dict(session.execute(select(Campaign.id, Campaign.external_id)).all())
    assert pk
    # every exposed user converts (a like on a0) later; no holdout user does
    from agora.db.tables import User

    with sessions() as session:
        names = dict(session.execute(select(User.id, User.external_id)).all())
    exposed = [names[u] for u, held in arms.items() if not held]
    events = [
        EventIn(
            event_id=f"conv-{u}",
            user_id=u,
            item_id="a0",
            type="like",
            timestamp=NOW + timedelta(hours=1),
        )
        for u in exposed
    ]
    with transaction(sessions) as session:
        add_events(session, events, ["like"], max_future_seconds=1e9)
        _, dup = service.record_conversion(session, "api-1", "c1", exposed[0], NOW, value=7.0)
        assert not dup
        assert service.record_conversion(session, "api-1", "c1", exposed[0], NOW)[1]
    with sessions() as session:
        body = service.report(session, "c1", config, NOW + timedelta(hours=2))
    clicked = [u for u in USERS[:10] if u in exposed]
    assert body["impressions"] == len(exposed)
    assert body["clicks"] == len(clicked)
    assert body["ctr"]["estimate"] == pytest.approx(len(clicked) / len(exposed))
    assert body["ctr"]["low"] < body["ctr"]["estimate"] < body["ctr"]["high"]
    assert body["conversions"] == len(clicked)  # every clicker converted within the window
    assert body["spend"] == pytest.approx(config.reserve_price * len(clicked))
    assert body["cpc"] == pytest.approx(config.reserve_price)
    assert body["roi"] > 0
    lift = body["lift"]
    assert lift["exposed_users"] == len(exposed) and lift["exposed_converters"] == len(exposed)
    assert lift["holdout_users"] == len(USERS) - len(exposed) and lift["holdout_converters"] == 0
    assert lift["difference"]["estimate"] == pytest.approx(1.0)
    assert lift["p_value"] is None or lift["p_value"] < 0.05


def test_pacing_today_is_the_spend_of_the_day_against_the_target_curve(sessions) -> None:
    config = MarketConfig(holdout_share=0.0, pacing=False)
    add(sessions, campaign(bid=1.0, daily_budget=10.0, frequency_cap=100))
    ads = [serve(sessions, user, config, seed=i)[0] for i, user in enumerate(USERS[:2])]
    clicked = [NOW - timedelta(hours=2), NOW - timedelta(minutes=5)]
    with transaction(sessions) as session:
        costs = [
            service.record_click(session, a.impression_id, t)[0].cost
            for a, t in zip(ads, clicked, strict=True)
        ]
    with sessions() as session:
        pace = service.pacing_today(session, "c1", config, NOW)
        profile = service._profile(session, config, NOW.date())
    midnight = NOW.replace(hour=0, minute=0, second=0, microsecond=0)
    assert [at for at, _ in pace["spend"]] == [midnight, *clicked, NOW]
    assert [v for _, v in pace["spend"]] == pytest.approx([0, costs[0], sum(costs), sum(costs)])
    assert pace["spent"] == pytest.approx(sum(costs)) and pace["budget"] == 10.0
    target = [v for _, v in pace["target"]]
    assert target[0] == 0 and target[-1] == pytest.approx(10.0) and target == sorted(target)
    assert pace["target"][-1][0] == midnight + timedelta(days=1)
    assert pace["target_now"] == pytest.approx(10.0 * pacing.target_share(profile, NOW))
    with sessions() as session, pytest.raises(service.UnknownCampaign):
        service.pacing_today(session, "nope", config, NOW)
