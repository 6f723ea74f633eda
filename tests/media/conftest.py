"""Media fixtures: the real app on SQLite and PostgreSQL, with a folder of real images."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from agora.api.app import create_app
from agora.config import Settings

sys.path.insert(0, str(Path(__file__).parents[1] / "vision"))  # vision_support's images


@pytest.fixture
def settings(tmp_path: Path, database_url: str, migrated_store: Callable[[str], str]) -> Settings:
    """Settings of the app on a copy of the run's migrated store, with a media folder."""
    (tmp_path / "media").mkdir()
    return Settings(
        data_dir=tmp_path / "data",
        database_url=migrated_store(database_url),
        api_key="test-admin",
        api_keys={"r": ["read"], "w": ["write"]},
        media_root=tmp_path / "media",
        background_seconds=3600,
    )


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client
