"""Every answer says how long the server took: ``Server-Timing: app;dur=<ms>``."""

from __future__ import annotations

import re

from api_support import ADMIN, event
from fastapi.testclient import TestClient

TIMING = re.compile(r"app;dur=(\d+\.\d+)")


def _server_ms(answer) -> float:
    match = TIMING.fullmatch(answer.headers.get("server-timing", ""))
    assert match, answer.headers
    return float(match[1])


def test_answers_carry_the_server_time(sqlite_client: TestClient) -> None:
    posted = sqlite_client.post("/events", json=event(1, user="ann"), headers=ADMIN)
    assert posted.status_code == 201
    feed = sqlite_client.get("/users/ann/feed", params={"n": 5}, headers=ADMIN)
    assert feed.status_code == 200
    refused = sqlite_client.get("/users/ann/feed")  # an error answer carries it too
    assert refused.status_code == 401
    for answer in (posted, feed, refused, sqlite_client.get("/health")):
        assert _server_ms(answer) >= 0
