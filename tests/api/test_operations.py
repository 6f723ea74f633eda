"""Operations, seen from outside a real ``agora serve`` process: JSON log lines carrying the
request id the client sees, an access line per request without secrets or personal data, and a
Prometheus ``/metrics`` endpoint behind its own scope."""

from __future__ import annotations

import json
import re
import signal
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

ADMIN_KEY = "admin-key-s3cret-9f2c"
READ_KEY = "reader-key-s3cret-77aa"
SCRAPER_KEY = "scraper-key-s3cret-5d1e"
PERSON = "alice.private"  # a user id: personal data that must stay out of the logs
QUERY_SECRET = "alice@example.org"


def _json_lines(log: str) -> list[dict]:
    """Every log line of the server as JSON (lines from the console banner excepted)."""
    lines = []
    for line in log.splitlines():
        if not line.strip() or line.startswith(("serving on", "stopped")):
            continue
        lines.append(json.loads(line))  # fails the test when a log line is not JSON
    return lines


def _sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample in a Prometheus text exposition (0 when absent)."""
    for line in text.splitlines():
        match = re.fullmatch(rf"{name}(?:\{{(.*)\}})? (\S+)", line)
        if match and dict(re.findall(r'(\w+)="([^"]*)"', match[1] or "")) == labels:
            return float(match[2])
    return 0.0


def _events() -> list[dict]:
    now = datetime.now(UTC)
    out = []
    for n in range(30):
        when = (now - timedelta(hours=n + 1)).isoformat()
        user, item = f"u{n % 6}", f"p{n % 9}"
        out.append(
            {
                "event_id": f"e{n}",
                "user_id": user,
                "item_id": item,
                "type": "like",
                "timestamp": when,
            }
        )
    return out


def test_serve_logs_json_with_request_ids_and_exposes_metrics(
    tmp_path: Path, spawn_server: Callable, agora_here: Callable
) -> None:
    data = tmp_path / "data"
    env = {
        "AGORA_DATA_DIR": str(data),
        "AGORA_API_KEY": ADMIN_KEY,
        "AGORA_API_KEYS": json.dumps({READ_KEY: ["read"], SCRAPER_KEY: ["metrics"]}),
        "AGORA_LOG_LEVEL": "info",
        "AGORA_MODELS": json.dumps(["trending", "latest"]),
    }
    server = spawn_server([sys.executable, "-m", "agora.cli.main", "serve"], env)
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    with httpx.Client(base_url=server.base_url, timeout=30) as http:
        assert http.post("/events", json=_events(), headers=admin).status_code == 201
        agora_here(["train", "--no-validate"], env)
        assert http.post("/admin/reload", headers=admin).status_code == 200

        reader = {"Authorization": f"Bearer {READ_KEY}"}
        for _ in range(3):
            assert http.get("/health").status_code == 200
        feed = http.get("/users/u1/feed", params={"n": 5}, headers=reader)
        assert feed.status_code == 200, feed.text
        served = feed.json()["sources"]
        assert sum(served.values()) > 0
        # a client's request id is kept and echoed; an unsafe one is replaced
        mine = http.get(f"/users/{PERSON}", headers={**reader, "X-Request-ID": "client-id-42"})
        assert mine.status_code == 404
        assert mine.headers["x-request-id"] == "client-id-42"
        assert mine.json()["request_id"] == "client-id-42"
        forged = http.get("/health", headers={"X-Request-ID": 'bad "id" {}'})
        assert re.fullmatch(r"[0-9a-f]{32}", forged.headers["x-request-id"])
        # a query string may carry personal data: it never reaches the log
        latest = http.get("/items/latest", params={"n": 3, "q": QUERY_SECRET}, headers=reader)
        unauthorized = http.get("/metrics", headers={"Authorization": "Bearer wrong-key-value"})
        assert unauthorized.status_code == 401
        assert unauthorized.json()["request_id"] == unauthorized.headers["x-request-id"]
        assert http.get("/metrics", headers=reader).status_code == 403  # read keys don't scrape

        scrape = http.get("/metrics", headers={"Authorization": f"Bearer {SCRAPER_KEY}"})
    assert scrape.status_code == 200
    assert scrape.headers["content-type"].startswith("text/plain")
    text = scrape.text
    health = {"method": "GET", "route": "/health", "status": "200"}
    # the start-up probe, three calls, and the one with a forged request id
    assert _sample(text, "agora_http_requests_total", **health) == 5
    feed_route = {"method": "GET", "route": "/users/{user_id}/feed", "status": "200"}
    assert _sample(text, "agora_http_requests_total", **feed_route) == 1
    bucket = {"method": "GET", "route": "/users/{user_id}/feed", "le": "+Inf"}
    assert _sample(text, "agora_http_request_duration_seconds_bucket", **bucket) == 1
    assert PERSON not in text  # labels hold route templates, never raw paths
    for source, count in served.items():
        assert _sample(text, "agora_feed_items_served_total", source=source) == count
    loaded = re.findall(r'agora_model_loaded\{model="(\w+)",version="([^"]+)"\} 1\.0', text)
    assert {name for name, _ in loaded} == {"trending", "latest"}
    assert _sample(text, "agora_feed_page_builds", state="building") == 0
    assert "agora_feed_sessions_held" in text

    assert server.stop(signal.SIGTERM) in (0, -signal.SIGTERM)
    log = server.log()
    lines = _json_lines(log)
    access = [line for line in lines if line["logger"] == "agora.access"]
    by_id = {line["request_id"]: line for line in access}
    assert by_id["client-id-42"]["route"] == "/users/{user_id}"
    assert by_id["client-id-42"]["status"] == 404
    assert by_id[feed.headers["x-request-id"]]["route"] == "/users/{user_id}/feed"
    assert by_id[feed.headers["x-request-id"]]["duration_ms"] > 0
    assert by_id[latest.headers["x-request-id"]]["method"] == "GET"
    assert len(access) >= 12
    assert any(line["level"] == "info" and line["logger"] != "agora.access" for line in lines)
    for secret in (ADMIN_KEY, READ_KEY, SCRAPER_KEY, PERSON, QUERY_SECRET, "wrong-key-value"):
        assert secret not in log, secret


def test_metrics_sum_over_workers_on_a_fresh_postgres(
    postgres_url: str, tmp_path: Path, spawn_server
):
    """Two workers start on an empty PostgreSQL schema (each migrates, in turn), and every
    scrape counts the requests of both, whichever worker answers it."""
    env = {
        "AGORA_DATA_DIR": str(tmp_path / "data"),
        "AGORA_DATABASE_URL": postgres_url,
        "AGORA_API_KEY": ADMIN_KEY,
    }
    command = [sys.executable, "-m", "agora.cli.main", "serve", "--workers", "2"]
    server = spawn_server(command, env)
    scraper = {"Authorization": f"Bearer {ADMIN_KEY}"}
    with httpx.Client(base_url=server.base_url, timeout=30) as http:
        for _ in range(20):
            # a new connection each time, so that both workers get requests
            answer = httpx.get(f"{server.base_url}/health", timeout=30)
            assert answer.status_code == 200
        for _ in range(6):
            with httpx.Client(base_url=server.base_url, timeout=30) as fresh:
                scrape = fresh.get("/metrics", headers=scraper)
            assert scrape.status_code == 200
            health = {"method": "GET", "route": "/health", "status": "200"}
            # the start-up probe and the twenty calls, summed over both workers
            assert _sample(scrape.text, "agora_http_requests_total", **health) == 21
        assert http.get("/health").json()["database"] == "ok"
    server.stop(signal.SIGTERM)
    lines = _json_lines(server.log())
    workers = {line.get("pid") for line in lines if line["logger"] == "agora.access"}
    assert len(workers) == 2, workers  # both workers answered
