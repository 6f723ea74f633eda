"""POST /events on SQLite and PostgreSQL: one or many, once each, all or nothing."""

from __future__ import annotations

import socket
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import uvicorn
from api_support import ADMIN, WRITE, counts, event
from fastapi.testclient import TestClient

from agora.api.app import create_app
from agora.config import Settings


def test_single_event_and_list(client: TestClient) -> None:
    one = client.post("/events", json=event(1), headers=WRITE)
    assert one.status_code == 201 and one.json() == {"accepted": 1, "duplicates": 0}
    many = client.post("/events", json=[event(2, item="p2"), event(3, item="p3")], headers=WRITE)
    assert many.status_code == 201 and many.json() == {"accepted": 2, "duplicates": 0}
    assert counts(client)["events"] == 3
    assert client.get("/users/u1", headers=WRITE).json()["n_events"] == 3


def test_resent_event_is_a_success_stored_once(client: TestClient) -> None:
    batch = [event(1), event(2, item="p2")]
    assert client.post("/events", json=batch, headers=WRITE).status_code == 201
    again = client.post("/events", json=batch, headers=WRITE)
    assert again.status_code == 200 and again.json() == {"accepted": 0, "duplicates": 2}
    mixed = client.post("/events", json=[event(1), event(1), event(3)], headers=WRITE)
    assert mixed.json() == {"accepted": 1, "duplicates": 2}
    assert counts(client)["events"] == 3


def test_list_past_the_batch_limit_is_413_and_stores_nothing(client: TestClient) -> None:
    answer = client.post("/events", json=[event(i) for i in range(1001)], headers=WRITE)
    assert answer.status_code == 413
    assert "1000" in answer.json()["detail"]
    assert counts(client)["events"] == 0
    at_limit = client.post("/events", json=[event(i) for i in range(1000)], headers=WRITE)
    assert at_limit.status_code == 201 and at_limit.json()["accepted"] == 1000


def test_one_bad_event_in_a_list_stores_none(client: TestClient) -> None:
    future = (datetime.now(UTC) + timedelta(days=2)).isoformat()
    batch = [event(1), event(2), event(3, timestamp=future), event(4)]
    answer = client.post("/events", json=batch, headers=WRITE)
    assert answer.status_code == 422, answer.text
    (problem,) = answer.json()["problems"]
    assert problem["location"] == "body.2.timestamp"
    assert problem["index"] == 2 and problem["field"] == "timestamp"
    assert "future" in problem["message"]
    assert counts(client) == {k: 0 for k in counts(client)}

    unknown_type = client.post("/events", json=[event(1), event(2, kind="teleport")], headers=WRITE)
    assert unknown_type.status_code == 422
    assert unknown_type.json()["problems"][0]["location"] == "body.1.type"
    assert counts(client)["events"] == 0


def test_a_full_batch_with_bad_rows_names_each_and_stores_nothing(client: TestClient) -> None:
    batch = [event(i, user=f"reader{i}", item=f"post{i}") for i in range(100)]
    bad = [*batch]
    bad[57] = {**batch[57], "timestamp": "yesterday"}
    bad[83] = {**batch[83], "item_id": ""}
    answer = client.post("/events", json=bad, headers=WRITE)
    assert answer.status_code == 422, answer.text
    problems = answer.json()["problems"]
    assert [p["location"] for p in problems] == ["body.57.timestamp", "body.83.item_id"]
    assert counts(client) == {k: 0 for k in counts(client)}  # no event, user or item
    stored = client.post("/events", json=batch, headers=WRITE)
    assert stored.status_code == 201 and stored.json() == {"accepted": 100, "duplicates": 0}
    assert {k: counts(client)[k] for k in ("events", "users", "items")} == {
        "events": 100,
        "users": 100,
        "items": 100,
    }


def test_the_answer_does_not_wait_for_what_is_derived_from_the_events(
    tmp_path: Path, sqlite_url: str
) -> None:
    """What the app derives from new events (engagement points...) runs once the answer is
    sent, over real HTTP: a slow derivation never holds the writer who sent them."""
    app = create_app(Settings(data_dir=tmp_path / "data", database_url=sqlite_url,
                              api_key="test-admin"))  # fmt: skip
    answered, derived = threading.Event(), threading.Event()

    def slow_derivation() -> None:  # waits for the client to have its answer
        if answered.wait(20):
            derived.set()

    app.state.after_event_writes = [slow_derivation]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.05)
        posted = httpx.post(f"http://127.0.0.1:{port}/events", json=[event(1)],
                            headers=ADMIN, timeout=10)  # fmt: skip
        assert posted.status_code == 201 and posted.json()["accepted"] == 1
        answered.set()
        assert derived.wait(10), "the derivation did not run after the answer"
    finally:
        answered.set()
        server.should_exit = True
        thread.join(30)


def test_far_future_single_event_is_422_at_its_field(client: TestClient) -> None:
    answer = client.post("/events", json=event(1, timestamp="2999-01-01T00:00:00Z"), headers=WRITE)
    assert answer.status_code == 422
    assert [p["location"] for p in answer.json()["problems"]] == ["body.timestamp"]
    near = (datetime.now(UTC) + timedelta(seconds=60)).isoformat()  # clock skew is tolerated
    assert client.post("/events", json=event(2, timestamp=near), headers=WRITE).status_code == 201


@pytest.mark.parametrize(
    ("body", "where"),
    [
        (event(1, value="lots"), "body.value"),
        (event(1, timestamp="yesterday"), "body.timestamp"),
        ({**event(1), "user_id": 1.5}, "body.user_id"),
        ({**event(1), "user_id": ""}, "body.user_id"),
        ({**event(1), "item_id": "x" * 256}, "body.item_id"),
        ({**event(1), "colour": "red"}, "body.colour"),
        ({"user_id": "u1", "item_id": "p1", "type": "like"}, "body.event_id"),
        ([event(1), {**event(2), "context": "not-an-object"}], "body.1.context"),
        ([event(1), "just a string"], "body.1"),
        ("a string", "body"),
    ],
)
def test_wrong_types_are_422_with_their_location(client: TestClient, body, where: str) -> None:
    answer = client.post("/events", json=body, headers=WRITE)
    assert answer.status_code == 422, answer.text
    assert where in [p["location"] for p in answer.json()["problems"]]
    assert counts(client)["events"] == 0


def test_malformed_json_is_400_saying_where(client: TestClient) -> None:
    body = b'[\n  {"event_id": "e1", "user_id": "u1",\n   "item_id": "p1" "type": "like"}\n]'
    answer = client.post(
        "/events", content=body, headers={**WRITE, "content-type": "application/json"}
    )
    assert answer.status_code == 400
    detail = answer.json()
    assert detail["line"] == 3 and detail["column"] == 20
    assert "line 3 column 20" in detail["detail"]
    assert counts(client)["events"] == 0


def test_unknown_ids_in_events_are_created(client: TestClient) -> None:
    assert client.get("/users/newbie", headers=ADMIN).status_code == 404
    assert client.get("/items/fresh", headers=ADMIN).status_code == 404
    posted = client.post("/events", json=event(1, user="newbie", item="fresh"), headers=WRITE)
    assert posted.status_code == 201
    assert client.get("/users/newbie", headers=ADMIN).json()["n_events"] == 1
    assert client.get("/items/fresh", headers=ADMIN).json()["item_id"] == "fresh"


def test_integer_ids_are_text_and_timestamps_come_back_utc(client: TestClient) -> None:
    body = {"event_id": 7, "user_id": 42, "item_id": 9, "type": "view"}
    body["timestamp"] = "2024-05-01T12:00:00+02:00"
    assert client.post("/events", json=body, headers=WRITE).status_code == 201
    assert client.get("/users/42", headers=ADMIN).status_code == 200
    item = client.get("/items/9", headers=ADMIN).json()
    assert item["created"].endswith("Z")
