"""Feed caches: the catalogue follows the store, and prefetched pages are shared via Redis."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient
from feed_support import ADMIN, make_client, seed, train

from agora.feed import service
from agora.feed.cache import FeedCache


def test_catalogue_picks_up_new_items_after_its_refresh(community: TestClient) -> None:
    cache = FeedCache(refresh_seconds=0.0, reload_seconds=3600.0)
    with community.app.state.sessions() as session:
        before = cache.catalogue.get(session)
        assert before.summary("a0")["author_id"] == "alice"
        assert before.author_first["newbie"] > before.author_first["alice"]
    body = {"title": "Late", "author_id": "newbie", "tags": ["python"]}
    assert community.put("/items/late", json=body, headers=ADMIN).status_code == 201
    with community.app.state.sessions() as session:
        after = cache.catalogue.get(session)
    assert after.summary("late")["tags"] == ["python"] and before.summary("late") is None
    assert after.created_since(after.created.max(), 5).tolist() == [after.index["late"]]


def test_pages_kept_in_redis_are_served_by_another_worker(
    redis_url: str, sqlite_url: str, tmp_path: Path
) -> None:
    with make_client(tmp_path, sqlite_url) as worker_a:
        seed(worker_a)
        train(worker_a)
        worker_a.app.state.feed_cache = FeedCache(redis_url=redis_url)
        with make_client(tmp_path, sqlite_url) as worker_b:  # same store, another process
            worker_b.app.state.feed_cache = FeedCache(redis_url=redis_url)
            first = worker_a.get("/users/me/feed", params={"n": 2}, headers=ADMIN).json()
            browsing, _ = service.decode_cursor(first["next_cursor"])
            shared = worker_b.app.state.feed_cache
            planned = shared.take_pages(browsing)
            shared.keep_pages(browsing, planned)
            second = worker_b.get(
                "/users/me/feed", params={"n": 2, "cursor": first["next_cursor"]}, headers=ADMIN
            ).json()
            assert [i["item_id"] for i in second["items"]] == [
                i["item_id"] for i in planned["items"][:2]
            ]


def test_an_unreachable_redis_only_costs_a_fresh_ranking() -> None:
    cache = FeedCache(redis_url="redis://127.0.0.1:1/0")  # nothing listens there
    cache.keep_pages("session-x", {"items": []})
    assert cache.take_pages("session-x") is None
