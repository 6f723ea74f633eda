"""Times a client sends: before the earliest accepted time or too far ahead is a 422 at the field,
for every record kind the write routes take; the bounds are settings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from api_support import ADMIN, WRITE, counts, event, make_settings
from fastapi.testclient import TestClient

from agora.api.app import create_app

ANCIENT = "0001-01-01T00:00:00Z"
BEFORE_EPOCH = "1969-12-31T23:59:59Z"
EPOCH = "1970-01-01T00:00:00Z"


@pytest.mark.parametrize("when", [ANCIENT, BEFORE_EPOCH, "0001-01-01T00:00:00+01:00"])
def test_an_event_before_the_earliest_time_is_422_at_its_field(
    client: TestClient, when: str
) -> None:
    one = client.post("/events", json=event(1, timestamp=when), headers=WRITE)
    assert one.status_code == 422, one.text
    (problem,) = one.json()["problems"]
    assert problem["location"] == "body.timestamp"
    assert "earliest accepted time" in problem["message"] or "out of range" in problem["message"]
    batch = [event(i) for i in range(3)] + [event(3, timestamp=when)]
    many = client.post("/events", json=batch, headers=WRITE)
    assert many.status_code == 422
    assert [p["location"] for p in many.json()["problems"]] == ["body.3.timestamp"]
    assert counts(client)["events"] == 0


def test_the_earliest_time_itself_is_accepted(client: TestClient) -> None:
    answer = client.post("/events", json=event(1, timestamp=EPOCH), headers=WRITE)
    assert answer.status_code == 201, answer.text


def test_every_record_kind_checks_its_created_time(client: TestClient) -> None:
    future = (datetime.now(UTC) + timedelta(days=3)).isoformat()
    for when in (ANCIENT, future):
        user = client.put("/users/u1", json={"created": when}, headers=WRITE)
        assert user.status_code == 422, user.text
        assert [p["location"] for p in user.json()["problems"]] == ["body.created"]
        item = client.put("/items/p1", json={"created": when}, headers=WRITE)
        assert [p["location"] for p in item.json()["problems"]] == ["body.created"]
        group = client.put("/groups/g1", json={"created": when}, headers=WRITE)
        assert [p["location"] for p in group.json()["problems"]] == ["body.created"]
        edges = [
            {"source_id": "a", "target_id": "b", "type": "follow"},
            {"source_id": "a", "target_id": "c", "type": "follow", "created": when},
        ]
        edge = client.post("/edges", json=edges, headers=WRITE)
        assert edge.status_code == 422, edge.text
        assert [p["location"] for p in edge.json()["problems"]] == ["body.1.created"]
    assert client.put("/groups/g1", json={}, headers=WRITE).status_code == 200
    member = client.post(
        "/groups/g1/members", json={"user_id": "a", "created": ANCIENT}, headers=WRITE
    )
    assert member.status_code == 422
    assert [p["location"] for p in member.json()["problems"]] == ["body.created"]
    assert counts(client)["users"] == 0 and counts(client)["edges"] == 0


def test_the_earliest_time_is_a_setting(tmp_path: Path, sqlite_url: str) -> None:
    settings = make_settings(tmp_path, sqlite_url, earliest_timestamp="2010-01-01T00:00:00Z")
    with TestClient(create_app(settings)) as client:
        old = client.post("/events", json=event(1, timestamp="2009-12-31T00:00:00Z"), headers=WRITE)
        assert old.status_code == 422
        (problem,) = old.json()["problems"]
        assert problem["location"] == "body.timestamp"
        assert "2010-01-01T00:00:00+00:00" in problem["message"]
        assert "AGORA_EARLIEST_TIMESTAMP" in problem["message"]
        ok = client.post("/events", json=event(2, timestamp="2010-01-02T00:00:00Z"), headers=WRITE)
        assert ok.status_code == 201


def test_the_earliest_time_cannot_be_set_before_the_floor(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="1970"):
        make_settings(tmp_path, "sqlite://", earliest_timestamp="1900-01-01T00:00:00Z")


def test_times_in_other_bodies_are_bounded_too(sqlite_client: TestClient) -> None:
    """Bodies are refused; query times are held to the window (tests/api/test_query_times.py)."""
    client = sqlite_client
    task = {"task_id": "t", "title": "t", "event_type": "like", "target": 1,
            "starts": ANCIENT, "ends": "2030-01-01T00:00:00Z"}  # fmt: skip
    answer = client.post("/tasks", json=task, headers=ADMIN)
    assert answer.status_code == 422
    assert [p["location"] for p in answer.json()["problems"]] == ["body.starts"]
    campaign = {"campaign_id": "c", "advertiser": "a", "items": ["p1"], "bid": 1,
                "daily_budget": 10, "end_at": "9999-01-01T00:00:00Z"}  # fmt: skip
    answer = client.post("/campaigns", json=campaign, headers=ADMIN)
    assert answer.status_code == 422
    assert [p["location"] for p in answer.json()["problems"]] == ["body.end_at"]
