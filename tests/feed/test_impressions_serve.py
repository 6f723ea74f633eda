"""Buffered impressions in a real ``agora serve``: a clean stop (SIGTERM) writes them, with one
worker and with several; ``kill -9`` loses those not written yet, never an event."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, func, select

from agora.db.tables import Event, FeedImpression

AGORA = [sys.executable, "-m", "agora.cli.main"]
AUTH = {"Authorization": "Bearer k"}
USERS = [f"u{i}" for i in range(6)]


def _store(
    agora_here: Callable, tmp_path: Path, database_url: str, flush_seconds: float
) -> dict[str, str]:
    """Six users who liked some of twenty posts, trending trained; the server's environment."""
    env = {
        "AGORA_DATA_DIR": str(tmp_path / "data"),
        "AGORA_DATABASE_URL": database_url,
        "AGORA_API_KEY": "k",
        "AGORA_FEED": json.dumps({"impression_flush_seconds": flush_seconds}),
    }
    events = tmp_path / "events.jsonl"
    rows = [
        {"event_id": f"e{i}", "user_id": USERS[i % 6], "item_id": f"p{i % 20}", "type": "like"}
        for i in range(30)
    ]
    events.write_text("".join(json.dumps(r) + "\n" for r in rows))
    agora_here(["import", str(events)], env)
    agora_here(["train", "--models", "trending", "--no-validate"], env)
    return env


def _count(database_url: str, table: type) -> int:
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            return int(conn.scalar(select(func.count()).select_from(table)))
    finally:
        engine.dispose()


def _pages(base: str, users: list[str], next_pages: bool) -> int:
    """First pages (and with ``next_pages`` each one's next page) for ``users``; returns how
    many items they showed."""
    shown = 0
    with httpx.Client(base_url=base, headers=AUTH, timeout=30) as http:
        for user in users:
            answer = http.get(f"/users/{user}/feed", params={"n": 3})
            assert answer.status_code == 200, answer.text
            shown += len(answer.json()["items"])
            if next_pages:
                cursor = answer.json()["next_cursor"]
                answer = http.get(f"/users/{user}/feed", params={"n": 3, "cursor": cursor})
                assert answer.status_code == 200, answer.text
                shown += len(answer.json()["items"])
    assert shown > 0
    return shown


# each database once, each worker mode once (every pair took 13-16 s of a real server)
@pytest.mark.parametrize(("workers", "database"), [(1, "postgres"), (2, "sqlite")])
def test_sigterm_writes_the_buffered_impressions_before_the_server_exits(
    workers: int,
    database: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    spawn_server: Callable,
    agora_here: Callable,
) -> None:
    database_url = request.getfixturevalue(f"{database}_url")
    env = _store(
        agora_here, tmp_path, database_url, flush_seconds=60
    )  # no periodic write in this test
    server = spawn_server([*AGORA, "serve", "--workers", str(workers)], env)
    # several workers: first pages only (a next page on another worker waits for the
    # previous page's impressions, here a minute)
    shown = _pages(server.base_url, USERS, next_pages=workers == 1)
    assert _count(database_url, FeedImpression) == 0  # all still buffered
    assert server.stop(signal.SIGTERM, timeout=60) == 0
    assert _count(database_url, FeedImpression) == shown
    assert "Traceback" not in server.log()


def test_kill_9_loses_the_impressions_not_written_yet_but_no_event(
    sqlite_url: str, tmp_path: Path, spawn_server: Callable, agora_here: Callable
) -> None:
    env = _store(agora_here, tmp_path, sqlite_url, flush_seconds=5)
    server = spawn_server([*AGORA, "serve"], env)
    kept = _pages(server.base_url, USERS[:3], next_pages=True)
    deadline = time.monotonic() + 30
    while _count(sqlite_url, FeedImpression) < kept:  # the periodic write
        assert time.monotonic() < deadline, server.log()
        time.sleep(0.05)
    # just after a write: the next one is ~5 s away
    _pages(server.base_url, USERS[3:], next_pages=True)
    event = {"event_id": "late", "user_id": "u0", "item_id": "p1", "type": "view"}
    assert httpx.post(f"{server.base_url}/events", json=event, headers=AUTH).status_code == 201
    events = _count(sqlite_url, Event)
    os.killpg(server.process.pid, signal.SIGKILL)
    server.process.wait()
    assert _count(sqlite_url, FeedImpression) == kept  # the last pages' impressions are lost
    assert _count(sqlite_url, Event) == events == 31  # the event answered 201 is stored
