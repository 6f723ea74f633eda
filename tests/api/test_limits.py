"""Per-key rate limits as clients see them: a 429 with ``Retry-After`` past the burst, RateLimit
headers on every keyed answer, refill over time, one bucket per key and route class, buckets
shared through Redis by every worker of two real servers, requests served while Redis is down,
and no limits at all when they are switched off."""

from __future__ import annotations

import json
import logging
import socket
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_support import ADMIN, READ, WRITE, counts, event, make_settings
from fastapi.testclient import TestClient

from agora.api.app import create_app
from agora.api.auth import fingerprint
from agora.config import LimitsConfig

LIMITED = ("ratelimit-limit", "ratelimit-remaining", "ratelimit-reset")


def _limits(**classes: dict[str, float]) -> LimitsConfig:
    return LimitsConfig(classes=classes)


@pytest.fixture
def limited(tmp_path: Path, sqlite_url: str) -> Iterator[Callable[..., TestClient]]:
    """An app on SQLite with the given settings overrides (limits, Redis...)."""
    clients: list[TestClient] = []

    def make(**overrides: Any) -> TestClient:
        overrides.setdefault("feed", {"refresh_in_serve": False})
        client = TestClient(create_app(make_settings(tmp_path, sqlite_url, **overrides)))
        clients.append(client.__enter__())
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


def _headers(answer: httpx.Response) -> dict[str, str]:
    return {name: answer.headers[name] for name in LIMITED if name in answer.headers}


def test_past_the_burst_a_key_gets_429_naming_the_limit_with_retry_after(limited) -> None:
    client = limited(limits=_limits(read={"rate": 0.5, "burst": 3}))
    answers = [client.get("/items/latest", headers=READ) for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert [_headers(a)["ratelimit-remaining"] for a in answers] == ["2", "1", "0", "0"]
    assert {_headers(a)["ratelimit-limit"] for a in answers} == {"3"}
    # a full bucket again: 3 tokens at 0.5 a second
    assert _headers(answers[2])["ratelimit-reset"] == "6"
    refused = answers[3]
    assert refused.headers["retry-after"] == "2"  # one token at 0.5 a second, rounded up
    body = refused.json()
    assert "'read'" in body["detail"] and "0.5 requests a second" in body["detail"]
    assert "bursts of 3" in body["detail"]
    assert body["request_id"] == refused.headers["x-request-id"]
    assert refused.headers["content-type"].startswith("application/json")


def test_a_refused_write_stores_nothing(limited) -> None:
    client = limited(limits=_limits(events={"rate": 0.01, "burst": 1}))
    assert client.post("/events", json=event(1), headers=WRITE).status_code == 201
    before = counts(client)
    refused = client.post("/events", json=[event(2), event(3)], headers=WRITE)
    assert refused.status_code == 429, refused.text
    assert int(refused.headers["retry-after"]) >= 99  # 1 token at 0.01 a second
    assert counts(client) == before


def test_the_bucket_refills_over_time(limited) -> None:
    client = limited(limits=_limits(read={"rate": 2, "burst": 2}))
    assert [client.get("/items/latest", headers=READ).status_code for _ in range(3)] == [
        200,
        200,
        429,
    ]
    time.sleep(0.6)  # 1.2 tokens
    assert client.get("/items/latest", headers=READ).status_code == 200
    assert client.get("/items/latest", headers=READ).status_code == 429


def test_each_key_and_route_class_has_its_own_bucket(limited) -> None:
    client = limited(
        api_keys={"r": ["read"], "r2": ["read"], "w": ["write"]},
        limits=_limits(
            read={"rate": 0.01, "burst": 2},
            write={"rate": 0.01, "burst": 2},
            events={"rate": 0.01, "burst": 1},
        ),
    )
    other = {"Authorization": "Bearer r2"}
    assert [client.get("/items/latest", headers=READ).status_code for _ in range(3)] == [
        200,
        200,
        429,
    ]
    assert client.get("/items/latest", headers=other).status_code == 200  # another key
    # the write key: its read bucket is its own, and POST /events is the events class, not write
    assert client.get("/items/latest", headers=WRITE).status_code == 200
    assert client.post("/events", json=event(1), headers=WRITE).status_code == 201
    assert client.post("/events", json=event(2), headers=WRITE).status_code == 429
    assert client.put("/users/u9", json={}, headers=WRITE).status_code == 201
    assert client.put("/users/u8", json={}, headers=WRITE).status_code == 201
    assert client.put("/users/u7", json={}, headers=WRITE).status_code == 429


def test_a_key_can_have_buckets_of_its_own(limited) -> None:
    client = limited(
        api_keys={"r": ["read"], "r2": ["read"]},
        limits=LimitsConfig(
            classes={"read": {"rate": 0.01, "burst": 1}},
            keys={fingerprint("r2"): {"read": {"rate": 0.01, "burst": 3}}},
        ),
    )
    other = {"Authorization": "Bearer r2"}
    assert [client.get("/items/latest", headers=READ).status_code for _ in range(2)] == [200, 429]
    assert [client.get("/items/latest", headers=other).status_code for _ in range(4)] == [
        200,
        200,
        200,
        429,
    ]


def test_open_routes_and_refused_keys_are_not_charged(limited) -> None:
    client = limited(limits=_limits(read={"rate": 0.01, "burst": 2}))
    for _ in range(5):
        health = client.get("/health")
        assert health.status_code == 200 and not _headers(health)
        assert (
            client.get("/items/latest", headers={"Authorization": "Bearer nope"}).status_code == 401
        )
        assert client.get("/admin/audit", headers=READ).status_code == 403
    assert [client.get("/items/latest", headers=READ).status_code for _ in range(3)] == [
        200,
        200,
        429,
    ]


def test_a_request_with_an_unknown_query_parameter_is_charged_too(limited) -> None:
    client = limited(limits=_limits(read={"rate": 0.01, "burst": 1}))
    assert client.get("/items/latest?top=3", headers=READ).status_code == 422
    refused = client.get("/items/latest?top=3", headers=READ)
    assert refused.status_code == 429 and "retry-after" in refused.headers


def test_limits_switched_off(limited) -> None:
    client = limited(
        limits=LimitsConfig(enabled=False, classes={"read": {"rate": 0.01, "burst": 1}})
    )
    for _ in range(20):
        answer = client.get("/items/latest", headers=READ)
        assert answer.status_code == 200 and not _headers(answer)
    document = client.get("/openapi.json").json()
    assert not any(
        "rate limit" in op["responses"].get("429", {}).get("description", "")
        for ops in document["paths"].values()
        for op in ops.values()
    )  # a route's own 429 (a spent privacy budget) stays documented


def test_the_document_gives_every_limited_operation_its_429(limited) -> None:
    client = limited(limits=LimitsConfig(classes={"metrics": None}))
    document = client.get("/openapi.json").json()
    operations = [
        (f"{method.upper()} {path}", op)
        for path, ops in document["paths"].items()
        for method, op in ops.items()
    ]
    keyed = [(name, op) for name, op in operations if op.get("security")]
    assert len(keyed) > 50
    for name, op in keyed:
        has_429 = "429" in op["responses"]
        assert has_429 == (name != "GET /metrics"), name  # metrics: not limited here
        if has_429:
            answer = op["responses"]["429"]
            assert answer["headers"]["Retry-After"]["required"] is True
            assert answer["content"]["application/json"]["schema"] == {
                "$ref": "#/components/schemas/ErrorOut"
            }
    for name, op in operations:
        if not op.get("security"):
            assert "429" not in op["responses"], name


def test_defaults_let_the_suites_pace_through(limited) -> None:
    """The defaults are far above a test's or a benchmark's pace: 300 reads and 300 admin reads
    at once from one key are all answered."""
    client = limited()
    assert all(client.get("/items/latest", headers=READ).status_code == 200 for _ in range(300))
    assert all(client.get("/admin/audit", headers=ADMIN).status_code == 200 for _ in range(300))


# -- Redis -----------------------------------------------------------------------------------
def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nobody listens once it is closed


def test_buckets_in_redis_are_shared_by_apps_on_one_store(
    tmp_path: Path, sqlite_url: str, redis_url: str
) -> None:
    settings = make_settings(
        tmp_path,
        sqlite_url,
        redis_url=redis_url,
        feed={"refresh_in_serve": False},
        limits=_limits(read={"rate": 0.5, "burst": 4}),
    )
    with TestClient(create_app(settings)) as one, TestClient(create_app(settings)) as two:
        statuses = [c.get("/items/latest", headers=READ).status_code for c in (one, two) * 3]
        assert statuses == [200, 200, 200, 200, 429, 429]
        refused = two.get("/items/latest", headers=READ)
        assert refused.headers["retry-after"] == "2"
        assert _headers(refused) == {
            "ratelimit-limit": "4",
            "ratelimit-remaining": "0",
            "ratelimit-reset": "8",
        }


def test_while_redis_is_down_requests_are_served_and_one_warning_is_logged(
    limited, caplog: pytest.LogCaptureFixture
) -> None:
    client = limited(
        redis_url=f"redis://127.0.0.1:{_closed_port()}/0",
        limits=_limits(read={"rate": 0.01, "burst": 1}),
    )
    with caplog.at_level(logging.WARNING, logger="agora.api.limits"):
        for _ in range(30):
            answer = client.get("/items/latest", headers=READ)
            assert answer.status_code == 200 and not _headers(answer)
    warnings = [r for r in caplog.records if r.name == "agora.api.limits"]
    assert len(warnings) == 1
    assert "not enforced" in warnings[0].getMessage()


AGORA = [sys.executable, "-m", "agora.cli.main"]


@pytest.mark.slow
def test_two_servers_with_two_workers_each_share_the_buckets_through_redis(
    tmp_path: Path, redis_url: str, spawn_server: Callable
) -> None:
    env = {
        "AGORA_DATA_DIR": str(tmp_path / "data"),
        "AGORA_API_KEY": "k",
        "AGORA_REDIS_URL": redis_url,
        "AGORA_FEED": json.dumps({"refresh_in_serve": False}),
        "AGORA_LIMITS": json.dumps({"classes": {"read": {"rate": 0.01, "burst": 6}}}),
        "OPENBLAS_NUM_THREADS": "1",
    }
    servers = [spawn_server([*AGORA, "serve", "--workers", "2"], env) for _ in range(2)]
    key = {"Authorization": "Bearer k"}
    statuses = []
    for i in range(12):  # a new connection each time: either worker of either server answers
        server = servers[i % 2]
        statuses.append(httpx.get(f"{server.base_url}/items/latest", headers=key).status_code)
    # without sharing, each of the 4 workers would have let 6 through
    assert statuses.count(200) == 6, (statuses, servers[0].log(), servers[1].log())
    assert statuses[:6] == [200] * 6 and statuses[6:] == [429] * 6
