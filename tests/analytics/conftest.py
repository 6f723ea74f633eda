"""Fixtures of the analytics tests: a client of the whole API on a seeded store, and the bundled
community (a copy of the run's community store) shared by the Spark engine comparisons."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from stores import StoreTemplates, bundled_community

from agora.api.app import create_app
from agora.config import BUILTIN_EVENT_TYPES, Settings
from agora.db.engine import make_engine, session_factory, transaction
from agora.ingest.schemas import Dataset
from agora.ingest.service import add_dataset


@pytest.fixture
def seeded_client(
    tmp_path: Path, database_url: str, migrated_store: Callable[[str], str]
) -> Iterator[Callable[..., TestClient]]:
    """``seeded_client(dataset, event_types=..., **add_dataset options)``: a client of the app on
    a store holding ``dataset`` (keys: ``test-admin`` admin, ``r`` read, ``w`` write), a copy of
    the run's migrated store before that."""
    with ExitStack() as stack:

        def make(
            dataset: Dataset | None,
            event_types: tuple[str, ...] = BUILTIN_EVENT_TYPES,
            **options: Any,
        ) -> TestClient:
            engine = make_engine(migrated_store(database_url))
            if dataset is not None:
                with transaction(session_factory(engine)) as session:
                    add_dataset(session, dataset, event_types, **options)
            engine.dispose()
            settings = Settings(
                data_dir=tmp_path / "data",
                database_url=database_url,
                api_key="test-admin",
                api_keys={"r": ["read"], "w": ["write"]},
            )
            return stack.enter_context(TestClient(create_app(settings)))

        yield make


@pytest.fixture(scope="session")
def sqlite_community(
    tmp_path_factory: pytest.TempPathFactory, store_templates: StoreTemplates
) -> str:
    """The bundled community in a SQLite store shared by the Spark comparison tests (read only)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('community') / 'agora.db'}"
    store_templates.copy_into(url, "community", bundled_community)
    return url


@pytest.fixture(scope="session")
def postgres_community(store_templates: StoreTemplates) -> Iterator[str]:
    """The bundled community in a PostgreSQL schema shared by the Spark comparison tests (read
    only)."""
    with store_templates.postgres_pool().test_schema() as url:
        store_templates.copy_into(url, "community", bundled_community)
        yield url


@pytest.fixture(params=["sqlite", "postgres"])
def spark_community(request: pytest.FixtureRequest) -> str:
    """The shared bundled community on SQLite, then on PostgreSQL (imported once per run)."""
    return request.getfixturevalue(f"{request.param}_community")
