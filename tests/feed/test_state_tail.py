"""The feed's held user states follow the store: the tail thread applies every log, and the
catch-up after ``POST /events`` applies the new events at once, in one query."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, event, select
from sqlalchemy.orm import Session, sessionmaker

from agora.db.engine import session_factory, transaction
from agora.db.tables import Item
from agora.feed.models import FeedSettings
from agora.feed.state import UserStates
from agora.ingest.schemas import EventIn
from agora.ingest.service import add_events, ensure_items, ensure_users

NOW = datetime(2026, 1, 5, 12, tzinfo=UTC)


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    factory = session_factory(engine)
    with transaction(factory) as session:
        ensure_users(session, ["u0", "u1"])
        ensure_items(session, ["i0", "i1", "i2"])
    return factory


@pytest.fixture
def states(sessions: sessionmaker[Session]) -> Iterator[UserStates]:
    """Tailing (so states are held), but the thread's turn never comes during a test."""
    held = UserStates(sessions, tail_seconds=3600)
    held.start()
    yield held
    held.stop()


def write_event(sessions: sessionmaker[Session], event_id: str, user: str, item: str) -> None:
    with transaction(sessions) as session:
        ev = EventIn(event_id=event_id, user_id=user, item_id=item, type="view")
        add_events(session, [ev], ["view"])


def item_pk(sessions: sessionmaker[Session], item: str) -> int:
    with sessions() as session:
        return session.scalar(select(Item.id).where(Item.external_id == item))


def test_catch_up_applies_new_events_to_held_states_in_one_query(
    sessions: sessionmaker[Session], states: UserStates, engine: Engine
) -> None:
    with sessions() as session:
        state = states.get(session, "u0", NOW)
    assert states.held("u0") is state and state.events == 0
    write_event(sessions, "e1", "u0", "i1")
    write_event(sessions, "e2", "u1", "i2")  # a user not held: nothing to apply
    statements: list[str] = []

    def record(conn, cursor, statement, params, context, many) -> None:  # noqa: ANN001, ARG001
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        with sessions() as session:
            states.catch_up(session)
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert len(statements) == 1  # the events log only
    assert state.touched == {item_pk(sessions, "i1")} and state.events == 1


def test_other_logs_wait_for_the_tail_and_an_event_is_applied_once(
    sessions: sessionmaker[Session], states: UserStates
) -> None:
    with sessions() as session:
        state = states.get(session, "u0", NOW)
        pk = state.pk
    write_event(sessions, "e1", "u0", "i0")
    with transaction(sessions) as session:
        session.add(FeedSettings(user_id=pk, updated=NOW))
    with sessions() as session:
        states.catch_up(session)
        assert states.held("u0") is state and state.events == 1  # settings: not read here
        states.tail(session)  # the thread's turn: the events are behind it already
    assert state.events == 1
    assert states.held("u0") is None  # new settings: loaded afresh on the next page
