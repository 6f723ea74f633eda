"""A small community with one member, ``zed-7f3a``, who has left a trace in every domain
(imported by name: pytest puts this folder on sys.path)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from agora.api.app import create_app
from agora.config import Settings
from agora.evaluation.training import train_from_store

ADMIN = {"Authorization": "Bearer test-admin"}
#: distinctive, so that finding it anywhere (a file, a row) means it was not erased
ZED = "zed-7f3a"
NOW = datetime.now(UTC)
#: the models trained here; seeds fixed so that two stores give the same fits
TRAINED = {"trending": {}, "itemknn": {}, "als": {"factors": 8}, "sasrec": {"epochs": 2}}


def iso(days_ago: float) -> str:
    return (NOW - timedelta(days=days_ago)).isoformat()


def make_client(tmp: Path, database_url: str, **overrides: Any) -> TestClient:
    settings = Settings(
        data_dir=tmp / "data",
        database_url=database_url,
        api_key="test-admin",
        api_keys={"w": ["write"]},
        model_params=TRAINED,
        erasure_retrain_seconds=0,
        **overrides,
    )
    return TestClient(create_app(settings))


def seed(client: TestClient, with_zed: bool = True) -> None:
    """Twelve members liking posts on three topics; ``zed`` (added last, so that the other
    rows are numbered as in a store that never had them) likes, comments, follows and is
    followed, belongs to a group, writes a post, sets feed controls, hides a post, reads a
    page, raises a flag and earns points."""
    users = [f"u{i}" for i in range(12)] + ([ZED] if with_zed else [])
    for user in users:
        assert client.put(f"/users/{user}", json={}, headers=ADMIN).status_code == 201
    for i in range(18):
        body = {"title": f"Post {i}", "author_id": f"u{i % 12}", "tags": [f"t{i % 3}"]}
        assert client.put(f"/items/p{i}", json=body, headers=ADMIN).status_code == 201
    events = [
        {
            "event_id": f"{u}-p{(u * 5 + k) % 18}",
            "user_id": f"u{u}",
            "item_id": f"p{(u * 5 + k) % 18}",
            "type": "like",
            "timestamp": iso(30 - k),
        }
        for u in range(12)
        for k in range(6)
    ]
    assert client.post("/events", json=events, headers=ADMIN).status_code == 201
    if not with_zed:
        return
    body = {"title": "Zed's own post", "author_id": ZED, "tags": ["t0"]}
    assert client.put("/items/pz", json=body, headers=ADMIN).status_code == 201
    zed_events = [
        {"event_id": f"z{k}", "user_id": ZED, "item_id": f"p{k}", "type": "like",
         "timestamp": iso(10 - k)}
        for k in range(7)
    ] + [
        {"event_id": "zc", "user_id": ZED, "item_id": "p8", "type": "comment",
         "timestamp": iso(2), "context": {"text": "zed's comment, personal"}},
        {"event_id": "u3-pz", "user_id": "u3", "item_id": "pz", "type": "like",
         "timestamp": iso(1)},
    ]  # fmt: skip
    assert client.post("/events", json=zed_events, headers=ADMIN).status_code == 201
    edges = [
        {"source_id": ZED, "target_id": "u1", "type": "follow"},
        {"source_id": "u2", "target_id": ZED, "type": "follow"},
    ]
    assert client.post("/edges", json=edges, headers=ADMIN).status_code in (200, 201, 204)
    assert client.put("/groups/g1", json={"name": "Gardeners"}, headers=ADMIN).status_code in (
        200,
        201,
    )
    member = client.post("/groups/g1/members", json={"user_id": ZED}, headers=ADMIN)
    assert member.status_code in (200, 201)
    controls = client.patch(f"/users/{ZED}/feed/settings", json={"diversity": 0.7}, headers=ADMIN)
    assert controls.status_code == 200
    mute = {"kind": "mute_author", "author_id": ZED}
    assert client.post("/users/u4/feedback", json=mute, headers=ADMIN).status_code == 204
    hide = {"kind": "hide", "item_id": "p9"}
    assert client.post(f"/users/{ZED}/feedback", json=hide, headers=ADMIN).status_code == 204
    flag = {"user_id": ZED, "reason": "spam"}
    assert client.post("/items/p3/flags", json=flag, headers=ADMIN).status_code in (200, 201, 204)


def train(client: TestClient) -> None:
    """Fit :data:`TRAINED` on the store as ``agora train`` would, and load the new versions."""
    settings = client.app.state.settings
    with client.app.state.sessions() as session:
        train_from_store(
            session, list(TRAINED), settings.model_dir, settings.event_weights, TRAINED
        )
    assert client.post("/admin/reload", headers=ADMIN).status_code == 200
