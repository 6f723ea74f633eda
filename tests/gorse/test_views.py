"""The Gorse routes no client method calls, or calls only one way, driven over HTTP on both
databases: health probes, popular and latest lists with ``user-id`` and ``category``, plain
ids, PUT feedback, and rows written by Agora's own API read through Gorse's shapes."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient
from gorse_support import ADMIN

from agora.api.app import create_app
from agora.config import Settings

KEY = {"X-API-Key": ADMIN}


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def client(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    postgres_schemas: Callable[[], contextlib.AbstractContextManager[str]],
) -> Iterator[TestClient]:
    """One app per database for the module (each test uses users and items of its own)."""
    folder = tmp_path_factory.mktemp(f"gorse-views-{request.param}")
    with contextlib.ExitStack() as stack:
        url = (
            stack.enter_context(postgres_schemas())
            if request.param == "postgres"
            else f"sqlite:///{folder / 'agora.db'}"
        )
        settings = Settings(data_dir=folder / "data", database_url=url, api_key=ADMIN)
        yield stack.enter_context(TestClient(create_app(settings)))


def _items(client: TestClient) -> None:
    items = [
        {"ItemId": "old", "Timestamp": "2024-01-01", "Categories": ["x"]},
        {"ItemId": "mid", "Timestamp": "2024-01-02", "Categories": ["x", "y"]},
        {"ItemId": "new", "Timestamp": "2024-01-03"},
        {"ItemId": "gone", "Timestamp": "2024-01-04", "IsHidden": True, "Categories": ["x"]},
    ]
    assert client.post("/api/items", json=items, headers=KEY).json() == {"RowAffected": 4}


def test_health_probes_need_no_key(client: TestClient) -> None:
    for probe in ("/api/health/live", "/api/health/ready"):
        answer = client.get(probe)
        assert answer.status_code == 200
        assert answer.json()["Ready"] is True and answer.json()["DataStoreConnected"] is True


def test_latest_leaves_out_hidden_items_other_categories_and_the_users_items(
    client: TestClient,
) -> None:
    _items(client)
    latest = client.get("/api/latest", headers=KEY).json()
    assert [s["Id"] for s in latest] == ["new", "mid", "old"]
    assert latest[0]["Score"] == 1704240000.0
    assert [s["Id"] for s in client.get("/api/latest/x", headers=KEY).json()] == ["mid", "old"]
    both = client.get("/api/latest", params=[("category", "x"), ("category", "y")], headers=KEY)
    assert [s["Id"] for s in both.json()] == ["mid"]
    client.post(
        "/api/feedback",
        json=[{"FeedbackType": "read", "UserId": "amy", "ItemId": "mid"}],
        headers=KEY,
    )
    mine = client.get("/api/latest/", params={"user-id": "amy", "n": 5}, headers=KEY)
    assert [s["Id"] for s in mine.json()] == ["new", "old"]
    assert [s["Id"] for s in client.get("/api/latest?n=1&offset=1", headers=KEY).json()] == ["mid"]


def test_before_training_popular_is_empty_and_recommend_falls_back_to_latest(
    client: TestClient,
) -> None:
    _items(client)
    assert client.get("/api/popular", headers=KEY).json() == []
    client.post(
        "/api/feedback",
        json=[{"FeedbackType": "star", "UserId": "cal", "ItemId": "new"}],
        headers=KEY,
    )
    assert client.get("/api/recommend/cal", headers=KEY).json() == ["mid", "old"]
    scored = client.get("/api/recommend/cal/x", headers={**KEY, "X-API-Version": "2"}).json()
    assert [s["Id"] for s in scored] == ["mid", "old"] and set(scored[0]) == {"Id", "Score"}


def test_put_feedback_overwrites_and_post_keeps(client: TestClient) -> None:
    first = {"FeedbackType": "like", "UserId": "dee", "ItemId": "p", "Timestamp": "2024-01-01"}
    client.post("/api/feedback", json=[first], headers=KEY)
    later = {**first, "Timestamp": "2024-02-01", "Comment": "again", "Value": 2}
    client.post("/api/feedback", json=[later], headers=KEY)
    stored = client.get("/api/feedback/like/dee/p", headers=KEY).json()
    assert (stored["Timestamp"], stored["Comment"]) == ("2024-01-01T00:00:00Z", "")
    assert client.put("/api/feedback", json=[later], headers=KEY).json() == {"RowAffected": 1}
    stored = client.get("/api/feedback/like/dee/p", headers=KEY).json()
    assert (stored["Timestamp"], stored["Comment"], stored["Value"]) == (
        "2024-02-01T00:00:00Z",
        "again",
        2.0,
    )
    bare = client.get("/api/item/p", headers=KEY).json()  # created by its feedback, as in Gorse
    assert (bare["Labels"], bare["Categories"], bare["IsHidden"], bare["Comment"]) == (
        None,
        None,
        False,
        "",
    )
    missing = client.get("/api/feedback/star/dee/p", headers=KEY)
    assert (missing.status_code, missing.text) == (404, "star/dee/p: feedback not found")


def test_rows_written_by_agoras_own_api_read_as_gorse_rows(client: TestClient) -> None:
    bearer = {"Authorization": f"Bearer {ADMIN}"}
    client.put("/items/post-1", json={"title": "Hello", "tags": ["t"]}, headers=bearer)
    client.post(
        "/events",
        json={"event_id": "e1", "user_id": "abe", "item_id": "post-1", "type": "share"},
        headers=bearer,
    )
    client.put("/users/abe", json={"attributes": {"gorse": "not an object"}}, headers=bearer)
    item = client.get("/api/item/post-1", headers=KEY).json()
    assert (item["Comment"], item["Labels"], item["IsHidden"], item["Categories"]) == (
        "Hello",
        ["t"],
        False,
        None,
    )
    assert client.get("/api/user/abe", headers=KEY).json() == {
        "UserId": "abe",
        "Labels": None,
        "Subscribe": None,
        "Comment": "",
    }
    assert [
        f["FeedbackType"] for f in client.get("/api/user/abe/feedback", headers=KEY).json()
    ] == ["share"]
    # a Gorse write keeps the platform's own attributes
    client.put("/users/bea", json={"attributes": {"plan": "pro"}}, headers=bearer)
    client.post("/api/user", json={"UserId": "bea", "Comment": "hi"}, headers=KEY)
    assert client.get("/users/bea", headers=bearer).json()["attributes"] == {
        "plan": "pro",
        "gorse": {"labels": None, "subscribe": None, "comment": "hi"},
    }


def test_malformed_bodies_are_a_400_in_plain_text(client: TestClient) -> None:
    broken = client.post(
        "/api/feedback", content=b"[{", headers={**KEY, "Content-Type": "application/json"}
    )
    assert broken.status_code == 400 and broken.text.startswith("malformed JSON at line 1")
    shapeless = client.post("/api/user", json={"Labels": []}, headers=KEY)
    assert (shapeless.status_code, shapeless.text) == (400, "body.UserId: Field required")
    slash = client.post("/api/item", json={"ItemId": "a/b"}, headers=KEY)
    assert slash.status_code == 400 and "'/'" in slash.text
    too_long = client.get(f"/api/user/{'u' * 256}", headers=KEY)
    assert too_long.status_code == 400
    assert too_long.text == "path.user_id: String should have at most 255 characters"
