"""Engagement fixtures: a migrated store on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from sqlalchemy.orm import Session, sessionmaker

from agora.db.engine import make_engine, session_factory


@pytest.fixture
def sessions(
    database_url: str, migrated_store: Callable[[str], str]
) -> Iterator[sessionmaker[Session]]:
    """A session factory on a migrated store (SQLite, then PostgreSQL): a copy of the run's."""
    engine = make_engine(migrated_store(database_url))
    yield session_factory(engine)
    engine.dispose()
