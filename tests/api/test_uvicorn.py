"""The app factory served by a real uvicorn process, over real HTTP."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import httpx


def test_uvicorn_factory_serves_health_events_and_reads(tmp_path: Path, spawn_server) -> None:
    command = [sys.executable, "-m", "uvicorn", "--factory", "agora.api.app:create_app"]
    server = spawn_server(
        command, {"AGORA_DATA_DIR": str(tmp_path / "data"), "AGORA_API_KEY": "live-key"}
    )
    base = server.base_url
    health = httpx.get(f"{base}/health", timeout=5)
    assert health.status_code == 200 and health.json()["database"] == "ok"

    auth = {"Authorization": "Bearer live-key"}
    with httpx.Client(base_url=base, headers=auth, timeout=10) as http:
        event = {"event_id": "live-1", "user_id": "ann", "item_id": "post-1", "type": "like"}
        posted = http.post("/events", json=[event])
        assert posted.status_code == 201 and posted.json() == {"accepted": 1, "duplicates": 0}
        user = http.get("/users/ann")
        assert user.status_code == 200 and user.json()["n_events"] == 1
        latest = http.get("/items/latest")
        assert [i["item_id"] for i in latest.json()["items"]] == ["post-1"]
    assert httpx.post(f"{base}/events", json=[event]).status_code == 401
    assert (tmp_path / "data" / "agora.db").is_file()

    code = server.stop(signal.SIGTERM)
    # uvicorn shuts down gracefully, then re-raises SIGTERM (recent versions): -15 or 0
    assert code in (0, -signal.SIGTERM), server.log()
    assert "Application shutdown complete" in server.log()
