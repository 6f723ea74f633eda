"""Badges and trust levels: thresholds, explanations, awarded once (or once per post)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from engagement_support import NOW, T0, events, items
from sqlalchemy.orm import Session, sessionmaker

from agora.config import Settings
from agora.db.engine import transaction
from agora.engagement import badge_awards, ledger, trust_levels
from agora.engagement.config import (
    BadgeRule,
    Condition,
    EngagementConfig,
    TrustLevel,
    TrustRequirements,
)
from agora.engagement.models import TrustState
from agora.ingest.registry import load_any
from agora.ingest.schemas import ItemIn
from agora.ingest.service import add_dataset, known_user_pk, upsert_items


def _likes(post: str, n: int, start: int = 0) -> list:
    return [(f"{post}-l{i}", f"fan{i}", post, "like", T0 + timedelta(minutes=i)) for i in
            range(start, start + n)]  # fmt: skip


def _progress(report: badge_awards.BadgesReport, badge: str) -> badge_awards.BadgeProgress:
    return next(p for p in report.progress if p.badge == badge)


def test_post_badges_at_thresholds_with_explained_progress(
    sessions: sessionmaker[Session],
) -> None:
    config = EngagementConfig()
    with transaction(sessions) as session:
        items(session, {"p1": ("writer", []), "p2": ("writer", [])})
        events(session, _likes("p1", 9) + _likes("p2", 3) + [("own", "writer", "p1", "like", T0)])
    with transaction(sessions) as session:
        ledger.catch_up(session, config, NOW)
        report = badge_awards.badges(session, config, "writer", NOW)
    assert [b["badge"] for b in report.earned] == ["first_like"]  # liked their own post
    nice = _progress(report, "nice_post")
    assert (nice.have, nice.need) == (9, 10)  # the author's own like does not count
    assert nice.message == "1 more like on 'post p1' to reach Nice Post"

    with transaction(sessions) as session:
        events(session, _likes("p1", 4, start=9))  # 13 likes: Nice Post, on p1
    with transaction(sessions) as session:
        ledger.catch_up(session, config, NOW)
        report = badge_awards.badges(session, config, "writer", NOW)
    assert [(b["badge"], b["item_id"]) for b in report.earned[1:]] == [("nice_post", "p1")]
    assert _progress(report, "good_post").message == "12 more likes on 'post p1' to reach Good Post"
    assert _progress(report, "nice_post").message == "7 more likes on 'post p2' to reach Nice Post"

    with transaction(sessions) as session:
        events(session, _likes("p2", 7, start=3) + _likes("p1", 40, start=13))  # p2: 10, p1: 53
    with transaction(sessions) as session:
        ledger.catch_up(session, config, NOW)
        earned = badge_awards.badges(session, config, "writer", NOW).earned
    assert sorted((b["badge"], b["item_id"]) for b in earned[1:]) == [
        ("good_post", "p1"),
        ("great_post", "p1"),
        ("nice_post", "p1"),
        ("nice_post", "p2"),
    ]


def test_count_and_streak_badges_are_awarded_once(sessions: sessionmaker[Session]) -> None:
    config = EngagementConfig()
    with transaction(sessions) as session:
        items(session, {"q": ("asker", []), "a1": ("helper", []), "a2": ("helper", [])})
        visits = [(f"v{d}", "helper", "q", "view", T0 + timedelta(days=d)) for d in range(8)]
        events(
            session,
            visits
            + [("ans1", "helper", "q", "answer", T0), ("ans2", "helper", "q", "answer", T0)]
            + [("acc1", "asker", "a1", "accept", T0), ("acc2", "asker", "a2", "accept", T0)],
        )
    with transaction(sessions) as session:
        ledger.catch_up(session, config, NOW)
        helper = badge_awards.badges(session, config, "helper", NOW)
        asker = badge_awards.badges(session, config, "asker", NOW)
    assert sorted(b["badge"] for b in helper.earned) == ["first_answer", "regular", "teacher"]
    assert [b["badge"] for b in asker.earned] == ["scholar"]
    enthusiast = _progress(helper, "enthusiast")
    assert enthusiast.have == 0  # the 8-day run ended long before NOW
    assert enthusiast.message == "30 more consecutive days to reach Enthusiast (current streak 0)"
    answerer = _progress(helper, "answerer")
    assert answerer.message == "23 more answers to reach Answerer"
    assert all(p.badge != "first_answer" for p in helper.progress)  # earned once and for all


def test_attribute_badges_for_stack_exchange_scores(sessions: sessionmaker[Session]) -> None:
    nice = BadgeRule(
        name="nice_answer",
        title="Nice Answer",
        kind="post_attribute",
        post_type="answer",
        conditions=(Condition(attribute="score", value=10),),
        per_post=True,
    )
    config = EngagementConfig(badges=[nice])
    with transaction(sessions) as session:
        upsert_items(
            session,
            [
                ItemIn(item_id="a1", author_id="x", created=T0,
                       attributes={"post_type": "answer", "score": 12}),
                ItemIn(item_id="a2", author_id="x", created=T0,
                       attributes={"post_type": "answer", "score": 7}),
                ItemIn(item_id="q1", author_id="x", created=T0,
                       attributes={"post_type": "question", "score": 30}),
            ],
        )  # fmt: skip
    with transaction(sessions) as session:
        ledger.catch_up(session, config, NOW)
        report = badge_awards.badges(session, config, "x", NOW)
    assert [(b["badge"], b["item_id"]) for b in report.earned] == [("nice_answer", "a1")]
    assert report.progress[0].message == (
        "an answer with score >= 10 to reach Nice Answer (best so far: score 7)"
    )


def test_trust_levels_explain_what_is_missing(sessions: sessionmaker[Session]) -> None:
    config = EngagementConfig(
        trust_levels=[
            TrustLevel(level=1, name="basic", requires=TrustRequirements(posts_read=3)),
            TrustLevel(
                level=2,
                name="member",
                requires=TrustRequirements(days_visited=3, likes_received=2, replies=1),
            ),
        ]
    )
    with transaction(sessions) as session:
        items(session, {f"p{i}": ("other", []) for i in range(4)} | {"mine": ("reader", [])})
        reads = [(f"r{i}", "reader", f"p{i}", "view", T0 + timedelta(days=i)) for i in range(4)]
        events(session, reads + [("like1", "other", "mine", "like", T0)])
    with transaction(sessions) as session:
        ledger.catch_up(session, config, NOW)
        report = trust_levels.trust(session, config, "reader", NOW)
    assert (report.level, report.name) == (1, "basic")
    assert (
        report.next_level
        == "to reach level 2 (member): 1 more like received (1/2); 1 more reply (0/1)"
    )
    with transaction(sessions) as session:
        events(
            session, [("like2", "fan", "mine", "like", T0), ("c", "reader", "p0", "comment", T0)]
        )
    with transaction(sessions) as session:
        ledger.catch_up(session, config, NOW)
        report = trust_levels.trust(session, config, "reader", NOW)
        stored = session.get(TrustState, known_user_pk(session, "reader"))
    assert (report.level, report.next_level) == (2, None)
    assert stored is not None and stored.level == 2  # the catch-up stored the new level


def test_stored_levels_equal_live_ones_where_likes_received_decide_or_not(
    sessions: sessionmaker[Session],
) -> None:
    """A catch-up counts an author's likes received only where they can change the level (a
    prolific author costs the most to count): the stored levels still equal ``trust``'s."""
    config = EngagementConfig(
        trust_levels=[
            TrustLevel(level=1, name="basic", requires=TrustRequirements(topics_entered=1)),
            TrustLevel(
                level=2,
                name="member",
                requires=TrustRequirements(topics_entered=1, likes_received=2),
            ),
        ]
    )
    with transaction(sessions) as session:
        items(session, {"mine": ("writer", []), "theirs": ("silent", []), "other": ("x", [])})
        events(session, [("w", "writer", "other", "view", T0), *_likes("theirs", 5)])
    with transaction(sessions) as session:
        ledger.catch_up(session, config, NOW)
    with transaction(sessions) as session:
        events(session, _likes("mine", 2))
    with transaction(sessions) as session:
        ledger.catch_up(session, config, NOW)
        stored = {
            user: session.get(TrustState, known_user_pk(session, user)).level  # type: ignore[union-attr]
            for user in ("writer", "silent", "fan0", "fan4")
        }
        live = {user: trust_levels.trust(session, config, user, NOW).level for user in stored}
    assert stored == live == {"writer": 2, "silent": 0, "fan0": 1, "fan4": 1}


def test_imported_stack_exchange_users_reach_trust_levels_with_substitutes(
    sessions: sessionmaker[Session], bundled_dump: Path
) -> None:
    """A Stack Exchange dump has no view and no like events: trust counts what the dump has
    instead (posts engaged with; bookmarks and accepted answers as approvals) and says so."""
    config = EngagementConfig()
    with transaction(sessions) as session:
        add_dataset(session, load_any(bundled_dump), Settings().event_types, max_future_seconds=1e9)
    with transaction(sessions) as session:
        ledger.catch_up(session, config, NOW)
        levels = trust_levels.trust_distribution(session, config, NOW)
        report = trust_levels.trust(session, config, "28", NOW)
    assert levels[1] > 0 and levels[2] > 0, levels
    assert report.level >= 1
    assert set(report.substituted) == {"posts_read", "likes_given", "likes_received"}
    assert "no read events (view, click, dwell)" in report.substituted["posts_read"]
    assert report.metrics["posts_read"] == report.metrics["topics_entered"] > 30
    assert report.next_level is not None and "posts engaged with" in report.next_level


def test_a_store_with_read_and_like_events_substitutes_nothing(
    sessions: sessionmaker[Session],
) -> None:
    config = EngagementConfig()
    with transaction(sessions) as session:
        items(session, {"p": ("author", [])})
        events(session, [("v", "reader", "p", "view", T0), ("l", "reader", "p", "like", T0)])
    with transaction(sessions) as session:
        ledger.catch_up(session, config, NOW)
        report = trust_levels.trust(session, config, "reader", NOW)
    assert report.substituted == {} and report.metrics["posts_read"] == 1
