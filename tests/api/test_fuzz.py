"""Bad input never yields a 500: a handful of bad bodies on every write route, bad queries on reads.

TestClient re-raises server exceptions, so an unexpected error fails these tests loudly even
before the status code is looked at.
"""

from __future__ import annotations

import json

import pytest
from api_support import ADMIN, counts
from fastapi.testclient import TestClient

WRITE_ROUTES = [
    ("PUT", "/users/u1"),
    ("PUT", "/items/p1"),
    ("PUT", "/groups/g1"),
    ("POST", "/groups/g1/members"),
    ("POST", "/edges"),
    ("DELETE", "/edges"),
    ("POST", "/events"),
]

_EVENT = {"event_id": "e1", "user_id": "u1", "item_id": "p1", "type": "like"}

BAD_BODIES: list[bytes] = [
    b"{",
    b"{'single': 'quotes'}",
    b"null",
    b"42",
    b'"text"',
    b"true",
    b"[1, 2]",
    b"[[]]",
    b'{"unknown_field": 1}',
    b'{"value": NaN}',
    b'{"value": Infinity}',
    b'{"value": 1e999}',
    b'{"n": ' + b"9" * 5000 + b"}",
    b"[" * 5000 + b"]" * 5000,
    b"\xff\xfe\x00garbage",
    b'{"user_id": "a\\u0000b", "title": "\\u0000"}',
    b'{"attributes": {"k": "\\ud800"}, "context": {"\\udfff": {"x": "\\u0000"}}}',
    b'{"title": "\\udc00", "name": "\\ud800", "role": "\\ud800"}',
    b'{"attributes": "not-a-dict", "created": "never"}',
    json.dumps({"created": "0001-01-01T00:00:00+05:00", "timestamp": 1e20}).encode(),
    json.dumps({**_EVENT, "user_id": "u" * 300, "role": "r" * 40}).encode(),
    json.dumps({**_EVENT, "value": "nan", "weight": "inf"}).encode(),
    json.dumps({**_EVENT, "timestamp": "9999-12-31T23:59:59-05:00"}).encode(),
    json.dumps([{**_EVENT, "type": None}] * 3).encode(),
    json.dumps({"source_id": ["a"], "target_id": {"b": 1}, "type": 3}).encode(),
    json.dumps([_EVENT] * 1500).encode(),
]


@pytest.mark.parametrize(
    ("method", "path"), WRITE_ROUTES, ids=[f"{m} {p}" for m, p in WRITE_ROUTES]
)
def test_bad_bodies_get_4xx_on_every_write_route(
    client: TestClient, method: str, path: str
) -> None:
    for body in BAD_BODIES:
        for content_type in ("application/json", "text/plain"):
            answer = client.request(
                method, path, content=body, headers={**ADMIN, "content-type": content_type}
            )
            assert 400 <= answer.status_code < 500, (body[:80], answer.status_code, answer.text)
            assert "detail" in answer.json()
    assert set(counts(client).values()) == {0}


@pytest.mark.parametrize(
    "path",
    [
        "/items/latest?n=abc",
        "/items/latest?n=99999999999999999999999",
        "/items/trending?n=-1",
        "/users/u1/recommendations?n=0",
        "/users/u1/recommendations?model=",
        "/users/u1/recommendations?model=" + "m" * 100,
        "/users/u1/recommendations?model=nosuchmodel",
        "/items/p1/similar?n=1.5",
        "/users/" + "u" * 300,
        "/items/" + "i" * 300 + "/similar",
        "/users/%ff%fe",
        "/users/%ED%A0%80/edges",
        "/items/latest?n=%ff",
        "/users/u1/recommendations?model=%ED%A0%80",
        "/admin/audit?limit=-1",
        "/admin/audit?cursor=abc",
        "/admin/audit?since=%ff",
        "/admin/audit?route=%ED%A0%80",
        "/admin/audit?key_id=%00",
        "/admin/audit?route=%00",
        "/admin/privacy/budget?day=garbage",
        "/admin/privacy/budget?day=2026-13-01",
        "/admin/privacy/budget?day=99999-01-01",
        "/admin/privacy/budget?day=%ff",
        "/admin/privacy/budget?day=0",
    ],
)
def test_bad_queries_get_4xx(sqlite_client: TestClient, path: str) -> None:
    answer = sqlite_client.get(path, headers=ADMIN)
    assert 400 <= answer.status_code < 500, answer.text
