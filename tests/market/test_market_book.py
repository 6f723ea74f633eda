"""The ad book a serving process keeps (SQLite and PostgreSQL): campaign changes made through
its API reach its next page at once; changes made by another process (written straight to the
store here) reach its pages within ``book_seconds``."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from market_support import community

from agora.api.app import create_app
from agora.config import Settings
from agora.db.engine import transaction
from agora.ingest.service import add_dataset
from agora.market import service
from agora.market.config import MarketConfig
from agora.market.schemas import CampaignIn

ADMIN = {"Authorization": "Bearer admin"}
READER = {"Authorization": "Bearer reader"}
BOOK_SECONDS = 0.5
#: how long a change made elsewhere may take to show, on a slow test machine
DEADLINE = BOOK_SECONDS + 5.0
BRAND = {"campaign_id": "c1", "advertiser": "Brand", "items": ["a0", "a1"], "bid": 1.0}


@pytest.fixture
def client(
    database_url: str, tmp_path: Path, migrated_store: Callable[[str], str]
) -> Iterator[TestClient]:
    """The real app (its lifespan runs the book's thread) on a store holding the community (a
    copy of the run's migrated store before that)."""
    settings = Settings(
        data_dir=tmp_path / "data",
        market=MarketConfig(holdout_share=0.0, pacing=False, book_seconds=BOOK_SECONDS),
        database_url=migrated_store(database_url),
        api_key="admin",
        api_keys={"reader": ["read"]},
    )
    app = create_app(settings)
    with TestClient(app) as client:
        with transaction(app.state.sessions) as session:
            add_dataset(session, community(), settings.event_types, max_future_seconds=1e9)
        yield client


def ads(client: TestClient, user: str = "u1") -> list[str]:
    answer = client.get(f"/users/{user}/feed?n=12", headers=READER)
    assert answer.status_code == 200, answer.text
    return [i["item_id"] for i in answer.json()["items"] if i["ad"]]


def patch(client: TestClient, **fields) -> None:
    client.patch("/campaigns/c1", json=fields, headers=ADMIN).raise_for_status()


def test_campaign_changes_through_the_api_reach_the_next_page_at_once(client: TestClient) -> None:
    assert ads(client) == []  # no campaign yet: the book holds none
    body = {"daily_budget": 10.0, "frequency_cap": 50, **BRAND}
    assert client.post("/campaigns", json=body, headers=ADMIN).status_code == 201
    assert ads(client) in (["a0"], ["a1"])  # a new campaign: the very next page
    patch(client, daily_budget=0.01)  # under the reserve price: it cannot bid
    assert ads(client) == []
    patch(client, daily_budget=10.0)
    assert ads(client) in (["a0"], ["a1"])
    patch(client, status="paused")
    assert ads(client) == []


def within(deadline: float, check: Callable[[], bool]) -> float:
    """Seconds until ``check()`` holds (asking every 50 ms); fails after ``deadline``."""
    start = time.monotonic()
    while not check():
        assert time.monotonic() - start < deadline, f"not within {deadline} s"
        time.sleep(0.05)
    return time.monotonic() - start


def test_changes_made_by_another_process_reach_pages_within_book_seconds(
    client: TestClient,
) -> None:
    sessions = client.app.state.sessions
    assert ads(client) == []  # the book is read: no campaign
    spec = CampaignIn(daily_budget=10.0, frequency_cap=1000, **BRAND)
    with transaction(sessions) as session:  # as another worker or `agora market` would
        service.create_campaign(session, spec, datetime.now(UTC))
    within(DEADLINE, lambda: ads(client) != [])
    with transaction(sessions) as session:
        service.update_campaign(session, "c1", {"daily_budget": 0.01}, datetime.now(UTC))
    within(DEADLINE, lambda: ads(client) == [])
    with transaction(sessions) as session:
        service.update_campaign(session, "c1", {"daily_budget": 10.0}, datetime.now(UTC))
    within(DEADLINE, lambda: ads(client) != [])
    with transaction(sessions) as session:
        service.update_campaign(session, "c1", {"status": "paused"}, datetime.now(UTC))
    within(DEADLINE, lambda: ads(client) == [])
    assert all(ads(client) == [] for _ in range(3))  # and it stays paused
