"""The seeded community fixtures, on SQLite and on PostgreSQL: each store starts as a copy of
the run's migrated store."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from feed_support import PREPARED_FEED, make_client, refresh, seed, train


@pytest.fixture
def community(
    database_url: str, tmp_path: Path, migrated_store: Callable[[str], str]
) -> Iterator[TestClient]:
    """The seeded community with trained models, on SQLite and on PostgreSQL."""
    with make_client(tmp_path, migrated_store(database_url)) as client:
        seed(client)
        train(client)
        yield client


@pytest.fixture
def prepared(
    database_url: str, tmp_path: Path, migrated_store: Callable[[str], str]
) -> Iterator[TestClient]:
    """The seeded community with every user's record (first pages included) ready, served by
    a worker that has not held any of them."""
    with make_client(tmp_path, migrated_store(database_url), feed=PREPARED_FEED) as client:
        seed(client)
        train(client)
        refresh(client)
        yield client
