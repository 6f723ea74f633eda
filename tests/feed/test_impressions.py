"""The impression buffer on the real databases: batched writes, the bound, a failing database,
erased users, commits and rollbacks, and what reads see before the rows are written."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import psycopg
import pytest
from feed_support import ADMIN, make_client, seed, train
from prometheus_client import REGISTRY
from sqlalchemy import Engine, delete, event, func, select, text
from sqlalchemy.orm import Session, sessionmaker

from agora.config import FeedConfig
from agora.db.engine import session_factory, transaction
from agora.db.tables import FeedImpression, Item, User
from agora.feed.impressions import ImpressionBuffer, insert_rows

NOW = datetime(2026, 1, 5, 12, tzinfo=UTC)


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    """Two users and ten items in a migrated store (SQLite and PostgreSQL)."""
    factory = session_factory(engine)
    with transaction(factory) as session:
        session.add_all(User(external_id=f"u{i}", created=NOW) for i in range(2))
        session.add_all(Item(external_id=f"i{i}", created=NOW) for i in range(10))
    return factory


@pytest.fixture
def pks(sessions: sessionmaker[Session]) -> dict[str, int]:
    with sessions() as session:
        users = dict(session.execute(select(User.external_id, User.id)).all())
        items = dict(session.execute(select(Item.external_id, Item.id)).all())
    return users | items


@pytest.fixture
def buffers() -> Iterator[list[ImpressionBuffer]]:
    """Buffers a test made, stopped afterwards (their threads end with the test)."""
    made: list[ImpressionBuffer] = []
    yield made
    for buffer in made:
        buffer.stop()


def rows(pks: dict[str, int], user: str, session: str, items: range) -> list[dict]:
    return [
        {
            "user_id": pks[user],
            "item_id": pks[f"i{i}"],
            "session": session,
            "position": pos,
            "source": "trending",
            "served": NOW,
        }
        for pos, i in enumerate(items)
    ]


def stored(sessions: sessionmaker[Session]) -> list[tuple[int, int, str]]:
    with sessions() as session:
        return sorted(
            session.execute(
                select(FeedImpression.user_id, FeedImpression.item_id, FeedImpression.session)
            ).all()
        )


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_rows_wait_until_a_flush_writes_them_in_one_statement(
    sessions: sessionmaker[Session],
    pks: dict[str, int],
    engine: Engine,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    buffer = ImpressionBuffer(sessions, flush_seconds=60, max_rows=100)
    buffer.add(rows(pks, "u0", "s1", range(5)))
    buffer.add(rows(pks, "u1", "s2", range(3)))
    assert stored(sessions) == [] and buffer.waiting == 8
    inserts: list[str] = []

    def count(conn, cursor, statement, params, context, many) -> None:  # noqa: ANN001, ARG001
        if statement.lstrip().upper().startswith("INSERT INTO FEED_IMPRESSIONS"):
            inserts.append(statement)

    copy = psycopg.Cursor.copy

    def counted_copy(cursor: psycopg.Cursor, statement: str, *args: Any, **kwargs: Any) -> Any:
        inserts.append(statement)  # PostgreSQL: a COPY, which SQLAlchemy does not see
        return copy(cursor, statement, *args, **kwargs)

    monkeypatch.setattr(psycopg.Cursor, "copy", counted_copy)
    event.listen(engine, "before_cursor_execute", count)
    try:
        assert buffer.flush() == 8
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert len(inserts) == 1  # one executemany (one COPY) for both pages
    assert len(stored(sessions)) == 8 and buffer.waiting == 0
    assert buffer.flush() == 0  # nothing left


def test_the_flusher_thread_writes_within_its_period(
    sessions: sessionmaker[Session], pks: dict[str, int], buffers: list[ImpressionBuffer]
) -> None:
    buffer = ImpressionBuffer(sessions, flush_seconds=0.2)
    buffers.append(buffer)
    buffer.start()
    buffer.add(rows(pks, "u0", "s1", range(4)))
    deadline = time.monotonic() + 10
    while len(stored(sessions)) < 4:
        assert time.monotonic() < deadline, "not written within 10 s"
        time.sleep(0.05)
    assert buffer.waiting == 0


def test_reaching_the_bound_writes_at_once(
    sessions: sessionmaker[Session], pks: dict[str, int]
) -> None:
    buffer = ImpressionBuffer(sessions, flush_seconds=60, max_rows=5)
    buffer.add(rows(pks, "u0", "s1", range(3)))
    assert stored(sessions) == []
    buffer.add(rows(pks, "u0", "s1", range(3, 6)))  # 6 >= 5: written before add returns
    assert len(stored(sessions)) == 6 and buffer.waiting == 0


def test_pending_shows_unwritten_rows_and_those_of_the_last_write(
    sessions: sessionmaker[Session], pks: dict[str, int]
) -> None:
    buffer = ImpressionBuffer(sessions, flush_seconds=60)
    buffer.add(rows(pks, "u0", "s1", range(3)))
    buffer.add(rows(pks, "u1", "s1", range(5, 6)))
    mine = {pks["i0"]: 0, pks["i1"]: 1, pks["i2"]: 2}  # item -> position
    assert buffer.pending(pks["u0"], "s1") == mine
    assert buffer.pending(pks["u0"], "other") == {}
    buffer.flush()
    # still shown: a read whose snapshot began before that write does not see the rows yet
    assert buffer.pending(pks["u0"], "s1") == mine
    buffer.flush()
    assert buffer.pending(pks["u0"], "s1") == {} == buffer.pending(pks["u1"], "s1")


def _rename(sessions: sessionmaker[Session], old: str, new: str) -> None:
    with transaction(sessions) as session:
        session.execute(text(f"ALTER TABLE {old} RENAME TO {new}"))


def test_a_failed_write_keeps_the_rows_for_the_next_one(
    sessions: sessionmaker[Session], pks: dict[str, int], caplog: pytest.LogCaptureFixture
) -> None:
    buffer = ImpressionBuffer(sessions, flush_seconds=60, max_rows=100)
    buffer.add(rows(pks, "u0", "secret-session", range(4)))
    failed = metric("agora_feed_impression_flushes_total", outcome="failed")
    _rename(sessions, "feed_impressions", "feed_impressions_away")  # the writes fail
    try:
        assert buffer.flush() == 0
        buffer.add(rows(pks, "u1", "s2", range(2)))
        assert buffer.waiting == 6 and len(buffer.pending(pks["u0"], "secret-session")) == 4
    finally:
        _rename(sessions, "feed_impressions_away", "feed_impressions")
    assert metric("agora_feed_impression_flushes_total", outcome="failed") == failed + 1
    assert "writing 4 rows failed" in caplog.text
    assert "secret-session" not in caplog.text and "INSERT" not in caplog.text  # no row
    assert buffer.flush() == 6 and len(stored(sessions)) == 6


def test_while_the_database_fails_the_oldest_rows_past_the_bound_are_dropped(
    sessions: sessionmaker[Session], pks: dict[str, int]
) -> None:
    buffer = ImpressionBuffer(sessions, flush_seconds=60, max_rows=4)
    dropped = metric("agora_feed_impressions_dropped_total", reason="bound")
    _rename(sessions, "feed_impressions", "feed_impressions_away")
    try:
        buffer.add(rows(pks, "u0", "old", range(3)))
        buffer.add(rows(pks, "u0", "new", range(3, 6)))  # reaches the bound: a write, failing
        assert buffer.waiting == 4
    finally:
        _rename(sessions, "feed_impressions_away", "feed_impressions")
    assert metric("agora_feed_impressions_dropped_total", reason="bound") == dropped + 2
    assert buffer.pending(pks["u0"], "old") == {pks["i2"]: 2}  # the two oldest are gone
    buffer.flush()
    assert sorted(s for *_, s in stored(sessions)) == ["new"] * 3 + ["old"]


def test_rows_of_a_user_erased_before_the_write_are_dropped_and_the_rest_written(
    sessions: sessionmaker[Session], pks: dict[str, int]
) -> None:
    buffer = ImpressionBuffer(sessions, flush_seconds=60)
    buffer.add(rows(pks, "u0", "s1", range(3)))
    buffer.add(rows(pks, "u1", "s1", range(2)))
    with transaction(sessions) as session:
        session.execute(delete(User).where(User.id == pks["u1"]))
    assert buffer.flush() == 3
    assert {u for u, *_ in stored(sessions)} == {pks["u0"]} and buffer.waiting == 0


def test_rows_are_stored_as_sqlalchemys_insert_stores_them(
    sessions: sessionmaker[Session], pks: dict[str, int]
) -> None:
    """The buffer's writes (a COPY on PostgreSQL, driver values on SQLite) store the very
    values a Core insert of the same rows does: times in UTC, text with odd characters."""
    served = [NOW, NOW.astimezone(timezone(timedelta(hours=-5))) + timedelta(microseconds=123)]
    page = [
        {**row, "session": "tab\tnew\nline \\ é ☃", "served": served[i % 2]}
        for i, row in enumerate(rows(pks, "u0", "s1", range(6)))
    ]
    written = "SELECT user_id, item_id, session, position, source, served FROM feed_impressions"
    with sessions.begin() as session:
        session.execute(FeedImpression.__table__.insert(), page)
    with sessions.begin() as session:
        expected = session.execute(text(written + " ORDER BY id")).all()
        session.execute(delete(FeedImpression))
    with sessions.begin() as session:
        insert_rows(session, page)
    with sessions() as session:
        assert session.execute(text(written + " ORDER BY id")).all() == expected
    assert len(expected) == 6


def test_stop_writes_what_is_left(sessions: sessionmaker[Session], pks: dict[str, int]) -> None:
    buffer = ImpressionBuffer(sessions, flush_seconds=60)
    buffer.start()
    buffer.add(rows(pks, "u0", "s1", range(7)))
    buffer.stop()
    assert len(stored(sessions)) == 7


def test_rows_join_when_the_transaction_commits_and_never_if_it_rolls_back(
    sessions: sessionmaker[Session], pks: dict[str, int]
) -> None:
    buffer = ImpressionBuffer(sessions, flush_seconds=60)
    with pytest.raises(RuntimeError), transaction(sessions) as session:
        buffer.add_after_commit(session, rows(pks, "u0", "failed-page", range(2)))
        raise RuntimeError("the page failed")
    assert buffer.waiting == 0
    with transaction(sessions) as session:
        buffer.add_after_commit(session, rows(pks, "u0", "s1", range(3)))
        with session.begin_nested():  # a savepoint's release is not the commit
            session.execute(select(1))
        assert buffer.waiting == 0
    assert set(buffer.pending(pks["u0"], "s1")) == {pks["i0"], pks["i1"], pks["i2"]}
    with transaction(session_factory(sessions.kw["bind"])) as other, pytest.raises(ValueError):
        buffer.add_after_commit(other, rows(pks, "u0", "s1", range(1)))


def test_a_new_users_rows_wait_for_the_transaction_that_creates_them(
    sessions: sessionmaker[Session], pks: dict[str, int]
) -> None:
    """A cold-start page creates its user in the page's transaction: the flusher must not write
    that user's impressions before the commit (the foreign key would refuse them)."""
    buffer = ImpressionBuffer(sessions, flush_seconds=60)
    with transaction(sessions) as session:
        newcomer = User(external_id="newcomer", created=NOW)
        session.add(newcomer)
        session.flush()
        page = rows(pks | {"newcomer": newcomer.id}, "newcomer", "s1", range(2))
        buffer.add_after_commit(session, page)
        assert buffer.flush() == 0  # a flush now has nothing of this page
    assert buffer.flush() == 2
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(FeedImpression)) == 2


def test_pages_served_before_a_write_never_repeat_and_the_app_writes_them_on_shutdown(
    seeded: Callable[[], str], tmp_path: Path
) -> None:
    """With a flush period longer than the test, every impression is still in the buffer while
    the pages are served: the browsing session must not repeat them all the same, and stopping
    the app (its lifespan's shutdown) writes them."""
    feed = FeedConfig(impression_flush_seconds=60)
    with make_client(tmp_path, seeded(), feed=feed) as client:
        train(client)
        served, cursor = [], None
        for _ in range(4):
            params = {"n": 3, **({"cursor": cursor} if cursor else {})}
            body = client.get("/users/me/feed", params=params, headers=ADMIN).json()
            served += [i["item_id"] for i in body["items"]]
            cursor = body["next_cursor"]
        assert len(served) == len(set(served)) == 12
        sessions = client.app.state.sessions
        assert stored(sessions) == []  # all buffered
        waiting = client.get("/metrics", headers=ADMIN).text
        assert "agora_feed_impressions_buffered" in waiting
    assert len(stored(sessions)) == 12


def test_a_session_never_repeats_when_its_pages_alternate_between_two_workers(
    database_url: str, tmp_path: Path
) -> None:
    """Each worker buffers its own impressions: a next page built by the other worker within
    the flush period waits until the previous page's impressions are stored."""
    with (
        make_client(tmp_path, database_url) as first,
        make_client(tmp_path, database_url) as second,
    ):
        seed(first)
        train(first)
        assert second.post("/admin/reload", headers=ADMIN).status_code == 200
        served, cursor = [], None
        for page in range(6):
            worker = (first, second)[page % 2]
            params = {"n": 2, **({"cursor": cursor} if cursor else {})}
            answer = worker.get("/users/me/feed", params=params, headers=ADMIN)
            assert answer.status_code == 200, answer.text
            served += [i["item_id"] for i in answer.json()["items"]]
            cursor = answer.json()["next_cursor"]
        assert len(served) == len(set(served)) == 12
