"""The seeded community fixture, on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from feed_support import make_client, seed, train


@pytest.fixture
def community(database_url: str, tmp_path: Path) -> Iterator[TestClient]:
    """The seeded community with trained models, on SQLite and on PostgreSQL."""
    with make_client(tmp_path, database_url) as client:
        seed(client)
        train(client)
        yield client
