"""The app factory served by a real uvicorn process, over real HTTP."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_uvicorn_factory_serves_health_events_and_reads(tmp_path: Path) -> None:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGORA_")}
    env.update(AGORA_DATA_DIR=str(tmp_path / "data"), AGORA_API_KEY="live-key")
    log = (tmp_path / "uvicorn.log").open("w+")
    command = [sys.executable, "-m", "uvicorn", "--factory", "agora.api.app:create_app"]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    proc = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, Path(log.name).read_text()
            try:
                health = httpx.get(f"{base}/health", timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, Path(log.name).read_text()
                time.sleep(0.2)
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
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise
        log.close()
    # uvicorn shuts down gracefully, then re-raises SIGTERM (recent versions): -15 or 0
    assert code in (0, -signal.SIGTERM), Path(log.name).read_text()
    assert "Application shutdown complete" in Path(log.name).read_text()
