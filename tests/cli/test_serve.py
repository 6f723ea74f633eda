"""`agora serve` as operators run it: newest models, reload on SIGHUP, clean stop on Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx

AGORA = [sys.executable, "-m", "agora.cli.main"]


def _agora(args: list[str], env: dict[str, str]) -> None:
    done = subprocess.run(
        [*AGORA, *args], env=os.environ | env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr


def _trending_version(base: str) -> str | None:
    return httpx.get(f"{base}/health", timeout=5).json()["models"].get("trending")


def test_serve_reloads_on_sighup_and_stops_cleanly_on_ctrl_c(
    tmp_path: Path, spawn_server: Callable, agora_here: Callable
) -> None:
    env = {"AGORA_DATA_DIR": str(tmp_path / "data"), "AGORA_API_KEY": "k"}
    events = tmp_path / "events.jsonl"
    events.write_text(
        "".join(
            json.dumps(
                {
                    "event_id": f"e{i}",
                    "user_id": f"u{i % 3}",
                    "item_id": f"p{i % 4}",
                    "type": "like",
                }
            )
            + "\n"
            for i in range(12)
        )
    )
    agora_here(["import", str(events)], env)
    agora_here(["train", "--models", "trending", "--no-validate"], env)

    server = spawn_server([*AGORA, "serve"], env)
    first = _trending_version(server.base_url)
    assert first is not None

    time.sleep(1.1)  # versions are stamped to the second
    _agora(["train", "--models", "trending", "--no-validate"], env)
    assert _trending_version(server.base_url) == first  # not reloaded yet
    server.process.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while _trending_version(server.base_url) == first:
        assert time.monotonic() < deadline, server.log()
        time.sleep(0.1)

    assert server.stop(signal.SIGINT) == 0
    assert "stopped" in server.log() and "Traceback" not in server.log()


def test_serve_with_two_workers_shares_the_store(
    tmp_path: Path, spawn_server: Callable, agora_here: Callable
) -> None:
    env = {"AGORA_DATA_DIR": str(tmp_path / "data"), "AGORA_API_KEY": "k"}
    events = tmp_path / "events.jsonl"
    rows = [{"event_id": f"e{i}", "user_id": f"u{i % 3}", "item_id": f"p{i % 8}", "type": "like"}
            for i in range(12)]  # fmt: skip
    events.write_text("".join(json.dumps(r) + "\n" for r in rows))
    agora_here(["import", str(events)], env)
    agora_here(["train", "--models", "trending", "--no-validate"], env)

    server = spawn_server([*AGORA, "serve", "--workers", "2"], env)
    auth = {"Authorization": "Bearer k"}
    first = httpx.get(f"{server.base_url}/users/u0/feed", params={"n": 1}, headers=auth)
    assert first.status_code == 200, server.log()
    cursor, seen = first.json()["next_cursor"], [first.json()["items"][0]["item_id"]]
    for _ in range(3):  # pages may land on either worker; the store keeps them apart
        answer = httpx.get(
            f"{server.base_url}/users/u0/feed", params={"n": 1, "cursor": cursor}, headers=auth
        )
        assert answer.status_code == 200, server.log()
        seen += [i["item_id"] for i in answer.json()["items"]]
        cursor = answer.json()["next_cursor"]
    assert len(seen) == len(set(seen))
    assert server.stop(signal.SIGINT) == 0
    assert "stopped" in server.log() and "Traceback" not in server.log()
