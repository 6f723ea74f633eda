"""``agora serve``'s refresher in a child process of its own (``refresher_process``, real
processes): it refreshes the store's users and a new user's, stops with the server on SIGTERM,
stops by itself when the server is killed; by default it is a thread of the server."""

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
from sqlalchemy import create_engine, select

from agora.db.tables import User
from agora.feed.models import FeedCandidates

AGORA = [sys.executable, "-m", "agora.cli.main"]
AUTH = {"Authorization": "Bearer k"}
USERS = [f"u{i}" for i in range(6)]
IN_A_PROCESS = {"refresher_process": True}


def _store(
    agora_here: Callable, tmp_path: Path, database_url: str, feed: dict | None = None
) -> dict[str, str]:
    """Six users who liked some of twenty posts, trending trained; the server's environment."""
    env = {
        "AGORA_DATA_DIR": str(tmp_path / "data"),
        "AGORA_DATABASE_URL": database_url,
        "AGORA_API_KEY": "k",
        **({"AGORA_FEED": json.dumps(feed)} if feed else {}),
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


def _children(pid: int) -> list[str]:
    """The command lines of ``pid``'s child processes (Linux's /proc)."""
    found = []
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        try:
            found.append(Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ").decode())
        except FileNotFoundError:  # ended meanwhile
            continue
    return found


def _refresher_pid(pid: int) -> int:
    (child,) = [
        int(c)
        for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        if b" worker " in Path(f"/proc/{c}/cmdline").read_bytes().replace(b"\0", b" ")
    ]
    return child


def _with_records(database_url: str, users: list[str], seconds: float = 60) -> None:
    """Wait until each of ``users`` has a ready record in the store."""
    engine = create_engine(database_url)
    try:
        deadline = time.monotonic() + seconds
        while True:
            with engine.connect() as conn:
                stored = set(
                    conn.scalars(
                        select(User.external_id)
                        .join(FeedCandidates, FeedCandidates.user_id == User.id)
                        .where(User.external_id.in_(users))
                    )
                )
            if stored == set(users):
                return
            assert time.monotonic() < deadline, f"no records for {set(users) - stored}"
            time.sleep(0.2)
    finally:
        engine.dispose()


def _gone(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except FileNotFoundError:
            return True
        if stat.split(")")[-1].split()[0] == "Z":  # a zombie has ended (its parent reaps it)
            return True
        time.sleep(0.1)
    return False


@pytest.mark.parametrize("database", ["postgres", "sqlite"])
def test_the_refresher_runs_in_a_child_process_that_stops_with_the_server(
    database: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    spawn_server: Callable,
    agora_here: Callable,
) -> None:
    database_url = request.getfixturevalue(f"{database}_url")
    env = _store(agora_here, tmp_path, database_url, feed=IN_A_PROCESS)
    server = spawn_server([*AGORA, "serve"], env)
    child = _refresher_pid(server.process.pid)
    _with_records(database_url, USERS)  # the child's first full pass
    # a user the store learns of now: the child takes them from the event log
    event = {"event_id": "new", "user_id": "newcomer", "item_id": "p3", "type": "like"}
    with httpx.Client(base_url=server.base_url, headers=AUTH, timeout=30) as http:
        assert http.post("/events", json=event).status_code == 201
        assert http.get("/users/newcomer/feed", params={"n": 3}).status_code == 200
    _with_records(database_url, ["newcomer"])
    assert server.stop(signal.SIGTERM, timeout=60) == 0
    assert _gone(child, 1)  # stopped and reaped before the server exited
    assert "Traceback" not in server.log()


def test_the_refresher_process_stops_when_the_server_is_killed(
    sqlite_url: str, tmp_path: Path, spawn_server: Callable, agora_here: Callable
) -> None:
    env = _store(agora_here, tmp_path, sqlite_url, feed=IN_A_PROCESS)
    server = spawn_server([*AGORA, "serve"], env)
    child = _refresher_pid(server.process.pid)
    server.process.send_signal(signal.SIGKILL)  # the server alone: no chance to stop its child
    server.process.wait()
    assert _gone(child, 30)


def test_by_default_the_refresher_is_a_thread_of_the_server(
    sqlite_url: str, tmp_path: Path, spawn_server: Callable, agora_here: Callable
) -> None:
    env = _store(agora_here, tmp_path, sqlite_url)
    server = spawn_server([*AGORA, "serve"], env)
    _with_records(sqlite_url, USERS)  # the server's thread refreshed them
    assert _children(server.process.pid) == []
    assert server.stop(signal.SIGTERM, timeout=60) == 0
