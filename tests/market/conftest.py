"""The market tests' store: the small community on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from market_support import community
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from agora.api.app import create_app
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


@pytest.fixture
def client(
    database_url: str, tmp_path: Path, migrated_store: Callable[[str], str]
) -> Iterator[TestClient]:
    """The real app on a store holding :func:`community` (no holdout, no pacing), with keys
    ``admin`` (every scope), ``writer`` and ``reader``; the store starts as a copy of the run's
    migrated store."""
    settings = Settings(
        data_dir=tmp_path / "data",
        market=MarketConfig(holdout_share=0.0, pacing=False),
        database_url=migrated_store(database_url),
        api_key="admin",
        api_keys={"writer": ["write"], "reader": ["read"]},
    )
    app = create_app(settings)
    with TestClient(app) as client:
        with transaction(app.state.sessions) as session:
            add_dataset(session, community(), settings.event_types, max_future_seconds=1e9)
        yield client
