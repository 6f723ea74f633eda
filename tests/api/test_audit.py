"""The audit log of admin actions: what is recorded (admin requests that change something,
however answered), what is not (reads, other scopes, refused keys), what a row holds (never the
body, never the key, never an erased person's id), and ``GET /admin/audit``'s filters and pages;
``agora admin audit`` prints the same rows."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from api_support import ADMIN, READ, WRITE, make_settings
from fastapi.testclient import TestClient
from sqlalchemy import select

from agora.api.app import create_app
from agora.api.auth import fingerprint
from agora.audit.models import AdminAudit

SECOND_ADMIN = {"Authorization": "Bearer second-admin"}


@pytest.fixture
def client(
    tmp_path: Path, database_url: str, migrated_store: Callable[[str], str]
) -> Iterator[TestClient]:
    """The app on SQLite and PostgreSQL (a copy of the run's migrated store), with a second
    admin key."""
    settings = make_settings(
        tmp_path,
        migrated_store(database_url),
        api_keys={"r": ["read"], "w": ["write"], "second-admin": ["admin"]},
        feed={"refresh_in_serve": False},
    )
    with TestClient(create_app(settings)) as c:
        yield c


def _rows(client: TestClient) -> list[AdminAudit]:
    with client.app.state.sessions() as session:
        return list(session.scalars(select(AdminAudit).order_by(AdminAudit.id)))


def _audit(client: TestClient, **params: object) -> dict:
    answer = client.get("/admin/audit", params=params, headers=ADMIN)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_admin_writes_are_recorded_with_their_outcome(client: TestClient) -> None:
    assert client.put("/items/p1", json={"title": "secret title"}, headers=WRITE).status_code == 201
    assert client.put("/users/alice", json={}, headers=WRITE).status_code == 201
    answers = [
        client.delete("/items/p1", headers=ADMIN),
        client.delete("/users/alice", headers=SECOND_ADMIN),
        client.delete("/users/nobody", headers=ADMIN),
        client.post("/admin/reload", headers={**ADMIN, "X-Request-ID": "op-42"}),
        client.post("/analytics/refresh", params={"job": "nope"}, headers=ADMIN),
    ]
    assert [a.status_code for a in answers] == [204, 204, 404, 200, 422]
    entries = _audit(client)["entries"]
    assert [(e["method"], e["route"], e["status"]) for e in entries] == [
        ("POST", "/analytics/refresh", 422),
        ("POST", "/admin/reload", 200),
        ("DELETE", "/users/{user_id}", 404),
        ("DELETE", "/users/{user_id}", 204),
        ("DELETE", "/items/{item_id}", 204),
    ]
    assert entries[4]["path_params"] == {"item_id": "p1"}
    # an erasure keeps the parameter's name, not the erased person's id
    assert entries[3]["path_params"] == entries[2]["path_params"] == {"user_id": None}
    assert entries[3]["key_id"] == fingerprint("second-admin")
    assert {e["key_id"] for e in entries} - {entries[3]["key_id"]} == {fingerprint("test-admin")}
    assert entries[1]["request_id"] == "op-42"
    assert [e["request_id"] for e in entries] == [
        a.headers["x-request-id"] for a in reversed(answers)
    ]
    stored = json.dumps([r.__dict__ for r in _rows(client)], default=str)
    for never in ("alice", "nobody", "test-admin", "second-admin", "nope", "secret"):
        assert never not in stored, never


def test_reads_other_scopes_and_refused_keys_are_not_recorded(client: TestClient) -> None:
    assert client.get("/admin/audit", headers=ADMIN).status_code == 200
    assert client.get("/experiments", headers=ADMIN).status_code == 200
    assert client.head("/admin/audit", headers=ADMIN).status_code in (200, 405)
    assert client.put("/users/u1", json={}, headers=ADMIN).status_code == 201  # a write route
    like = {"event_id": "e1", "user_id": "u1", "item_id": "p1", "type": "like"}
    assert client.post("/events", json=like, headers=ADMIN).status_code == 201
    assert client.post("/admin/reload", headers=WRITE).status_code == 403
    assert client.post("/admin/reload", headers=READ).status_code == 403
    assert client.post("/admin/reload").status_code == 401
    assert client.delete("/users/u1", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert _rows(client) == []


def test_the_audit_route_filters_and_pages(client: TestClient) -> None:
    for _ in range(3):
        assert client.post("/admin/reload", headers=ADMIN).status_code == 200
    assert client.post("/admin/reload", headers=SECOND_ADMIN).status_code == 200
    assert client.delete("/items/gone", headers=ADMIN).status_code == 404
    everything = _audit(client)["entries"]
    assert len(everything) == 5
    assert [e["id"] for e in everything] == sorted((e["id"] for e in everything), reverse=True)

    by_route = _audit(client, route="/admin/reload")["entries"]
    assert len(by_route) == 4 and {e["route"] for e in by_route} == {"/admin/reload"}
    by_key = _audit(client, key_id=fingerprint("second-admin"))["entries"]
    assert [e["id"] for e in by_key] == [everything[1]["id"]]
    assert _audit(client, route="/admin/reload", key_id=fingerprint("test-admin"))["entries"] == [
        e
        for e in everything
        if e["route"] == "/admin/reload" and e["key_id"] != by_key[0]["key_id"]
    ]
    newest = everything[0]["at"]
    assert [e["id"] for e in _audit(client, since=newest)["entries"]] == [everything[0]["id"]]
    assert _audit(client, since="2999-01-01T00:00:00+01:00")["entries"] == []
    assert len(_audit(client, since="2001-01-01T00:00:00Z")["entries"]) == 5

    pages, cursor = [], None
    while True:
        page = _audit(client, limit=2, **({"cursor": cursor} if cursor else {}))
        pages.append(page["entries"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [len(p) for p in pages] == [2, 2, 1]
    assert [e for p in pages for e in p] == everything
    assert _audit(client, limit=5)["next_cursor"] is None


@pytest.mark.parametrize(
    ("query", "location"),
    [
        ("limit=0", "query.limit"),
        ("limit=501", "query.limit"),
        ("cursor=0", "query.cursor"),
        ("cursor=9223372036854775808", "query.cursor"),
        ("key_id=NOT-HEX", "query.key_id"),
        ("key_id=" + "a" * 17, "query.key_id"),
        ("route=/" + "r" * 255, "query.route"),
        ("route=users", "query.route"),  # a template starts with /
        ("since=yesterday", "query.since"),
        ("since=2024-01-01T00:00:00", "query.since"),  # no offset
        ("page=2", "query.page"),
    ],
)
def test_bad_audit_queries_get_422_at_their_place(
    sqlite_client: TestClient, query: str, location: str
) -> None:
    answer = sqlite_client.get(f"/admin/audit?{query}", headers=ADMIN)
    assert answer.status_code == 422, answer.text
    assert location in {p["location"] for p in answer.json()["problems"]}


def test_the_audit_route_needs_the_admin_scope(sqlite_client: TestClient) -> None:
    assert sqlite_client.get("/admin/audit").status_code == 401
    assert sqlite_client.get("/admin/audit", headers=WRITE).status_code == 403


def test_agora_admin_audit_prints_the_log(tmp_path: Path, sqlite_url: str) -> None:
    settings = make_settings(tmp_path, sqlite_url, feed={"refresh_in_serve": False})
    with TestClient(create_app(settings)) as client:
        assert client.post("/admin/reload", headers=ADMIN).status_code == 200
        assert client.delete("/items/p9", headers=ADMIN).status_code == 404
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGORA_")}
    env |= {"AGORA_DATA_DIR": str(tmp_path / "data"), "AGORA_DATABASE_URL": sqlite_url}
    env["COLUMNS"] = "200"  # the table whole
    done = subprocess.run(
        [sys.executable, "-m", "agora.cli.main", "admin", "audit", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert [(r["method"], r["route"], r["status"], r["path_params"]) for r in rows] == [
        ("DELETE", "/items/{item_id}", 404, {"item_id": "p9"}),
        ("POST", "/admin/reload", 200, {}),
    ]
    table = subprocess.run(
        [sys.executable, "-m", "agora.cli.main", "admin", "audit", "--route", "/admin/reload"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert table.returncode == 0 and "/admin/reload" in table.stdout
    assert "/items/{item_id}" not in table.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "agora.cli.main", "admin", "audit", "--since", "soon"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2 and "--since" in bad.stderr


def test_a_served_app_deletes_entries_past_the_retention(tmp_path: Path, database_url: str) -> None:
    """The audit log does not grow for ever: `agora serve` deletes entries older than
    `audit_retention_days` in the background (hourly, and once at start)."""
    from datetime import UTC, datetime, timedelta

    from agora.audit.service import AdminAction, record

    settings = make_settings(tmp_path, database_url, audit_retention_days=30)
    with TestClient(create_app(settings)) as client:
        sessions = client.app.state.sessions
        now = datetime.now(UTC)
        for age in (400, 31, 29, 0):
            record(
                sessions,
                AdminAction(now - timedelta(days=age), "k1", "PUT", f"/age/{age}", 200, None),
            )
        client.app.state.jobs.wake("audit retention")
        deadline = time.monotonic() + 10
        while True:
            with sessions() as session:
                kept = sorted(session.scalars(select(AdminAudit.route)))
            if kept == ["/age/0", "/age/29"] or time.monotonic() > deadline:
                break
            time.sleep(0.05)
    assert kept == ["/age/0", "/age/29"]
