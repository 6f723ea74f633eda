"""The market tests' store: the small community on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from market_support import community
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from agora.config import Settings
from agora.db.engine import session_factory, transaction
from agora.ingest.service import add_dataset
from agora.market.config import MarketConfig


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
