"""Engagement analytics on a tiny hand-built store, on SQLite and PostgreSQL, with expectations
computed by hand: DAU/WAU, interaction rates, retention cohorts, response times, Gini."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from agora.analytics.engagement import service as eg
from agora.config import BUILTIN_EVENT_TYPES
from agora.db.engine import make_engine, migrate, session_factory, transaction
from agora.ingest.schemas import Dataset, EventIn, ItemIn, UserIn
from agora.ingest.service import add_dataset

T0 = datetime(2026, 5, 4, 10, 0, tzinfo=UTC)  # a Monday
HOUR, DAY = timedelta(hours=1), timedelta(days=1)
TYPES = (*BUILTIN_EVENT_TYPES, "ask", "answer", "accept")
READ = {"Authorization": "Bearer r"}


def _store() -> Dataset:
    """alice, bob, carol, dave each post one question (q1..q4, all at T0).

    Week 0 (day 0): alice asks q1 and comments on it herself after 1 h, bob answers q1 after
    3 h, bob asks q2, carol comments on q2 after 2 h. Week 1 (day 7): carol likes q1, dave (new)
    views q3. Week 2 (day 14): alice likes q2. Nobody touches q4.
    """
    users = [UserIn(user_id=u, created=T0) for u in ("alice", "bob", "carol", "dave")]
    authors = {"q1": "alice", "q2": "bob", "q3": "carol", "q4": "dave"}
    items = [ItemIn(item_id=i, author_id=a, created=T0) for i, a in authors.items()]
    rows = [
        ("e1", "alice", "q1", "ask", T0),
        ("e2", "alice", "q1", "comment", T0 + HOUR),
        ("e3", "bob", "q1", "answer", T0 + 3 * HOUR),
        ("e4", "carol", "q2", "comment", T0 + 2 * HOUR),
        ("e5", "bob", "q2", "ask", T0),
        ("e6", "carol", "q1", "like", T0 + 7 * DAY),
        ("e7", "dave", "q3", "view", T0 + 7 * DAY),
        ("e8", "alice", "q2", "like", T0 + 14 * DAY),
    ]
    events = [
        EventIn(event_id=e, user_id=u, item_id=i, type=t, timestamp=when)
        for e, u, i, t, when in rows
    ]
    return Dataset(users=users, items=items, events=events)


@pytest.fixture
def session(database_url: str, migrated_store: Callable[[str], str]) -> Iterator[Session]:
    """A session on a copy of the run's migrated store holding the hand-built community."""
    engine = make_engine(migrated_store(database_url))
    factory = session_factory(engine)
    with transaction(factory) as s:
        add_dataset(s, _store(), TYPES)
    with factory() as s:
        yield s
    engine.dispose()


def test_gini_by_hand() -> None:
    assert eg.gini([0, 0, 0, 10]) == pytest.approx(0.75)
    assert eg.gini([5, 5, 5, 5]) == 0.0
    assert eg.gini([0, 1, 2, 2]) == pytest.approx(0.35)
    assert eg.gini([]) == 0.0
    curve = eg.lorenz([0, 0, 0, 10], points=5)
    assert curve == [[0.0, 0.0], [0.25, 0.0], [0.5, 0.0], [0.75, 0.0], [1.0, 1.0]]
    with pytest.raises(ValueError, match="non-negative"):
        eg.gini([-1, 2])


def test_engagement_on_the_hand_built_store(session: Session) -> None:
    daily = eg.active_users(session, "day")
    assert len(daily) == 15  # day 0 to day 14, empty days included
    assert (daily[0].users, daily[0].events) == (3, 5)
    assert (daily[7].users, daily[14].users) == (2, 1)
    assert sum(p.users for p in daily[1:7]) == 0
    weekly = eg.active_users(session, "week")
    assert [(p.start, p.users) for p in weekly] == [
        (datetime(2026, 5, 4, tzinfo=UTC), 3),
        (datetime(2026, 5, 11, tzinfo=UTC), 2),
        (datetime(2026, 5, 18, tzinfo=UTC), 1),
    ]
    assert [p.users for p in eg.active_users(session, "week", since=T0 + DAY)] == [2, 1]
    with pytest.raises(ValueError, match="bucket"):
        eg.active_users(session, "month")

    # rates: other users' events per day since posting (the store ends on day 14)
    by_item = eg.interaction_rates(session, "item")
    assert [(r.key, r.events, r.users) for r in by_item] == [
        ("q1", 2, 2),  # alice's own ask and comment do not count
        ("q2", 2, 2),
        ("q3", 1, 1),
    ]
    assert by_item[0].rate == pytest.approx(2 / 14)
    by_author = eg.interaction_rates(session, "author", top=1)
    assert [(r.key, r.items, r.rate) for r in by_author] == [("alice", 1, pytest.approx(2 / 14))]

    # cohorts: alice/bob/carol start in week 0, dave in week 1; the data ends in week 2
    retention = eg.retention_cohorts(session, weeks=2)
    first, second = retention.cohorts
    assert (first.users, second.users) == (3, 1)
    # carol is back in week 1; alice (weeks 0 and 2) counts in week 2 only
    assert first.retention == [1.0, pytest.approx(1 / 3), pytest.approx(1 / 3)]
    assert second.retention == [1.0, 0.0, None]
    assert retention.overall == [1.0, 0.25, pytest.approx(1 / 3)]

    # first answer/comment by someone else: alice's own comment after 1 h is ignored
    times = eg.time_to_first_response(session)
    assert (times.items, times.answered, times.share_answered) == (4, 2, 0.5)
    assert sorted(times.seconds.tolist()) == [7200.0, 10800.0]
    assert times.median_seconds == 9000.0
    questions = eg.time_to_first_response(session, of="ask")
    assert (questions.items, questions.share_answered) == (2, 1.0)

    # attention: q1 2, q2 2, q3 1, q4 0 (own asks excluded); creators the same
    att = eg.attention_gini(session)
    assert att.items.gini == pytest.approx(0.35)
    assert att.creators.gini == pytest.approx(0.35)
    assert (att.items.population, att.items.engaged, att.items.events) == (4, 3, 5)
    answers = eg.attention_gini(session, ["answer"])
    assert answers.items.gini == pytest.approx(0.75)  # [0, 0, 0, 1] over the 4 posts
    assert answers.items.top1_share == 1.0
    assert eg.attention_gini(session, ["answer"], include_zero=False).items.gini == 0.0


@pytest.fixture
def client(seeded_client) -> TestClient:  # noqa: ANN001
    return seeded_client(_store(), TYPES)


def test_engagement_routes(client: TestClient) -> None:
    weekly = client.get("/analytics/engagement/active?bucket=week", headers=READ).json()
    assert [w["users"] for w in weekly] == [3, 2, 1]
    rates = client.get("/analytics/engagement/rates?by=author&n=2", headers=READ).json()
    assert [r["key"] for r in rates] == ["alice", "bob"]
    retention = client.get("/analytics/engagement/retention?weeks=2", headers=READ).json()
    assert retention["cohorts"][1]["retention"] == [1.0, 0.0, None]
    times = client.get("/analytics/engagement/response-times?of=ask", headers=READ).json()
    assert times["median_seconds"] == 9000.0 and times["share_answered"] == 1.0
    att = client.get(
        "/analytics/engagement/attention?event_type=answer&include_zero=true", headers=READ
    ).json()
    assert att["items"]["gini"] == pytest.approx(0.75)
    assert att["items"]["lorenz"][0] == [0.0, 0.0] and att["items"]["lorenz"][-1] == [1.0, 1.0]
    assert client.get("/analytics/engagement/active").status_code == 401
    bad = client.get("/analytics/engagement/active?bucket=month", headers=READ)
    assert bad.status_code == 422
    assert client.get("/analytics/engagement/rates?by=tag", headers=READ).status_code == 422


def test_cli_writes_the_report_with_its_figures(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import typer
    from typer.testing import CliRunner

    from agora.analytics.engagement.cli import app
    from agora.config import get_settings

    url = f"sqlite:///{tmp_path / 'agora.db'}"
    engine = make_engine(url)
    migrate(engine)
    with transaction(session_factory(engine)) as s:
        add_dataset(s, _store(), TYPES)
    engine.dispose()
    monkeypatch.setenv("AGORA_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("AGORA_DATABASE_URL", url)
    get_settings.cache_clear()
    analytics = typer.Typer()  # mounted the way `agora analytics` mounts it
    analytics.add_typer(app)
    out = tmp_path / "report"
    try:
        result = CliRunner().invoke(
            analytics,
            ["engagement-report", "--out", str(out), "--of", "ask", "--weeks", "2"],
            terminal_width=200,
        )
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert "3 weeks, 2 cohorts" in result.output
    text = (out / "engagement.md").read_text()
    assert "| share active | 100.0% | 25.0% | 33.3% |" in text
    assert "2 posts, 2 answered or commented by someone else (100.0%); median 2.50 h" in text
    assert "| items | 4 | 3 | 5 | 0.350 |" in text
    for png in ("active_users.png", "retention.png", "lorenz.png", "response_times.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG", png
        assert f"]({png})" in text
    missing = CliRunner().invoke(analytics, ["engagement-report"])
    assert missing.exit_code == 2 and "--out" in missing.output
