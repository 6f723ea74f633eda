"""Catch-ups racing each other apply every event once; late-committed events are not lost."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from engagement_support import NOW, T0, events, items, ledger_sums, snapshot
from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session, sessionmaker

from agora.db.engine import transaction
from agora.db.tables import Event, Item, User
from agora.engagement import ledger
from agora.engagement.config import EngagementConfig
from agora.engagement.models import EngagementState, LedgerEntry
from agora.ingest.service import known_user_pk


@pytest.mark.parametrize("first_ever", [True, False])
def test_a_concurrent_catch_up_waits_and_applies_nothing_twice(
    sessions: sessionmaker[Session], first_ever: bool
) -> None:
    config = EngagementConfig()
    with transaction(sessions) as session:
        items(session, {"p1": ("author", [])})
        if not first_ever:
            ledger.catch_up(session, config, NOW)  # the state row exists already
        events(session, [(f"l{i}", f"fan{i}", "p1", "like", T0) for i in range(5)])
    result: dict[str, int] = {}

    def other() -> None:
        with transaction(sessions) as session:
            result["applied"] = ledger.catch_up(session, config, NOW)

    with transaction(sessions) as first:
        assert ledger.catch_up(first, config, NOW) == 5
        racer = threading.Thread(target=other)
        racer.start()
        racer.join(timeout=1.0)
        assert racer.is_alive()  # waits for the first catch-up to commit
    racer.join(timeout=30)
    assert result == {"applied": 0}
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(LedgerEntry)) == 5
        assert ledger_sums(session) == snapshot(session)["totals"]


def _insert_like(session: Session, event_pk: int, fan: str) -> None:
    """A like stored under an explicit id, as a transaction that committed late would leave."""
    fan_pk = known_user_pk(session, fan)
    item = session.scalar(select(Item.id).where(Item.external_id == "p1"))
    session.execute(
        insert(Event).values(id=event_pk, event_id=f"late-{event_pk}", user_id=fan_pk,
                             item_id=item, type="like", timestamp=T0, context={})
    )  # fmt: skip


def test_an_event_committed_after_a_later_one_still_counts(
    sessions: sessionmaker[Session],
) -> None:
    config = EngagementConfig()
    with transaction(sessions) as session:
        items(session, {"p1": ("author", [])})
        events(session, [("e1", "fan1", "p1", "like", T0), ("e2", "fan2", "p1", "like", T0)])
        session.flush()
        top = session.scalar(select(func.max(Event.id)))
        _insert_like(session, top + 2, "fan1")  # id top + 1 is still being written elsewhere
    with transaction(sessions) as session:
        assert ledger.catch_up(session, config, NOW) == 3
        assert session.get(EngagementState, 1).gaps == [[top + 1, NOW.timestamp()]]
    with transaction(sessions) as session:
        _insert_like(session, top + 1, "fan2")  # ... and commits now
    with transaction(sessions) as session:
        assert ledger.catch_up(session, config, NOW + timedelta(seconds=5)) == 1
        assert ledger.points(session, config, "author", NOW).total == 40
        assert session.get(EngagementState, 1).gaps == []
    with transaction(sessions) as session:
        incremental = snapshot(session)
        ledger.replay(session, config, NOW)
    with sessions() as session:
        assert snapshot(session) == incremental


def test_gaps_that_never_fill_are_dropped(sessions: sessionmaker[Session]) -> None:
    config = EngagementConfig()
    with transaction(sessions) as session:
        items(session, {"p1": ("author", [])})
        session.flush()
        session.execute(insert(User).values(id=10_000, external_id="fan", created=T0,
                                             attributes={}))  # fmt: skip
        session.flush()
        _insert_like(session, 7, "fan")  # ids 1-6 never appear (rolled back)
    with transaction(sessions) as session:
        assert ledger.catch_up(session, config, NOW) == 1
        assert [i for i, _ in session.get(EngagementState, 1).gaps] == [1, 2, 3, 4, 5, 6]
    with transaction(sessions) as session:
        later = NOW + timedelta(seconds=ledger.GAP_SECONDS + 1)
        assert ledger.catch_up(session, config, later) == 0
        assert session.get(EngagementState, 1).gaps == []
