"""The seeded community fixtures, on SQLite and on PostgreSQL: each store starts as a copy of
the run's seeded community (:func:`seeded_store`)."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from feed_support import PREPARED_FEED, make_client, refresh, seed, train
from stores import StoreTemplates, migrated

from agora.config import FeedConfig


def seeded_store(url: str) -> None:
    """Migrate the empty store at ``url`` and seed the community through the API
    (:func:`feed_support.seed`): the ``feed-community`` template. Its times are relative to
    ``feed_support.NOW``, fixed for the run, so every copy holds what seeding it again would.
    The seeding app runs no refresher: the template holds what the writes store (the events
    and what engagement counts of them), no feed record or refresh mark of its own."""
    migrated(url)
    no_refresher = FeedConfig(refresh_in_serve=False)
    with (
        tempfile.TemporaryDirectory() as tmp,
        make_client(Path(tmp), url, feed=no_refresher) as client,
    ):
        seed(client)


@pytest.fixture
def seeded(database_url: str, store_templates: StoreTemplates) -> Callable[[], str]:
    """``seeded()``: this test's empty store made a copy of the ``feed-community`` template;
    returns its URL."""

    def copy() -> str:
        store_templates.copy_into(database_url, "feed-community", seeded_store)
        return database_url

    return copy


@pytest.fixture
def community(seeded: Callable[[], str], tmp_path: Path) -> Iterator[TestClient]:
    """The seeded community with trained models, on SQLite and on PostgreSQL."""
    with make_client(tmp_path, seeded()) as client:
        train(client)
        yield client


@pytest.fixture
def prepared(seeded: Callable[[], str], tmp_path: Path) -> Iterator[TestClient]:
    """The seeded community with every user's record (first pages included) ready, served by
    a worker that has not held any of them."""
    with make_client(tmp_path, seeded(), feed=PREPARED_FEED) as client:
        train(client)
        refresh(client)
        yield client
