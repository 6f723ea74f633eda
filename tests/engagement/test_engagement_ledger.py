"""The points ledger: sums equal totals, replay equals increments, daily caps, rule changes."""

from __future__ import annotations

import random
from datetime import timedelta

from engagement_support import NOW, T0, events, items, ledger_sums, snapshot
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from agora.db.engine import transaction
from agora.db.tables import User
from agora.engagement import ledger, trust_levels
from agora.engagement.config import EngagementConfig, PointRule
from agora.engagement.models import LedgerEntry

USERS = [f"u{i}" for i in range(8)]


def _community(seed: int = 7) -> tuple[dict, list]:
    rng = random.Random(seed)
    posts = {f"p{i}": (rng.choice(USERS), [rng.choice(["a", "b", "c"])]) for i in range(12)}
    kinds = ["like"] * 6 + ["view"] * 4 + ["comment", "answer", "ask", "accept", "bookmark"]
    rows = []
    for n in range(600):
        ts = T0 + timedelta(hours=rng.randrange(0, 24 * 40))
        rows.append((f"e{n}", rng.choice(USERS), rng.choice(list(posts)), rng.choice(kinds), ts))
    rows.append(("flag1", "u3", "p1", "flag_upheld", T0 + timedelta(days=30)))
    return posts, rows


def _pk(session: Session, user: str) -> int:
    return session.scalar(select(User.id).where(User.external_id == user))


def test_replay_equals_increments_and_entries_sum_to_totals(
    sessions: sessionmaker[Session],
) -> None:
    config = EngagementConfig(batch_size=37)  # several batches per catch-up
    posts, rows = _community()
    with transaction(sessions) as session:
        items(session, posts)
    applied = 0
    for start in range(0, len(rows), 90):  # events arrive in bursts, each read catches up
        with transaction(sessions) as session:
            events(session, rows[start : start + 90])
        with transaction(sessions) as session:
            applied += ledger.catch_up(session, config, NOW)
    assert applied == len(rows)
    with transaction(sessions) as session:
        assert ledger.catch_up(session, config, NOW) == 0  # nothing new: nothing applied
        incremental = snapshot(session)
        assert ledger_sums(session) == incremental["totals"]
    with transaction(sessions) as session:
        assert ledger.replay(session, config, NOW) == len(rows)
    with sessions() as session:
        replayed = snapshot(session)
        assert ledger_sums(session) == replayed["totals"]
    assert replayed == incremental
    assert len(incremental["ledger"]) > 300
    assert incremental["badges"]  # the random community earns some badges
    flagged = {(u, r, p) for u, r, p, *_ in incremental["ledger"] if r == "flag_upheld"}
    with sessions() as session:
        assert flagged == {(_pk(session, "u3"), "flag_upheld", -100)}


def test_daily_cap_limits_points_per_user_rule_and_day(sessions: sessionmaker[Session]) -> None:
    config = EngagementConfig()  # like received: +10, at most 200 a day
    with transaction(sessions) as session:
        items(session, {"p1": ("author", [])})
        day1 = [(f"l{i}", f"fan{i}", "p1", "like", T0 + timedelta(minutes=i)) for i in range(25)]
        day2 = [(f"m{i}", f"fan{i}", "p1", "like", T0 + timedelta(days=1)) for i in range(3)]
        events(session, day1 + day2 + [("self", "author", "p1", "like", T0)])
    with transaction(sessions) as session:
        ledger.catch_up(session, config, NOW)
        report = ledger.points(session, config, "author", NOW, n=50)
    assert report.total == 200 + 30  # the cap on day 1, three likes on day 2; own like: nothing
    assert report.by_rule == {"like_received": 230}
    assert sum(e["points"] for e in report.recent) == 230
    assert [e["points"] for e in report.recent if e["created"].date() == T0.date()].count(10) == 20
    with transaction(sessions) as session:
        ledger.catch_up(session, config, NOW)
        fan = ledger.points(session, config, "fan0", NOW)
    assert fan.total == 0 and fan.recent == []  # giving a like earns nothing by default


def test_partial_entry_when_a_cap_is_reached_mid_event(sessions: sessionmaker[Session]) -> None:
    rule = PointRule(name="liked", event="like", to="author", points=30, daily_cap=50)
    config = EngagementConfig(points=[rule])
    with transaction(sessions) as session:
        items(session, {"p1": ("author", [])})
        events(session, [(f"l{i}", f"fan{i}", "p1", "like", T0) for i in range(3)])
    with transaction(sessions) as session:
        ledger.catch_up(session, config, NOW)
        rows = session.execute(select(LedgerEntry.points, LedgerEntry.capped)).all()
    assert sorted(tuple(r) for r in rows) == [(20, True), (30, False)]


def test_changed_rules_are_replayed_on_the_next_catch_up(sessions: sessionmaker[Session]) -> None:
    with transaction(sessions) as session:
        items(session, {"q": ("asker", []), "a": ("answerer", [])})
        events(session, [("acc", "asker", "a", "accept", T0)])
    with transaction(sessions) as session:
        ledger.catch_up(session, EngagementConfig(), NOW)
        assert ledger.points(session, EngagementConfig(), "answerer", NOW).total == 15
    richer = EngagementConfig(
        points=[PointRule(name="answer_accepted", event="accept", to="author", points=25)]
    )
    with transaction(sessions) as session:
        ledger.catch_up(session, richer, NOW)
        assert ledger.points(session, richer, "answerer", NOW).total == 25
        assert ledger.points(session, richer, "asker", NOW).total == 0  # rule removed
        assert ledger_sums(session) == snapshot(session)["totals"]


def test_upheld_flag_takes_points_and_counts_against_trust(
    sessions: sessionmaker[Session],
) -> None:
    config = EngagementConfig()
    with transaction(sessions) as session:
        items(session, {"spam": ("spammer", [])})
        events(session, [("f1", "spammer", "spam", "flag_upheld", NOW - timedelta(days=1))])
    with transaction(sessions) as session:
        ledger.catch_up(session, config, NOW)
        assert ledger.points(session, config, "spammer", NOW).total == -100
        report = trust_levels.trust(session, config, "spammer", NOW)
    assert report.metrics["max_upheld_flags"] == 1
    regular = next(c for c in report.levels if c.level == 3)
    flags = next(r for r in regular.requirements if r.metric == "max_upheld_flags")
    assert (
        not flags.met and flags.missing == "1 upheld flag in the last 100 days (at most 0 allowed)"
    )
