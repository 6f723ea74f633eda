"""Feed caches: the catalogue follows the store, and prefetched pages are shared via Redis."""

from __future__ import annotations

import time
from pathlib import Path

from fastapi.testclient import TestClient
from feed_support import ADMIN, make_client, seed, train

from agora.api.app import create_app
from agora.config import FeedConfig, Settings
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


def test_prefetched_pages_are_dropped_by_age_count_and_bytes() -> None:
    cache = FeedCache(ttl_seconds=0.3, max_sessions=2, max_page_bytes=10_000)
    page = {"items": [{"item_id": "x"}]}
    for session in ("s1", "s2", "s3"):
        cache.keep_pages(session, page)
    assert cache.take_pages("s1") is None  # over the count: the oldest went first
    assert cache.take_pages("s2") == page
    cache.keep_pages("big", {"items": ["y" * 20_000]})  # over the byte bound alone
    assert cache.take_pages("big") is None
    time.sleep(0.35)
    assert cache.take_pages("s3") is None  # past its lifetime


def test_model_candidates_are_dropped_by_age_and_count() -> None:
    cache = FeedCache(ttl_seconds=0.3, max_users=2)
    computed = []

    def compute(user: str) -> str:
        computed.append(user)
        return f"candidates of {user}"

    for user in ("u1", "u2", "u3", "u3"):
        assert cache.candidates(user, lambda u=user: compute(u)) == f"candidates of {user}"
    assert computed == ["u1", "u2", "u3"]  # the repeat came from memory
    cache.candidates("u1", lambda: compute("u1"))
    assert computed[-1] == "u1"  # u1 had been dropped for u3 (count)
    cache.candidates("u3", lambda: compute("u3"))
    assert computed[-1] == "u1"  # u3 still held
    time.sleep(0.35)
    cache.candidates("u3", lambda: compute("u3"))
    assert computed[-1] == "u3"  # recomputed after its lifetime


def test_a_session_idle_past_the_cache_lifetime_is_ranked_afresh(
    sqlite_url: str, tmp_path: Path
) -> None:
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=sqlite_url,
        api_key="test-admin",
        feed=FeedConfig(cache_ttl_seconds=0.5),
    )
    with TestClient(create_app(settings)) as client:
        seed(client)
        train(client)
        first = client.get("/users/me/feed", params={"n": 2}, headers=ADMIN).json()
        second = client.get(
            "/users/me/feed", params={"n": 2, "cursor": first["next_cursor"]}, headers=ADMIN
        )
        assert second.headers["X-Feed-Cache"] == "hit"
        time.sleep(0.6)
        third = client.get(
            "/users/me/feed", params={"n": 2, "cursor": second.json()["next_cursor"]},
            headers=ADMIN,
        )  # fmt: skip
        assert third.status_code == 200 and third.headers["X-Feed-Cache"] == "miss"
        assert third.json()["items"]
