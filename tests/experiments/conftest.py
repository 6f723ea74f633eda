"""Experiment fixtures: a migrated store (SQLite, then PostgreSQL) holding a small community."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from experiments_support import community
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from agora.config import Settings
from agora.db.engine import session_factory, transaction
from agora.ingest.service import add_dataset


@pytest.fixture
def sessions(engine: Engine) -> Iterator[sessionmaker[Session]]:
    """A session factory on a migrated store holding :func:`community`."""
    factory = session_factory(engine)
    with transaction(factory) as session:
        add_dataset(session, community(), Settings().event_types, max_future_seconds=1e9)
    yield factory
