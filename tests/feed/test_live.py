"""The offline/online split with real processes: two API processes on one store, and a refresher
(`agora worker`) killed with kill -9 and restarted."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from feed_support import ADMIN, TRAINED, seed

from agora.config import Settings
from agora.db.engine import make_engine, session_factory
from agora.features.store import load_training_data
from agora.models.training import train_models

SERVE = [sys.executable, "-m", "agora.cli.main", "serve"]


def _train(data: Path) -> None:
    """Train the feed tests' models on the store the servers share."""
    settings = Settings(data_dir=data)
    engine = make_engine(settings.resolved_database_url)
    try:
        with session_factory(engine)() as session:
            interactions, side, _ = load_training_data(session, settings.event_weights)
    finally:
        engine.dispose()
    train_models(interactions, side, list(TRAINED), settings.model_dir, params=TRAINED)


def _page(http: httpx.Client, n: int = 3) -> tuple[list[str], str]:
    answer = http.get("/users/me/feed", params={"n": n})
    assert answer.status_code == 200, answer.text
    return [i["item_id"] for i in answer.json()["items"]], answer.headers["X-Feed-Candidates"]


def _until(check: Callable[[], bool], seconds: float) -> float:
    """Seconds until ``check()`` held (fails past ``seconds``)."""
    start = time.monotonic()
    while not check():
        assert time.monotonic() - start < seconds, f"not within {seconds} s"
        time.sleep(0.05)
    return time.monotonic() - start


def test_an_event_on_one_worker_changes_the_next_page_of_another_within_a_second(
    tmp_path: Path, spawn_server
) -> None:
    env = {"AGORA_DATA_DIR": str(tmp_path / "data"), "AGORA_API_KEY": "test-admin"}
    a, b = spawn_server(SERVE, env), spawn_server(SERVE, env)  # one store, two processes
    with (
        httpx.Client(base_url=a.base_url, headers=ADMIN, timeout=30) as on_a,
        httpx.Client(base_url=b.base_url, headers=ADMIN, timeout=30) as on_b,
    ):
        seed(on_a)
        _train(tmp_path / "data")
        for http in (on_a, on_b):
            assert http.post("/admin/reload").status_code == 200
        top = _page(on_b)[0][0]
        event = {"event_id": "me-likes-top", "user_id": "me", "item_id": top, "type": "like"}
        assert on_a.post("/events", json=event).status_code == 201
        gone = _until(lambda: top not in _page(on_b)[0], 1.0)
        assert gone < 1.0
        # and the refresher (in one of the two) takes the event into the candidates
        _until(lambda: _page(on_b)[1] == "ready", 5.0)


def _recommended(http: httpx.Client) -> tuple[list[str], str]:
    answer = http.get("/users/me/recommendations", params={"n": 3})
    assert answer.status_code == 200, answer.text
    return [i["item_id"] for i in answer.json()["items"]], answer.headers["X-Recommendations"]


def test_an_event_on_one_worker_leaves_the_recommendations_of_another_within_a_second(
    tmp_path: Path, spawn_server
) -> None:
    env = {"AGORA_DATA_DIR": str(tmp_path / "data"), "AGORA_API_KEY": "test-admin"}
    a, b = spawn_server(SERVE, env), spawn_server(SERVE, env)
    with (
        httpx.Client(base_url=a.base_url, headers=ADMIN, timeout=30) as on_a,
        httpx.Client(base_url=b.base_url, headers=ADMIN, timeout=30) as on_b,
    ):
        seed(on_a)
        _train(tmp_path / "data")
        for http in (on_a, on_b):
            assert http.post("/admin/reload").status_code == 200
        _until(lambda: _recommended(on_b)[1] == "ready", 30.0)  # the refresher made records
        top = _recommended(on_b)[0][0]
        event = {"event_id": "me-likes-top", "user_id": "me", "item_id": top, "type": "like"}
        assert on_a.post("/events", json=event).status_code == 201
        gone = _until(lambda: top not in _recommended(on_b)[0], 1.0)
        assert gone < 1.0
        _until(lambda: _recommended(on_b)[1] == "ready", 5.0)  # refreshed: ready again
        assert top not in _recommended(on_b)[0]


def test_serving_goes_on_while_the_refresher_is_killed_and_it_catches_up_after_restart(
    tmp_path: Path, spawn_server
) -> None:
    data = tmp_path / "data"
    env = {
        "AGORA_DATA_DIR": str(data),
        "AGORA_API_KEY": "test-admin",
        "AGORA_FEED": '{"refresh_in_serve": false}',  # the refresher is `agora worker` alone
    }
    server = spawn_server(SERVE, env)
    worker_env = {k: v for k, v in os.environ.items() if not k.startswith("AGORA_")} | env

    def start_worker() -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-m", "agora.cli.main", "worker"],
            env=worker_env,
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    with httpx.Client(base_url=server.base_url, headers=ADMIN, timeout=30) as http:
        seed(http)
        _train(data)
        assert http.post("/admin/reload").status_code == 200
        worker = start_worker()
        try:
            _until(lambda: _page(http)[1] == "ready", 60.0)
            events = [
                {
                    "event_id": f"burst-{u}-{i}",
                    "user_id": f"u{u}",
                    "item_id": f"c{i}",
                    "type": "like",
                }
                for u in range(12)
                for i in range(3)
            ]
            assert http.post("/events", json=events).status_code == 201
            worker.send_signal(signal.SIGKILL)  # mid-round: the burst is being refreshed
            worker.wait(timeout=10)
            liked = _page(http)[0][0]
            event = {"event_id": "me-x", "user_id": "me", "item_id": liked, "type": "like"}
            assert http.post("/events", json=event).status_code == 201

            _until(lambda: liked not in _page(http)[0], 1.0)  # the event reached the state
            items, how = _page(http)  # serving goes on from the last candidates
            assert items and liked not in items and how == "stale"
            worker = start_worker()  # it resumes from its mark in the store
            _until(lambda: _page(http)[1] == "ready", 60.0)
        finally:
            worker.kill()
            worker.wait(timeout=10)
