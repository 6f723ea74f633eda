"""API keys and scopes, on SQLite and PostgreSQL: refused requests store nothing."""

from __future__ import annotations

import pytest
from api_support import ADMIN, READ, WRITE, counts, event
from fastapi.testclient import TestClient

from agora.api.auth import authenticate, expand
from agora.config import Settings

EMPTY = {"users": 0, "items": 0, "events": 0, "edges": 0, "groups": 0, "memberships": 0}


def test_health_is_open(client: TestClient) -> None:
    answer = client.get("/health")
    assert answer.status_code == 200
    body = answer.json()
    assert body["status"] == "ok" and body["database"] == "ok" and body["models"] == {}


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer not-a-key"},
        {"Authorization": "Bearer"},
        {"Authorization": "Basic dGVzdC1hZG1pbjo="},
        {"Authorization": "test-admin"},
        {"Authorization": "Bearer tést-admin".encode()},
    ],
    ids=["missing", "wrong", "empty", "basic", "no-scheme", "non-ascii"],
)
def test_missing_or_unknown_key_is_401_and_stores_nothing(
    client: TestClient, headers: dict
) -> None:
    answer = client.post("/events", json=[event(1), event(2)], headers=headers)
    assert answer.status_code == 401, answer.text
    assert answer.headers["www-authenticate"].startswith("Bearer")
    assert client.put("/users/u9", json={}, headers=headers).status_code == 401
    assert client.get("/users/u9", headers=headers).status_code == 401
    assert counts(client) == EMPTY


def test_auth_comes_before_the_body(client: TestClient) -> None:
    """Without a key, even a malformed or oversized body gets 401, not a parse error."""
    bad = client.post("/events", content=b"{not json", headers={"content-type": "application/json"})
    assert bad.status_code == 401
    long = client.post("/events", json=[event(i) for i in range(1001)])
    assert long.status_code == 401
    assert counts(client) == EMPTY


def test_read_key_on_write_routes_is_403_and_stores_nothing(client: TestClient) -> None:
    assert client.put("/users/keep", json={}, headers=ADMIN).status_code == 201
    before = counts(client)
    attempts = [
        client.post("/events", json=event(1), headers=READ),
        client.put("/users/u2", json={"attributes": {"a": 1}}, headers=READ),
        client.put("/items/p2", json={"title": "x"}, headers=READ),
        client.post(
            "/edges", json={"source_id": "a", "target_id": "b", "type": "follow"}, headers=READ
        ),
        client.put("/groups/g", json={}, headers=READ),
    ]
    for answer in attempts:
        assert answer.status_code == 403, answer.text
        assert "write" in answer.json()["detail"]
    erase = client.delete("/users/keep", headers=READ)
    assert erase.status_code == 403 and "admin" in erase.json()["detail"]
    assert counts(client) == before
    assert client.get("/users/keep", headers=READ).status_code == 200


def test_scopes_nest_admin_write_read(client: TestClient) -> None:
    # write implies read
    assert client.post("/events", json=event(1), headers=WRITE).status_code == 201
    assert client.get("/users/u1", headers=WRITE).status_code == 200
    assert client.get("/users/u1", headers=READ).status_code == 200
    # only admin reloads models
    assert client.post("/admin/reload", headers=READ).status_code == 403
    assert client.post("/admin/reload", headers=WRITE).status_code == 403
    reloaded = client.post("/admin/reload", headers=ADMIN)
    assert reloaded.status_code == 200 and reloaded.json() == {"models": {}}


def test_keys_are_matched_exactly(tmp_path) -> None:
    settings = Settings(data_dir=tmp_path, api_key="adm", api_keys={"k": ["READ", "bogus"]})
    assert authenticate(settings, "adm").scopes == frozenset({"admin", "write", "read", "metrics"})
    assert authenticate(settings, "k").scopes == frozenset({"read"})
    for wrong in ["", "ad", "adm ", "admin", "K", "é"]:
        assert authenticate(settings, wrong) is None
    assert authenticate(Settings(data_dir=tmp_path, api_key=None, api_keys={}), "") is None
    assert expand(["write"]) == frozenset({"write", "read"})
