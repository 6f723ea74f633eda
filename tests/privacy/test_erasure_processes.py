"""An erasure through one server process reaches another serving the same store: within a
second it has dropped the models it held and reads the rewritten versions."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import httpx
from privacy_support import ADMIN, TRAINED, ZED, seed

from agora.config import Settings
from agora.db.engine import make_engine, session_factory
from agora.evaluation.training import train_from_store

SERVE = [sys.executable, "-m", "agora.cli.main", "serve"]


def _erasures_seen(http: httpx.Client) -> int:
    return http.get("/models").json()["als"]["meta"].get("erasures", 0)


def test_another_process_reloads_its_models_within_a_second(tmp_path: Path, spawn_server) -> None:
    data = tmp_path / "data"
    env = {
        "AGORA_DATA_DIR": str(data),
        "AGORA_API_KEY": "test-admin",
        "AGORA_FEED": '{"refresh_in_serve": false}',
        "AGORA_ERASURE_RETRAIN_SECONDS": "0",
    }
    a, b = spawn_server(SERVE, env), spawn_server(SERVE, env)
    with (
        httpx.Client(base_url=a.base_url, headers=ADMIN, timeout=30) as first,
        httpx.Client(base_url=b.base_url, headers=ADMIN, timeout=30) as second,
    ):
        seed(first)
        settings = Settings(data_dir=data)
        engine = make_engine(settings.resolved_database_url)
        with session_factory(engine)() as session:
            train_from_store(session, list(TRAINED), settings.model_dir,
                             settings.event_weights, TRAINED)  # fmt: skip
        engine.dispose()
        for http in (first, second):
            assert http.post("/admin/reload").status_code == 200
        assert (
            second.get("/users/zed-7f3a/recommendations", params={"model": "als"}).status_code
            == 200
        )
        assert _erasures_seen(second) == 0

        assert first.delete(f"/users/{ZED}").status_code == 204
        started = time.monotonic()
        while _erasures_seen(second) != 1:
            assert time.monotonic() - started < 1.0, "the other process still serves the old models"
            time.sleep(0.02)
        assert second.get(f"/users/{ZED}").status_code == 404
