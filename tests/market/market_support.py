"""A small community in a real store (SQLite and PostgreSQL) for the market tests."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from agora.config import Settings
from agora.db.engine import session_factory, transaction
from agora.ingest.schemas import Dataset, EventIn, GroupIn, ItemIn, MembershipIn, UserIn
from agora.ingest.service import add_dataset
from agora.market.config import MarketConfig

#: A fixed clock: 10:30 UTC on a weekday.
NOW = datetime(2026, 11, 30, 10, 30, tzinfo=UTC)
USERS = [f"u{i}" for i in range(40)]
#: ad creatives (a0-a2, tagged python / garden) and organic posts (p0-p9)
ITEMS = {
    "a0": ["python"],
    "a1": ["python", "web"],
    "a2": ["garden"],
    **{f"p{i}": ["python" if i < 5 else "garden"] for i in range(10)},
}


def community() -> Dataset:
    """u0-u19 read python posts, u20-u39 garden posts; u0-u9 are in group 'pro'."""
    events = [
        EventIn(
            event_id=f"{u}-p{(i % 5) + (0 if i < 20 else 5)}",
            user_id=u,
            item_id=f"p{(i % 5) + (0 if i < 20 else 5)}",
            type="like",
            timestamp=NOW - timedelta(days=1, hours=i % 24),
        )
        for i, u in enumerate(USERS)
    ]
    return Dataset(
        users=[UserIn(user_id=u) for u in [*USERS, "brand"]],
        items=[
            ItemIn(item_id=i, author_id="brand", title=f"Post {i}", tags=t, created=NOW)
            for i, t in ITEMS.items()
        ],
        events=events,
        groups=[GroupIn(group_id="pro")],
        memberships=[MembershipIn(group_id="pro", user_id=f"u{i}") for i in range(10)],
    )


@pytest.fixture
def sessions(engine: Engine) -> Iterator[sessionmaker[Session]]:
    """A migrated store (SQLite and PostgreSQL) holding :func:`community`."""
    factory = session_factory(engine)
    with transaction(factory) as session:
        add_dataset(session, community(), Settings().event_types, max_future_seconds=1e9)
    yield factory


@pytest.fixture
def config() -> MarketConfig:
    """No holdout, no pacing: the tests that need them turn them on."""
    return MarketConfig(holdout_share=0.0, pacing=False, slot_positions=[3, 10])
