"""Feed caches: the catalogue follows the store; browsing sessions are shared via Redis."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from fastapi.testclient import TestClient
from feed_support import ADMIN, make_client, seed, train
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from agora.api.app import create_app
from agora.config import FeedConfig, Settings
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


def test_catalogue_is_read_again_when_the_models_change(community: TestClient) -> None:
    """Within its refresh period the catalogue is held, except under new models: they list
    items stored before they were trained, which the held snapshot may lack (records computed
    on it lost those items until the next full refresh)."""
    cache = FeedCache(refresh_seconds=3600.0, reload_seconds=3600.0)
    with community.app.state.sessions() as session:
        assert cache.catalogue.get(session, models="als=1").summary("late") is None
    body = {"title": "Late", "author_id": "newbie", "tags": ["python"]}
    assert community.put("/items/late", json=body, headers=ADMIN).status_code == 201
    with community.app.state.sessions() as session:
        assert cache.catalogue.get(session).summary("late") is None  # held
        assert cache.catalogue.get(session, models="als=1").summary("late") is None
        assert cache.catalogue.get(session, models="als=2").summary("late")["title"] == "Late"


def _items(client: TestClient, **params) -> tuple[list[str], str]:  # noqa: ANN003
    body = client.get("/users/me/feed", params=params, headers=ADMIN).json()
    return [i["item_id"] for i in body["items"]], body["next_cursor"]


def test_a_session_paged_across_two_workers_via_redis_never_repeats(
    redis_url: str, sqlite_url: str, tmp_path: Path
) -> None:
    with make_client(tmp_path, sqlite_url) as worker_a:
        seed(worker_a)
        train(worker_a)
        worker_a.app.state.feed_cache = FeedCache(redis_url=redis_url)
        with make_client(tmp_path, sqlite_url) as worker_b:  # same store, another process
            worker_b.app.state.feed_cache = FeedCache(redis_url=redis_url)
            served, cursor = _items(worker_a, n=2)
            for worker in (worker_b, worker_a, worker_b):
                more, cursor = _items(worker, n=2, cursor=cursor)
                assert more and not set(more) & set(served)
                served += more


def test_an_unreachable_redis_falls_back_to_the_stored_impressions(
    community: TestClient,
) -> None:
    community.app.state.feed_cache = FeedCache(redis_url="redis://127.0.0.1:1/0")  # nobody
    first, cursor = _items(community, n=3)
    second, _ = _items(community, n=3, cursor=cursor)
    assert second and not set(first) & set(second)


def test_browsing_sessions_are_dropped_by_age_and_count() -> None:
    cache = FeedCache(ttl_seconds=0.3, max_sessions=2)
    for session in ("s1", "s2", "s3"):
        cache.shown.add(session, 1, np.array([7]))
    with_pages = cache.shown._held  # what this worker remembers without Redis
    assert with_pages.get("s1") is None and with_pages.get("s2") == (1, (7,))
    time.sleep(0.35)
    assert with_pages.get("s3") is None  # past its lifetime


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


def test_a_session_idle_past_the_cache_lifetime_still_never_repeats(
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
        first, cursor = _items(client, n=2)
        time.sleep(0.6)  # the worker forgot the session: the stored impressions remember it
        second, _ = _items(client, n=2, cursor=cursor)
        assert second and not set(first) & set(second)


def test_new_items_exposure_follows_the_window_without_recomputing_per_page(
    sqlite_url: str,
) -> None:
    """The window of new items slides every second: items leaving it need no recomputation,
    and new items arriving are counted in the background while pages go on with the previous
    statistics (the newer items count as never shown meanwhile)."""
    cache = FeedCache(exposure_seconds=60.0)
    calls: list[list[int]] = []

    def compute(session: Session, pks: list[int]) -> dict:
        calls.append(pks)
        return {"shown": {pk: 1 for pk in pks}, "engaged": {}}

    with Session(create_engine(sqlite_url)) as session:
        first = cache.exposure(session, np.array([3, 1, 2]), compute)
        assert calls == [[1, 2, 3]] and first["shown"] == {1: 1, 2: 1, 3: 1}
        assert cache.exposure(session, np.array([2, 3]), compute) is first  # 1 aged out
        assert calls == [[1, 2, 3]]

        served = cache.exposure(session, np.array([2, 3, 4]), compute)  # 4 is new
        assert served is first  # not waited for
        deadline = time.monotonic() + 5
        while len(calls) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert calls[1] == [2, 3, 4]
        time.sleep(0.05)
        assert cache.exposure(session, np.array([2, 3, 4]), compute)["shown"][4] == 1
