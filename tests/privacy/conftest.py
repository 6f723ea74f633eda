"""Privacy fixtures: the seeded community with trained models (two versions of each), and a
client of the whole API on a small community with differential privacy on or off; on SQLite and
on PostgreSQL; each store starts as a copy of one of the run's templates (the migrated store, or
the small community of ``dp_support``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from dp_support import community as dp_community
from fastapi.testclient import TestClient
from privacy_support import make_client, seed, train
from stores import StoreTemplates

from agora.api.app import create_app
from agora.config import BUILTIN_EVENT_TYPES, Settings
from agora.db.engine import make_engine, migrate, session_factory, transaction
from agora.db.pseudonyms import IdSealer, check_store
from agora.ingest.service import add_dataset


@pytest.fixture
def community(
    database_url: str, tmp_path: Path, migrated_store: Callable[[str], str]
) -> Iterator[TestClient]:
    with make_client(tmp_path, migrated_store(database_url)) as client:
        seed(client)
        train(client)
        train(client)  # an older version on disk that knew zed too
        yield client


def dp_store(url: str) -> None:
    """Migrate the empty store at ``url`` and import the community of ``dp_support`` with plain
    ids (recorded, as a server does): the ``dp-community`` template."""
    engine = make_engine(url)
    migrate(engine)
    check_store(engine)
    with transaction(session_factory(engine)) as session:
        add_dataset(session, dp_community(), BUILTIN_EVENT_TYPES)
    engine.dispose()


@pytest.fixture
def dp_client(
    tmp_path: Path,
    database_url: str,
    migrated_store: Callable[[str], str],
    store_templates: StoreTemplates,
) -> Iterator[Callable[..., TestClient]]:
    """``dp_client(**settings)``: the app on a store holding the community (keys:
    ``test-admin`` admin, ``r`` read, ``w`` write); settings such as ``dp_epsilon``. The store
    is a copy of the run's ``dp-community`` template, or, with pseudonymous ids, the community
    imported through a sealing engine."""
    with ExitStack() as stack:

        def make(**overrides: Any) -> TestClient:
            secret = overrides.get("id_secret") if overrides.get("pseudonymize_ids") else None
            if secret is None:
                store_templates.copy_into(database_url, "dp-community", dp_store)
            else:
                engine = make_engine(migrated_store(database_url), ids=IdSealer(secret))
                check_store(engine)  # records how the store keeps its ids, as a server does
                with transaction(session_factory(engine)) as session:
                    add_dataset(session, dp_community(), BUILTIN_EVENT_TYPES)
                engine.dispose()
            settings = Settings(
                data_dir=tmp_path / "data",
                database_url=database_url,
                api_key="test-admin",
                api_keys={"r": ["read"], "w": ["write"]},
                **overrides,
            )
            return stack.enter_context(TestClient(create_app(settings)))

        yield make
