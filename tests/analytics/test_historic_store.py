"""Analytics on a historic store (the bundled Cardano Stack Exchange dump, 2021): "now" defaults
to the store's newest activity, so trending and the onboarding topics are not empty, and the
answers say where "now" came from."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from agora.api.app import create_app
from agora.config import Settings

READ = {"Authorization": "Bearer r"}
WRITE = {"Authorization": "Bearer w"}
NEWEST = "2021-12-04T20:07:12.113000Z"  # the dump's newest event (a comment)


@pytest.fixture
def client(
    tmp_path: Path, database_url: str, community_store: Callable[[str], str]
) -> Iterator[TestClient]:
    """The app on a store holding the bundled community (a copy of the run's, every event
    type and time kept), keys ``r`` read and ``w`` write."""
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=community_store(database_url),
        api_key="test-admin",
        api_keys={"r": ["read"], "w": ["write"]},
    )
    with TestClient(create_app(settings)) as client:
        yield client


def test_trending_on_an_imported_dump_ends_at_its_newest_activity(client: TestClient) -> None:
    weekly = client.get("/analytics/trending?bucket=week&buckets=20", headers=READ).json()
    assert (weekly["now"], weekly["now_source"]) == (NEWEST, "store")
    assert {b["key"] for b in weekly["trending"]} >= {"nami-wallet"}
    daily = client.get("/analytics/trending", headers=READ).json()
    assert daily["now_source"] == "store" and len(daily["bursts"]) >= 5
    assert {"plutus", "wallet"} <= {b["key"] for b in daily["bursts"]}
    given = client.get(
        "/analytics/trending", params={"now": "2026-01-01T00:00:00Z"}, headers=READ
    ).json()
    assert given["now_source"] == "query" and given["bursts"] == []  # as asked: nothing then


def test_a_new_member_following_a_topic_of_a_dump_gets_its_posts(client: TestClient) -> None:
    """Onboarding: the feed's followed-topics source looks at the dump's recent posts, not at
    the month before today."""
    interests = client.post("/users/newbie/interests", json={"tags": ["plutus"]}, headers=WRITE)
    assert interests.status_code == 200, interests.text
    feed = client.get("/users/newbie/feed?n=30", headers=READ)
    assert feed.status_code == 200, feed.text
    topics = [i for i in feed.json()["items"] if i["source"] == "topics"]
    assert topics and all("plutus" in i["tags"] for i in topics)
