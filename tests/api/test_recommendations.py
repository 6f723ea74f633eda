"""Recommendation endpoints with small models really trained into settings.model_dir."""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from api_support import ADMIN, READ, WRITE, event, make_settings
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from agora.api.app import create_app
from agora.cli.main import app as cli
from agora.config import get_settings
from agora.features.store import load_training_data
from agora.models.registry import MODELS
from agora.models.training import train_models
from agora.serving import service

CLUSTER_A = ["p0", "p1", "p2", "p3"]
CLUSTER_B = ["p4", "p5", "p6", "p7"]
TRAINED = {
    "trending": {},
    "itemknn": {},
    "ease": {"reg": 10.0},
    "als": {"factors": 8, "regularization": 0.1},
}


def _seed(client: TestClient) -> None:
    for n in range(12):
        client.put(
            f"/items/p{n}", json={"title": f"Post {n}", "author_id": "writer"}, headers=WRITE
        )
    events = []
    for u in ["u0", "u2", "u3", "u4", "u5"]:
        events += [event(f"{u}-{i}", user=u, item=i) for i in CLUSTER_A]
    for u in ["u6", "u7", "u8", "u9"]:
        events += [event(f"{u}-{i}", user=u, item=i) for i in CLUSTER_B]
    events += [event("u1-p0", user="u1", item="p0"), event("u1-p1", user="u1", item="p1")]
    events += [event(f"{u}-p8", user=u, item="p8", kind="view") for u in ["u0", "u6", "u7"]]
    answer = client.post("/events", json=events, headers=WRITE)
    assert answer.status_code == 201, answer.text


def _train(client: TestClient) -> None:
    settings = client.app.state.settings
    with client.app.state.sessions() as session:
        interactions, side, _ = load_training_data(session, settings.event_weights)
    train_models(interactions, side, list(TRAINED), settings.model_dir, params=TRAINED)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """One app with seeded data and trained models, shared by the read-only tests below."""
    tmp = tmp_path_factory.mktemp("recs")
    with TestClient(create_app(make_settings(tmp, f"sqlite:///{tmp / 'agora.db'}"))) as client:
        _seed(client)
        _train(client)
        assert client.post("/admin/reload", headers=ADMIN).status_code == 200
        yield client


def _ids(answer) -> list[str]:  # noqa: ANN001
    assert answer.status_code == 200, answer.text
    return [i["item_id"] for i in answer.json()["items"]]


def test_models_answer_503_until_trained_then_reload(sqlite_url: str, tmp_path: Path) -> None:
    with TestClient(create_app(make_settings(tmp_path, sqlite_url))) as client:
        _seed(client)
        before = client.get("/users/u1/recommendations", headers=READ)
        assert before.status_code == 503 and "agora train" in before.json()["detail"]
        assert client.get("/models", headers=READ).json() == {}
        _train(client)
        assert client.get("/users/u1/recommendations", headers=READ).status_code == 503
        reloaded = client.post("/admin/reload", headers=ADMIN)
        assert reloaded.status_code == 200
        assert set(reloaded.json()["models"]) == set(TRAINED)
        models = client.get("/models", headers=READ).json()
        assert set(models) == set(TRAINED)
        assert models["itemknn"]["meta"]["n_items"] == 12 and models["itemknn"]["version"]
        assert client.get("/health").json()["models"] == reloaded.json()["models"]
        assert "itemknn" in client.get("/").text


def test_recommendations_exclude_touched_items_and_say_which_model(
    trained: TestClient,
) -> None:
    answer = trained.get("/users/u1/recommendations?n=5&model=itemknn", headers=READ)
    body = answer.json()
    assert body["user_id"] == "u1" and body["model"] == "itemknn"
    items = _ids(answer)
    assert 0 < len(items) <= 5
    assert not {"p0", "p1"} & set(items)
    assert items[0] in {"p2", "p3"}  # co-occurs with what u1 liked
    first = body["items"][0]
    assert first["model"] == "itemknn" and first["title"] == f"Post {items[0][1:]}"
    assert first["author_id"] == "writer" and isinstance(first["score"], float)


def test_default_model_is_the_best_on_holdout(trained: TestClient) -> None:
    meta = trained.get("/models", headers=READ).json()
    holdout = {
        name: info["meta"]["metrics"]["holdout_ndcg@10"]
        for name, info in meta.items()
        if name not in ("trending", "latest")
    }
    answer = trained.get("/users/u1/recommendations?n=3", headers=READ)
    chosen = answer.json()["model"]
    assert holdout[chosen] == max(holdout.values())  # ties may go either way
    assert {i["model"] for i in answer.json()["items"]} == {chosen}
    assert not {"p0", "p1"} & set(_ids(answer))


def test_an_event_posted_after_training_removes_the_item(trained: TestClient) -> None:
    for model in ["itemknn", "ease"]:
        url = f"/users/u2/recommendations?n=5&model={model}"
        top = _ids(trained.get(url, headers=READ))[0]
        posted = trained.post(
            "/events",
            json=event(f"late-{model}", user="u2", item=top, kind="dislike"),
            headers=WRITE,
        )
        assert posted.status_code == 201
        assert top not in _ids(trained.get(url, headers=READ))


def test_als_answers_from_its_item_index_what_scoring_every_item_gives(
    trained: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ALS's best items come from the served version's item index: the same ranking as the
    model scoring every item, never an item the user touched, also for a user whose event
    came after training (a folded-in vector); the route never scores every item."""
    state = trained.app.state
    als = state.models.get("als")
    index = state.models.item_index(als)
    assert index is state.models.item_index(als)  # one per served version
    late = event("late-index", user="u6", item="p0", kind="like")
    assert trained.post("/events", json=late, headers=WRITE).status_code == 201
    for user in ["u1", "u3", "u6", "u9"]:
        with state.sessions() as session:
            rows = service.user_event_rows(session, user)
        history = service.user_history(als, rows, state.settings.event_weights)
        at = als.user_index.get(user, -1)
        items, scores = service.top_items(als, index, at, history, 8)
        _, every_scores = service.top_items(als, None, at, history, 8)
        own = np.asarray(als.model.score(np.array([at]), history.strength))[0][items]
        np.testing.assert_allclose(own, every_scores, rtol=1e-5)  # rank by rank, ties aside
        np.testing.assert_allclose(scores, every_scores, rtol=1e-5)
        assert not set(items.tolist()) & set(history.touched.tolist())

    def scoring_every_item(*args: object, **kwargs: object) -> None:
        raise AssertionError("the route scored every item")

    monkeypatch.setattr(als.model, "recommend", scoring_every_item)
    answer = _ids(trained.get("/users/u6/recommendations?n=6&model=als", headers=READ))
    assert answer and "p0" not in answer


def test_new_user_gets_trending(trained: TestClient) -> None:
    answer = trained.get("/users/stranger/recommendations?n=4&model=itemknn", headers=READ)
    body = answer.json()
    assert body["model"] == "itemknn"
    assert {i["model"] for i in body["items"]} == {"trending"}
    assert _ids(answer) == _ids(trained.get("/items/trending?n=4", headers=READ))
    assert _ids(answer)[0] in CLUSTER_A  # five users each


def test_user_whose_only_events_are_on_items_newer_than_the_model_gets_trending(
    trained: TestClient,
) -> None:
    late = event("newcomer-1", user="newcomer", item="brand-new-post", kind="like")
    assert trained.post("/events", json=late, headers=WRITE).status_code == 201
    answer = trained.get("/users/newcomer/recommendations?n=4&model=ease", headers=READ)
    assert {i["model"] for i in answer.json()["items"]} == {"trending"}
    assert "brand-new-post" not in _ids(answer)
    assert _ids(answer) == _ids(trained.get("/items/trending?n=4", headers=READ))


def test_unknown_and_untrained_models(trained: TestClient) -> None:
    unknown = trained.get("/users/u1/recommendations?model=nosuch", headers=READ)
    assert unknown.status_code == 422
    (problem,) = unknown.json()["problems"]
    assert problem["location"] == "query.model" and "itemknn" in problem["message"]
    untrained = trained.get("/users/u1/recommendations?model=bpr", headers=READ)
    assert untrained.status_code == 503
    assert "'bpr' is not trained" in untrained.json()["detail"]
    assert "agora train" in untrained.json()["detail"]


def test_similar_items(trained: TestClient) -> None:
    answer = trained.get("/items/p4/similar?n=3", headers=READ)
    assert answer.json()["model"] == "itemknn" and answer.json()["item_id"] == "p4"
    items = _ids(answer)
    assert "p4" not in items and set(items) <= set(CLUSTER_B)
    missing = trained.get("/items/nope/similar", headers=READ)
    assert missing.status_code == 404 and "nope" in missing.json()["detail"]
    trained.put("/items/brand-new", json={"title": "After training"}, headers=WRITE)
    newer = trained.get("/items/brand-new/similar", headers=READ)
    assert newer.status_code == 404 and "retrain" in newer.json()["detail"]
    assert trained.get("/items/p4/similar?model=nosuch", headers=READ).status_code == 422
    # "auto", which the document lists for every model parameter, is the default here too
    auto = trained.get("/items/p4/similar?n=3&model=auto", headers=READ)
    assert auto.status_code == 200 and auto.json()["model"] == "itemknn"


def test_trending_and_deleted_items(trained: TestClient) -> None:
    answer = trained.get("/items/trending?n=20", headers=READ)
    assert answer.json()["model"] == "trending"
    items = _ids(answer)
    assert "p9" in items  # trending ranks every stored item
    assert trained.delete("/items/p9", headers=ADMIN).status_code == 204
    assert "p9" not in _ids(trained.get("/items/trending?n=20", headers=READ))
    assert "p9" not in _ids(trained.get("/users/stranger/recommendations?n=20", headers=READ))


def test_explanations_name_past_items_and_people_followed(trained: TestClient) -> None:
    follow = {"source_id": "u1", "target_id": "u0", "type": "follow"}
    assert trained.post("/edges", json=follow, headers=WRITE).status_code in (200, 201)
    plain = trained.get("/users/u1/recommendations?n=3&model=itemknn", headers=READ).json()
    assert "because" not in plain["items"][0]
    answer = trained.get(
        "/users/u1/recommendations?n=3&model=itemknn&explain=true", headers=READ
    ).json()
    assert [i["item_id"] for i in answer["items"]] == [i["item_id"] for i in plain["items"]]
    assert any(i["item_id"] in CLUSTER_A for i in answer["items"])
    for item in answer["items"]:
        past = {b["item_id"] for b in item["because"]}
        assert past and past <= {"p0", "p1"}  # only what u1 really engaged with
        assert item["because"][0]["title"] and item["reason"].startswith("because you engaged")
        if item["item_id"] in CLUSTER_A:
            assert item["ties_engaged"] == ["u0"] and "1 person you follow" in item["reason"]


def test_each_untrained_models_503_names_the_command_that_trains_it(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(tmp_path, sqlite_url)
    with TestClient(create_app(settings)) as client:
        _seed(client)
        for name in MODELS:
            answer = client.get(f"/users/u1/recommendations?model={name}", headers=READ)
            assert answer.status_code == 503, (name, answer.text)
            assert f"`agora train --models {name}`" in answer.json()["detail"], answer.text
        auto = client.get("/users/u1/recommendations", headers=READ).json()["detail"]
        assert "`agora train`" in auto, auto
        # the command the answer names trains the model: run it as given, reload, served
        detail = client.get("/users/u1/recommendations?model=sasrec", headers=READ).json()
        command = re.search(r"`(agora train --models sasrec)`", detail["detail"]).group(1)
        monkeypatch.setenv("AGORA_DATA_DIR", str(settings.data_dir))
        monkeypatch.setenv("AGORA_DATABASE_URL", sqlite_url)
        get_settings.cache_clear()
        try:
            ran = CliRunner().invoke(cli, shlex.split(command)[1:])
        finally:
            get_settings.cache_clear()
        assert ran.exit_code == 0, ran.output
        assert client.post("/admin/reload", headers=ADMIN).status_code == 200
        served = client.get("/users/u1/recommendations?model=sasrec", headers=READ)
        assert served.status_code == 200, served.text
