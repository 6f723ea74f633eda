"""The engagement routes on the real app (create_app), on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from engagement_support import snapshot
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from agora.api.app import create_app
from agora.config import Settings
from agora.db.engine import transaction
from agora.db.tables import Event, FeedImpression
from agora.engagement import ledger
from agora.engagement.config import EngagementConfig, engagement_config
from agora.engagement.models import EngagementState, LedgerEntry
from agora.experiments.models import Exposure
from agora.experiments.service import CACHE_SECONDS
from agora.ingest.schemas import EventIn
from agora.ingest.service import add_events

ADMIN = {"Authorization": "Bearer test-admin"}
READ = {"Authorization": "Bearer r"}
NOW = datetime.now(UTC)


#: A catch-up's time on a loaded CI machine (2 cores shared with other jobs): well under the
#: 15 s of the background job that a write's events would otherwise wait for.
CATCH_UP_SLACK = 5.0
#: What the README promises: a write's events count within ``engagement_after_write_seconds``
#: (0.5) plus a catch-up's time.
AFTER_WRITE_BOUND = Settings.model_fields["engagement_after_write_seconds"].default + CATCH_UP_SLACK


def _iso(days_ago: float) -> str:
    return (NOW - timedelta(days=days_ago)).isoformat()


def _seconds_until_counted(client: TestClient) -> float:
    """Seconds until engagement reads count every stored event (fails after 30 s)."""
    started = time.monotonic()
    while client.get("/trust/levels", headers=READ).headers["X-Engagement-Pending-Events"] != "0":
        assert time.monotonic() < started + 30, "the events were not counted"
        time.sleep(0.02)
    return time.monotonic() - started


@pytest.fixture
def client(
    tmp_path: Path, database_url: str, migrated_store: Callable[[str], str]
) -> Iterator[TestClient]:
    """The app with the engagement event types on a copy of the run's migrated store."""
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=migrated_store(database_url),
        api_key="test-admin",
        api_keys={"r": ["read"]},
        custom_event_types=["ask", "answer", "accept", "flag_upheld"],
    )
    with TestClient(create_app(settings)) as client:
        for item, author, tags in (("q1", "asker", ["python"]), ("q2", "asker", ["rust"]),
                                   ("new", "writer", ["python"])):  # fmt: skip
            body = {"title": f"Post {item}", "author_id": author, "tags": tags,
                    "created": _iso(1 if item == "new" else 20)}  # fmt: skip
            assert client.put(f"/items/{item}", json=body, headers=ADMIN).status_code in (200, 201)
        events = [
            {"event_id": f"like{i}", "user_id": f"fan{i}", "item_id": "q1", "type": "like",
             "timestamp": _iso(10)}
            for i in range(12)
        ] + [
            {"event_id": "ans", "user_id": "helper", "item_id": "q1", "type": "answer",
             "timestamp": _iso(2)},
            {"event_id": "seen", "user_id": "asker", "item_id": "q2", "type": "view",
             "timestamp": _iso(3)},
            {"event_id": "old", "user_id": "fan0", "item_id": "q2", "type": "like",
             "timestamp": _iso(30)},
        ]  # fmt: skip
        assert client.post("/events", json=events, headers=ADMIN).status_code in (200, 201)
        yield client


def test_points_badges_trust_and_leaderboards(client: TestClient) -> None:
    points = client.get("/users/asker/points", headers=READ).json()
    assert points["total"] == 120 + 10  # 12 likes on q1 in a day, 1 on q2 (the cap is 200)
    assert points["by_rule"] == {"like_received": 130}
    badges = client.get("/users/asker/badges", headers=READ).json()
    assert [(b["badge"], b["item_id"]) for b in badges["earned"]] == [("nice_post", "q1")]
    good = next(p for p in badges["progress"] if p["badge"] == "good_post")
    assert good["message"] == "13 more likes on 'Post q1' to reach Good Post"
    trust = client.get("/users/asker/trust", headers=READ).json()
    assert trust["level"] == 0 and trust["next_level"].startswith("to reach level 1 (basic): ")
    levels = client.get("/trust/levels", headers=READ).json()
    assert levels == {
        "0": 15,
        "1": 0,
        "2": 0,
        "3": 0,
        "4": 0,
    }  # 12 fans, asker, helper, writer (never active)

    # an event posted a moment after another write counts once the interval is over
    like = {"event_id": "late", "user_id": "fan99", "item_id": "q2", "type": "like"}
    assert client.post("/events", json=like, headers=ADMIN).status_code in (200, 201)
    assert _seconds_until_counted(client) <= AFTER_WRITE_BOUND
    assert client.get("/users/asker/points", headers=READ).json()["total"] == 140

    board = client.get("/leaderboards", headers=READ).json()
    top = [(r["user_id"], r["points"]) for r in board["leaders"][:2]]
    assert top == [("asker", 140), ("helper", 2)]
    week = client.get("/leaderboards?period=week&tag=rust", headers=READ).json()
    assert week["leaders"] == [{"rank": 1, "user_id": "asker", "points": 10}]  # not the old like
    assert client.get("/leaderboards?period=month", headers=READ).status_code == 422
    assert client.get("/users/nobody/points", headers=READ).status_code == 404


def test_tasks_are_idempotent_and_show_progress(client: TestClient) -> None:
    task = {"task_id": "answer-week", "title": "Answer 5 questions this week",
            "event_type": "answer", "target": 5, "starts": _iso(7), "ends": _iso(-7)}  # fmt: skip
    assert client.post("/tasks", json=task, headers=READ).status_code == 403
    assert client.post("/tasks", json=task, headers=ADMIN).status_code == 201
    assert client.post("/tasks", json=task, headers=ADMIN).status_code == 200
    changed = client.post("/tasks", json={**task, "target": 6}, headers=ADMIN)
    assert changed.status_code == 409 and "another definition" in changed.json()["detail"]
    bad = client.post("/tasks", json={**task, "task_id": "x", "ends": _iso(8)}, headers=ADMIN)
    assert bad.status_code == 422 and "ends must lie after starts" in bad.text
    unknown = client.post("/tasks", json={**task, "task_id": "y", "event_type": "vote"},
                          headers=ADMIN)  # fmt: skip
    assert unknown.status_code == 422
    assert unknown.json()["problems"][0]["location"] == "body.event_type"

    mine = client.get("/users/helper/tasks", headers=READ).json()
    assert [(t["task_id"], t["progress"], t["done"]) for t in mine] == [("answer-week", 1, False)]
    assert mine[0]["message"].startswith("4 more answer events by ")
    board = client.get("/tasks/answer-week/leaderboard", headers=READ).json()
    assert board["leaders"] == [{"rank": 1, "user_id": "helper", "count": 1, "done": False}]
    assert [t["task_id"] for t in client.get("/tasks?active=true", headers=READ).json()] == [
        "answer-week"
    ]
    assert client.get("/tasks/none/leaderboard", headers=READ).status_code == 404

    # "answer unanswered questions": only answers that were the first on their question count
    second = {"event_id": "ans2", "user_id": "second", "item_id": "q1", "type": "answer",
              "timestamp": _iso(1)}  # fmt: skip
    assert client.post("/events", json=second, headers=ADMIN).status_code in (200, 201)
    first = {**task, "task_id": "unanswered", "first_on_item": True}
    assert client.post("/tasks", json=first, headers=ADMIN).status_code == 201
    firsts = client.get("/tasks/unanswered/leaderboard", headers=READ).json()["leaders"]
    assert [(r["user_id"], r["count"]) for r in firsts] == [("helper", 1)]
    anyone = client.get("/tasks/answer-week/leaderboard", headers=READ).json()["leaders"]
    assert [(r["user_id"], r["count"]) for r in anyone] == [("helper", 1), ("second", 1)]


def test_digest_as_text_html_and_json_without_impressions(client: TestClient) -> None:
    since = _iso(5)
    text = client.get(
        "/users/asker/digest", params={"format": "text", "since": since}, headers=READ
    )
    assert text.status_code == 200 and text.headers["content-type"].startswith("text/plain")
    assert 'helper answered on "Post q1"' in text.text
    assert "Picked for you:" in text.text and "Post new" in text.text  # from the feed
    html = client.get(
        "/users/asker/digest", params={"format": "html", "since": since}, headers=READ
    )
    assert html.headers["content-type"].startswith("text/html")
    assert "<q>Post q1</q>" in html.text
    body = client.get("/users/asker/digest", headers=READ).json()  # since the last activity
    assert body["since"].startswith(_iso(3)[:16]) and body["replies_total"] == 1
    assert body["picks"][0]["item_id"] == "new"
    with client.app.state.sessions() as session:
        assert session.scalar(select(func.count()).select_from(FeedImpression)) == 0


#: A digest's (and a write's) time on a loaded CI machine, where one takes ~0.1 s idle; what it
#: guards against is the whole SQLite busy timeout (30 s) before a 503.
DIGEST_BOUND = 10.0


def test_a_digest_answers_at_once_while_an_experiment_runs_and_events_are_written(
    client: TestClient,
) -> None:
    """The digest's feed picks load the user's state, which logs their first exposure to a
    running experiment on a session of its own, committed at once: a digest holding SQLite's
    write lock meanwhile made that write wait the busy timeout (30 s) and the digest answer 503,
    and every write of the app waited with it."""
    experiment = {
        "experiment_id": "diverse",
        "name": "More diversity",
        "arms": [{"name": "control"}, {"name": "diverse", "overrides": {"diversity": 0.6}}],
        "planned_users": 100,
    }
    assert client.post("/experiments", json=experiment, headers=ADMIN).status_code == 201
    started = client.post("/experiments/diverse/start", headers=ADMIN)
    assert started.json()["status"] == "running"
    # a "nothing runs" read by a background thread before the start committed is cached for
    # CACHE_SECONDS: past it, every state load sees the experiment (and writes an exposure)
    time.sleep(CACHE_SECONDS)
    stop = threading.Event()
    writes: list[tuple[int, float]] = []

    def write() -> None:  # events written the whole time the digests are asked for
        while not stop.is_set():
            event = {"event_id": f"w{len(writes)}", "user_id": "fan1", "item_id": "q2",
                     "type": "view"}  # fmt: skip
            t0 = time.monotonic()
            answer = client.post("/events", json=event, headers=ADMIN)
            writes.append((answer.status_code, time.monotonic() - t0))
            time.sleep(0.02)

    writer = threading.Thread(target=write)
    writer.start()
    try:
        for user in ("asker", "fan3", "fan3"):  # fan3 the second time: exposed already
            t0 = time.monotonic()
            digest = client.get(f"/users/{user}/digest", headers=READ)
            took = time.monotonic() - t0
            assert digest.status_code == 200, digest.text
            assert took < DIGEST_BOUND, f"the digest of {user} took {took:.1f} s"
            assert digest.json()["picks"]
    finally:
        stop.set()
        writer.join(timeout=2 * DIGEST_BOUND)
    assert writes and {code for code, _ in writes} == {201}
    assert max(seconds for _, seconds in writes) < DIGEST_BOUND
    with client.app.state.sessions() as session:  # every write accepted is stored
        stored = session.scalar(select(func.count()).where(Event.event_id.like("w%")))
        assert stored == len(writes)
        assert session.scalar(select(func.count()).select_from(Exposure)) == 2  # asker, fan3
        assert session.scalar(select(func.count()).select_from(FeedImpression)) == 0


def test_replay_needs_admin(client: TestClient) -> None:
    assert client.post("/engagement/replay", headers=READ).status_code == 403
    replay = client.post("/engagement/replay", headers=ADMIN)
    assert replay.status_code == 200 and replay.json() == {"applied": 15}


def test_reads_never_write_and_the_background_job_applies_imported_events(
    client: TestClient,
) -> None:
    """Events stored by other means than POST /events (an import) are not counted by a read,
    which writes nothing and says how many are pending; the served app's background job
    applies them."""
    imported = [
        EventIn(event_id=f"imp{i}", user_id=f"reader{i}", item_id="q2", type="like",
                timestamp=NOW - timedelta(days=1))
        for i in range(3)
    ]  # fmt: skip
    with transaction(client.app.state.sessions) as session:
        add_events(session, imported, client.app.state.settings.event_types)

    def state() -> tuple:
        with client.app.state.sessions() as session:
            row = session.execute(select(EngagementState.event_cursor, EngagementState.updated))
            return tuple(row.one()), session.scalar(select(func.count()).select_from(LedgerEntry))

    before = state()
    for path in ("/users/asker/points", "/users/asker/badges", "/users/asker/trust",
                 "/trust/levels", "/leaderboards"):  # fmt: skip
        answer = client.get(path, headers=READ)
        assert answer.status_code == 200, answer.text
        assert answer.headers["X-Engagement-Pending-Events"] == "3"
    assert client.get("/users/asker/points", headers=READ).json()["total"] == 130
    assert state() == before  # nothing written by the reads
    client.app.state.jobs.wake("engagement")
    deadline = time.monotonic() + 30
    while (
        client.get("/users/asker/points", headers=READ).headers["X-Engagement-Pending-Events"]
        != "0"
    ):
        assert time.monotonic() < deadline, "the background job did not catch up"
        time.sleep(0.1)
    assert client.get("/users/asker/points", headers=READ).json()["total"] == 160


def test_a_burst_of_single_writes_is_counted_in_few_catch_ups_each_within_the_interval(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Single-event writes that follow one another closely share catch-ups (at most one per
    ``engagement_after_write_seconds``, not one per write), a write at a quiet moment counts
    before its answer is read, every event counts within the interval plus a catch-up's time,
    and the result is the same as a replay of every event."""
    interval = 0.3
    settings = Settings(data_dir=tmp_path / "data", database_url=database_url,
                        api_key="test-admin", api_keys={"r": ["read"]},
                        engagement_after_write_seconds=interval)  # fmt: skip
    counted: list[tuple[float, int]] = []  # (when a catch-up after writes ended, its cursor)
    apply_after_write = ledger.apply_after_write

    def recorded(session: Session, config: EngagementConfig, now: datetime) -> bool:
        done = apply_after_write(session, config, now)
        cursor = session.scalar(select(EngagementState.event_cursor)) or 0
        counted.append((time.monotonic(), cursor))
        return done

    monkeypatch.setattr(ledger, "apply_after_write", recorded)
    with TestClient(create_app(settings)) as client:
        for item, author in (("p1", "author1"), ("p2", "author2")):
            body = {"title": item, "author_id": author, "created": _iso(5)}
            assert client.put(f"/items/{item}", json=body, headers=ADMIN).status_code == 201

        def post(i: int) -> float:
            like = {"event_id": f"e{i}", "user_id": f"fan{i % 7}", "item_id": f"p{i % 2 + 1}",
                    "type": "like" if i % 3 else "view", "timestamp": _iso(i / 100)}  # fmt: skip
            sent = time.monotonic()
            assert client.post("/events", json=like, headers=ADMIN).status_code == 201
            return sent

        post(0)  # a quiet moment: counted before the answer is read
        pending = client.get("/trust/levels", headers=READ).headers["X-Engagement-Pending-Events"]
        assert pending == "0" and len(counted) == 1
        counted.clear()
        time.sleep(interval)
        started = time.monotonic()
        sent = [post(i) for i in range(1, 41)]
        burst = time.monotonic() - started
        assert _seconds_until_counted(client) <= AFTER_WRITE_BOUND
        assert len(counted) <= 2 + burst / interval < 40
        with client.app.state.sessions() as session:
            ids = dict(session.execute(select(Event.event_id, Event.id)).all())
        for i, at in enumerate(sent, 1):
            done = next(when for when, cursor in counted if cursor >= ids[f"e{i}"])
            assert done - at <= interval + CATCH_UP_SLACK, (i, done - at)
        with transaction(client.app.state.sessions) as session:
            incremental = snapshot(session)
            ledger.replay(session, engagement_config(settings), datetime.now(UTC))
        with client.app.state.sessions() as session:
            assert snapshot(session) == incremental
            assert incremental["ledger"]  # likes were counted
