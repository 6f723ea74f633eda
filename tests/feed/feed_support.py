"""A small community with real trained models, for the feed tests (imported by name: pytest puts
this folder on sys.path)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import event, select

from agora.api.app import create_app
from agora.config import FeedConfig, Settings
from agora.db.tables import User
from agora.features.store import load_training_data
from agora.feed.refresher import Refresher
from agora.feed.store import TableCandidates
from agora.models.training import train_models

ADMIN = {"Authorization": "Bearer test-admin"}
NOW = datetime.now(UTC)
TRAINED = {
    "trending": {},
    "itemknn": {},
    "ease": {"reg": 10.0},
    "als": {"factors": 8},
    "content": {},
}
#: item id -> (author, tags, age in days)
ITEMS = {
    **{f"a{i}": (("alice", "alex", "ann")[i % 3], ["python"], 40 + i) for i in range(6)},
    **{f"b{i}": (("bob", "bea")[i % 2], ["garden"], 40 + i) for i in range(6)},
    **{f"c{i}": ("carol", ["music"], 40 + i) for i in range(6)},
    "n0": ("newbie", ["python"], 1),
    "n1": ("newbie", ["garden"], 1.5),
    "f0": ("bob", ["music"], 0.1),
}


def iso(days_ago: float) -> str:
    return (NOW - timedelta(days=days_ago)).isoformat()


def like(user: str, item: str, days_ago: float) -> dict:
    return {
        "event_id": f"{user}-{item}",
        "user_id": user,
        "item_id": item,
        "type": "like",
        "timestamp": iso(days_ago),
    }


def seed(client: TestClient) -> None:
    """Users u0-u5 like python posts, u6-u11 garden posts, u12-u14 music; ``me`` liked a0, a1
    and follows u6, who liked b5 two days ago."""
    for author in ("alice", "alex", "ann", "bob", "bea", "carol", "newbie", "me"):
        assert client.put(f"/users/{author}", json={}, headers=ADMIN).status_code in (200, 201)
    for item, (author, tags, age) in ITEMS.items():
        body = {"title": f"Post {item}", "author_id": author, "tags": tags, "created": iso(age)}
        assert client.put(f"/items/{item}", json=body, headers=ADMIN).status_code in (200, 201)
    events = []
    groups = {"a": range(0, 6), "b": range(6, 12), "c": range(12, 15)}
    for prefix, users in groups.items():
        events += [like(f"u{u}", f"{prefix}{i}", 30 - i) for u in users for i in range(5)]
    events += [like("me", "a0", 20), like("me", "a1", 19), like("u6", "b5", 2)]
    assert client.post("/events", json=events, headers=ADMIN).status_code == 201
    edge = {"source_id": "me", "target_id": "u6", "type": "follow"}
    assert client.post("/edges", json=[edge], headers=ADMIN).status_code in (200, 201)


def make_client(tmp: Path, database_url: str, **overrides: Any) -> TestClient:
    settings = Settings(
        data_dir=tmp / "data",
        database_url=database_url,
        api_key="test-admin",
        api_keys={},
        **overrides,
    )
    return TestClient(create_app(settings))


def train(client: TestClient) -> None:
    settings = client.app.state.settings
    with client.app.state.sessions() as session:
        interactions, side, _ = load_training_data(session, settings.event_weights)
    train_models(interactions, side, list(TRAINED), settings.model_dir, params=TRAINED)
    assert client.post("/admin/reload", headers=ADMIN).status_code == 200


#: no exploration (drawn per page) and no campaigns: a page depends on the ranking only
PREPARED_FEED = FeedConfig(refresh_in_serve=False, exploration=0.0)


def refresh(client: TestClient, feed: FeedConfig = PREPARED_FEED) -> TableCandidates:
    """Every user's record, pages included, as ``agora worker`` stores them."""
    state = client.app.state
    store = TableCandidates(state.sessions)
    Refresher(state.sessions, state.models, store, feed, state.settings.event_weights).refresh_all()
    return store


def first_page(client: TestClient, user: str = "me") -> tuple[list[str], str]:
    """A first page's item ids and how it was ranked (``X-Feed-Ranking``)."""
    answer = client.get(f"/users/{user}/feed?n=20", headers=ADMIN)
    assert answer.status_code == 200, answer.text
    return [i["item_id"] for i in answer.json()["items"]], answer.headers["x-feed-ranking"]


def user_pk(client: TestClient, user: str) -> int:
    with client.app.state.sessions() as session:
        return session.scalar(select(User.id).where(User.external_id == user))


def reads_during(client: TestClient, action: Callable[[], object]) -> list[str]:
    """The SELECT statements ``client``'s app runs on its store for the requests ``action``
    makes. The app's background threads (all named ``agora-...``: the ad book, the state's
    tail, the caches' refreshes) read on their own clocks, and a slow machine lets them fall
    inside ``action``: their statements are not the request's and are not counted."""
    statements: list[str] = []
    engine = client.app.state.sessions.kw["bind"]

    def record(conn, cursor, statement, parameters, context, executemany) -> None:  # noqa: ANN001
        if not threading.current_thread().name.startswith("agora-"):
            statements.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        action()
    finally:
        event.remove(engine, "before_cursor_execute", record)
    return [s for s in statements if s.lstrip().upper().startswith(("SELECT", "WITH"))]
