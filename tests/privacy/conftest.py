"""Privacy fixtures: the seeded community with trained models (two versions of each), on SQLite
and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from privacy_support import make_client, seed, train


@pytest.fixture
def community(database_url: str, tmp_path: Path) -> Iterator[TestClient]:
    with make_client(tmp_path, database_url) as client:
        seed(client)
        train(client)
        train(client)  # an older version on disk that knew zed too
        yield client
