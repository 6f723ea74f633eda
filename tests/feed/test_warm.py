"""The start-up warm-up builds what a worker's first feed page would build on its request."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from feed_support import ADMIN, ITEMS, PREPARED_FEED, make_client, train

from agora.feed import online
from agora.feed.cache import FeedCache
from agora.feed.candidates import EVERYONE
from agora.feed.store import TableCandidates
from agora.models.retrieval import is_factor_model


@pytest.fixture
def quiet(seeded: Callable[[], str], tmp_path: Path) -> Iterator[TestClient]:
    """The seeded community (a copy of the run's), trained, with no refresher to store the
    shared record."""
    with make_client(tmp_path, seeded(), feed=PREPARED_FEED) as client:
        train(client)
        yield client


def test_warm_builds_the_catalogue_the_item_indexes_and_the_shared_record(
    quiet: TestClient,
) -> None:
    state = quiet.app.state
    store = TableCandidates(state.sessions)
    store.drop([EVERYONE])  # the app's own warm-up stored one before the models were trained
    cache = FeedCache(store=store, sessions=state.sessions, background=False)
    took = online.warm(
        state.sessions, state.models, cache, state.settings.feed, state.settings.event_weights
    )
    versions = state.models.versions()
    assert {"catalogue", "exposure", "shared record"} <= set(took)
    assert {f"{name} known" for name in versions} <= set(took)
    with state.sessions() as session:  # read by the warm-up: nothing to read again
        assert cache.catalogue.preload(session).ids == list(ITEMS)
    factor = [n for n in versions if is_factor_model(state.models.get(n).model)]
    assert factor  # als
    for name in factor:  # the page's search finds the index built
        assert state.models.get(name).path in state.models._indexes
        assert f"{name} index" in took
    assert store.get(EVERYONE) is not None  # computed and stored, as a first page would


def test_a_preloaded_catalogue_is_read_again_by_the_first_request(quiet: TestClient) -> None:
    """The warm-up's read stays due: the first request sees an item stored after it."""
    state = quiet.app.state
    cache = FeedCache(
        store=TableCandidates(state.sessions), sessions=state.sessions, background=False
    )
    with state.sessions() as session:
        assert cache.catalogue.preload(session).ids == list(ITEMS)
    assert cache.catalogue.held() is None
    body = {"title": "Stored after the warm-up", "author_id": "alice", "tags": ["python"]}
    assert quiet.put("/items/late", json=body, headers=ADMIN).status_code == 201
    with state.sessions() as session:
        assert cache.catalogue.get(session).ids == [*ITEMS, "late"]
