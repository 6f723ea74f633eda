"""``GET /items/{id}/similar`` for an item posted after training: its content neighbours from a
really trained content model, or a 404 that says why when no content model is trained."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from agora.api.app import create_app
from agora.client import Agora
from agora.config import Settings
from agora.features.store import load_training_data
from agora.models.training import train_models

KEY = {"Authorization": "Bearer test-admin"}
#: item id -> (title, body, tags): two topics, posted before training
POSTS = {
    "g1": ("Pruning roses in spring", "Cut the old canes of your roses.", ["garden"]),
    "g2": ("Compost for vegetable beds", "Compost feeds the soil of the beds.", ["garden"]),
    "g3": ("Watering tomatoes in summer", "Tomatoes want deep watering.", ["garden"]),
    "c1": ("Python decorators explained", "A decorator wraps a function.", ["python"]),
    "c2": ("Async functions in Python", "Await a coroutine in an event loop.", ["python"]),
    "c3": ("Testing Python code with pytest", "Fixtures and asserts in pytest.", ["python"]),
}
LATE = {"title": "When to prune climbing roses", "body": "Prune roses after they flower.",
        "tags": ["garden"]}  # fmt: skip


def _store(client: TestClient) -> None:
    for item, (title, body, tags) in POSTS.items():
        answer = client.put(f"/items/{item}", json={"title": title, "body": body, "tags": tags},
                            headers=KEY)  # fmt: skip
        assert answer.status_code == 201, answer.text
    liked = {"ann": ["g1", "g2", "g3"], "bob": ["c1", "c2", "c3"], "cy": ["g1", "c1"]}
    events = [
        {"event_id": f"{user}-{item}", "user_id": user, "item_id": item, "type": "like"}
        for user, items in liked.items()
        for item in items
    ]
    assert client.post("/events", json=events, headers=KEY).status_code == 201


def _train(client: TestClient, names: list[str]) -> None:
    settings = client.app.state.settings
    with client.app.state.sessions() as session:
        interactions, side, _ = load_training_data(session, settings.event_weights)
    train_models(interactions, side, names, settings.model_dir)
    assert client.post("/admin/reload", headers=KEY).status_code == 200


@pytest.fixture
def settings(database_url: str, tmp_path: Path, migrated_store: Callable[[str], str]) -> Settings:
    """Settings of the app on a copy of the run's migrated store."""
    url = migrated_store(database_url)
    return Settings(data_dir=tmp_path / "data", database_url=url, api_key="test-admin")


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as client:
        _store(client)
        yield client


def _similar(client: TestClient, item: str, **params: str) -> dict:
    answer = client.get(f"/items/{item}/similar", params={"n": 3, **params}, headers=KEY)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_an_item_posted_after_training_gets_its_content_neighbours(
    client: TestClient, settings: Settings
) -> None:
    _train(client, ["itemknn", "content"])
    assert client.put("/items/late", json=LATE, headers=KEY).status_code == 201
    body = _similar(client, "late")
    assert body["model"] == "content" and body["item_id"] == "late"
    found = [i["item_id"] for i in body["items"]]
    assert found[0] == "g1"  # the other post about pruning roses
    assert set(found) <= {"g1", "g2", "g3"}  # only garden posts share its words and tag
    assert all(i["model"] == "content" and i["title"] for i in body["items"])
    assert _similar(client, "late", model="content")["items"] == body["items"]
    assert _similar(client, "g2")["model"] == "itemknn"  # items the model knows: unchanged
    with Agora(settings) as agora:  # the in-process facade answers the same
        assert [r.item_id for r in agora.similar("late", n=3)] == found


def test_the_content_model_answers_for_an_item_it_was_trained_on_after_the_asked_model(
    client: TestClient,
) -> None:
    _train(client, ["itemknn"])
    assert client.put("/items/late", json=LATE, headers=KEY).status_code == 201
    _train(client, ["content"])
    body = _similar(client, "late")
    assert body["model"] == "content" and body["items"][0]["item_id"] == "g1"


def test_without_a_content_model_a_new_item_is_a_404_that_says_how_to_get_one(
    client: TestClient,
) -> None:
    _train(client, ["itemknn"])
    assert client.put("/items/late", json=LATE, headers=KEY).status_code == 201
    answer = client.get("/items/late/similar", headers=KEY)
    assert answer.status_code == 404
    detail = answer.json()["detail"]
    assert "no content model is trained" in detail and "agora train --models content" in detail


def test_a_new_item_that_shares_no_word_or_tag_has_no_neighbours(client: TestClient) -> None:
    _train(client, ["itemknn", "content"])
    alien = {"title": "Zzyzx qwfp", "body": "", "tags": ["nothing-alike"]}
    assert client.put("/items/alien", json=alien, headers=KEY).status_code == 201
    body = _similar(client, "alien")
    assert body == {"item_id": "alien", "model": "content", "items": []}
