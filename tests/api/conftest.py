"""API fixtures: the real app (``create_app``) on real databases, driven by TestClient; each
store starts as a copy of the run's migrated store (the app's own migration then finds it up to
date)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from api_support import make_settings
from fastapi.testclient import TestClient

from agora.api.app import create_app
from agora.config import Settings


def _client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as client:
        yield client


@pytest.fixture
def client(
    tmp_path: Path, database_url: str, migrated_store: Callable[[str], str]
) -> Iterator[TestClient]:
    """The app on SQLite and, in a second run, on PostgreSQL."""
    yield from _client(make_settings(tmp_path, migrated_store(database_url)))


@pytest.fixture
def sqlite_client(
    tmp_path: Path, sqlite_url: str, migrated_store: Callable[[str], str]
) -> Iterator[TestClient]:
    """The app on SQLite only (routes whose behaviour does not depend on the database)."""
    yield from _client(make_settings(tmp_path, migrated_store(sqlite_url)))
