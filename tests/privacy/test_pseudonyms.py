"""Pseudonymous ids: with AGORA_PSEUDONYMIZE_IDS=1 the database file and every model artefact
hold no platform user id, the API still speaks the platform's ids, and a wrong or missing
secret is refused instead of taking every user for a new one."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from privacy_support import ADMIN, ZED, make_client, seed, train
from sqlalchemy import select, text

from agora.db.engine import make_engine, migrate
from agora.db.pseudonyms import IdSealer, WrongSecret, check_store
from agora.db.tables import User
from agora.models.artifacts import list_artifacts

SECRET = "a test secret, long enough"
#: distinctive members: found anywhere, they were stored in the clear
NAMED = [ZED, "mallory-93be", "trudy-c0de"]


def _sealed_client(tmp_path: Path, database_url: str, secret: str = SECRET) -> TestClient:
    return make_client(tmp_path, database_url, pseudonymize_ids=True, id_secret=secret)


def _seed_named(client: TestClient) -> None:
    seed(client)
    for name in NAMED[1:]:
        assert client.put(f"/users/{name}", json={}, headers=ADMIN).status_code == 201
        like = {"event_id": f"ev-{len(name)}-{name[-4:]}", "user_id": name, "item_id": "p1",
                "type": "like", "timestamp": "2026-12-01T10:00:00Z"}  # fmt: skip
        assert client.post("/events", json=[like], headers=ADMIN).status_code == 201
    edge = {"source_id": NAMED[1], "target_id": NAMED[2], "type": "follow"}
    assert client.post("/edges", json=[edge], headers=ADMIN).status_code in (200, 201)


def _raw_forms(user_id: str) -> list[bytes]:
    """How an id could sit in a file: UTF-8 (SQLite, JSON) and UTF-32 (numpy unicode arrays)."""
    return [user_id.encode(), user_id.encode("utf-32-le")]


def _files_holding(root: Path, needles: list[bytes]) -> list[str]:
    return sorted(
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.is_file() and any(n in p.read_bytes() for n in needles)
    )


def _computed(client: TestClient, path: str) -> dict:
    """A stored analytics result, once its background job has written it."""
    deadline = time.monotonic() + 60
    while (answer := client.get(path, headers=ADMIN)).status_code == 202:
        assert time.monotonic() < deadline, f"{path} still pending after 60 s"
        time.sleep(0.2)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_a_sealed_store_and_its_artefacts_hold_no_user_id(tmp_path: Path) -> None:
    """SQLite, so that the whole database is one file to search (WAL folded in)."""
    database = tmp_path / "agora.db"
    with _sealed_client(tmp_path, f"sqlite:///{database}") as client:
        _seed_named(client)
        train(client)
        # the API speaks the platform's ids, both ways
        assert client.get(f"/users/{ZED}", headers=ADMIN).json()["user_id"] == ZED
        edges = client.get(f"/users/{NAMED[1]}/edges", headers=ADMIN).json()
        assert NAMED[2] in str(edges)
        assert client.get(f"/users/{ZED}/feed", headers=ADMIN).status_code == 200
        assert client.get(f"/users/{ZED}/recommendations", headers=ADMIN).status_code == 200
        exported = client.get(f"/users/{ZED}/export", headers=ADMIN).json()
        assert exported["user_id"] == ZED
        for path in ("/analytics/influence", "/analytics/anomalies/users"):  # stored results
            assert _computed(client, path)
        assert ZED in client.get("/leaderboards", headers=ADMIN).text + str(
            client.get(f"/users/{ZED}/points", headers=ADMIN).json()
        )
        models = client.app.state.models
        assert models.get("als").user_index.get(ZED) is not None
    with sqlite3.connect(database) as conn:  # fold the write-ahead log into the file
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    for name in NAMED:
        assert _files_holding(tmp_path, _raw_forms(name)) == [], name
    assert list_artifacts(tmp_path / "data" / "models")  # the search covered artefacts
    # what the file holds instead: the sealed form, the same for the same id
    sealer = IdSealer(SECRET)
    assert _files_holding(tmp_path, [sealer.seal(ZED).encode()]) == ["agora.db"]
    # erased, their pseudonym is in no row and no artefact either
    with _sealed_client(tmp_path, f"sqlite:///{database}") as client:
        assert client.delete(f"/users/{ZED}", headers=ADMIN).status_code == 204
        with sqlite3.connect(database) as conn:
            tables = [
                r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
            ]
            found = [
                table
                for table in tables
                for row in conn.execute(f'SELECT * FROM "{table}"')  # noqa: S608
                if any(sealer.seal(ZED) in str(v) or sealer.pseudonym(ZED) in str(v) for v in row)
            ]
        assert found == []
    assert _files_holding(tmp_path / "data", [sealer.seal(ZED).encode()]) == []


def test_a_store_refuses_another_secret_or_none(tmp_path: Path, database_url: str) -> None:
    with _sealed_client(tmp_path, database_url) as client:
        assert client.put(f"/users/{ZED}", json={}, headers=ADMIN).status_code == 201
    for secret in ("another secret, long enough", None):
        engine = make_engine(database_url, ids=IdSealer(secret) if secret else None)
        migrate(engine)
        with pytest.raises(WrongSecret):
            check_store(engine)
        engine.dispose()
    # the right secret opens it: the stored text is the sealed id, the ORM gives the id back
    engine = make_engine(database_url, ids=IdSealer(SECRET))
    check_store(engine)
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT external_id FROM users")).scalar()
        assert stored == IdSealer(SECRET).seal(ZED) != ZED
        assert conn.execute(select(User.external_id)).scalar() == ZED
    engine.dispose()


def test_a_plain_store_with_users_is_not_sealed_by_a_setting(
    tmp_path: Path, database_url: str
) -> None:
    with make_client(tmp_path, database_url) as client:
        assert client.put(f"/users/{ZED}", json={}, headers=ADMIN).status_code == 201
    with (
        pytest.raises(WrongSecret, match="agora users rekey"),
        _sealed_client(tmp_path, database_url),
    ):
        pass


def test_sealing_is_deterministic_keyed_and_checked() -> None:
    sealer, other = IdSealer(SECRET), IdSealer("another secret, long enough")
    assert sealer.seal("ann") == sealer.seal("ann") != sealer.seal("ann ")
    assert sealer.seal("ann") != other.seal("ann")
    assert sealer.open(sealer.seal("用户-1")) == "用户-1"
    assert len(sealer.seal("x" * 255)) < 2048 and len(sealer.seal("語" * 255)) < 2048
    with pytest.raises(ValueError):
        other.open(sealer.seal("ann"))
    assert sealer.open_json(sealer.seal_json({"top": ["ann"]})) == {"top": ["ann"]}
    with pytest.raises(ValueError, match="at least 16"):
        IdSealer("short")


def _rekey(tmp_path: Path, database_url: str, new: str | None, old: str | None) -> str:
    """``agora users rekey`` in its own process; returns what it printed."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGORA_")}
    env |= {"AGORA_DATA_DIR": str(tmp_path / "data"), "AGORA_DATABASE_URL": database_url}
    if new is not None:
        env |= {"AGORA_PSEUDONYMIZE_IDS": "1", "AGORA_ID_SECRET": new}
    if old is not None:
        env["AGORA_OLD_ID_SECRET"] = old
    done = subprocess.run(
        [sys.executable, "-m", "agora.cli.main", "users", "rekey"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _serves_zed(tmp_path: Path, database_url: str, secret: str | None) -> None:
    sealed = {"pseudonymize_ids": True, "id_secret": secret} if secret else {}
    with make_client(tmp_path, database_url, **sealed) as client:
        assert client.get(f"/users/{ZED}", headers=ADMIN).json()["user_id"] == ZED
        edges = client.get("/users/u2/edges", headers=ADMIN).json()
        assert ZED in str(edges)
        assert client.app.state.models.get("als").user_index.get(ZED) is not None
        audit = client.get("/admin/audit", headers=ADMIN).json()["entries"]
        assert {"user_id": ZED} in [e["path_params"] for e in audit]


def test_rekey_seals_a_plain_store_moves_it_to_a_new_secret_and_opens_it(
    tmp_path: Path, database_url: str
) -> None:
    with make_client(tmp_path, database_url) as client:
        seed(client)
        train(client)
        assert client.get(f"/users/{ZED}/export", headers=ADMIN).status_code == 200  # audited
        deadline = time.monotonic() + 10
        while not client.get("/admin/audit", headers=ADMIN).json()["entries"]:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    first, second = SECRET, "the second secret, rotated in"

    printed = _rekey(tmp_path, database_url, new=first, old=None)
    assert "user ids: plain -> sealed:" in printed and "artefact versions rewritten: 4" in printed
    if database_url.startswith("sqlite"):  # the file whole, old pages compacted away
        assert _files_holding(tmp_path, _raw_forms(ZED)) == []
    _serves_zed(tmp_path, database_url, first)

    _rekey(tmp_path, database_url, new=second, old=first)
    with pytest.raises(WrongSecret):
        _serves_zed(tmp_path, database_url, first)
    _serves_zed(tmp_path, database_url, second)
    assert "nothing to do" in _rekey(tmp_path, database_url, new=second, old=first)  # re-run

    _rekey(tmp_path, database_url, new=None, old=second)
    _serves_zed(tmp_path, database_url, None)
