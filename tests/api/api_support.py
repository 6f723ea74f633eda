"""Helpers shared by the API tests (imported by name: pytest puts this folder on sys.path)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from agora.config import Settings
from agora.db import queries

ADMIN = {"Authorization": "Bearer test-admin"}
READ = {"Authorization": "Bearer r"}
WRITE = {"Authorization": "Bearer w"}


def make_settings(tmp_path: Path, database_url: str, **overrides: Any) -> Settings:
    keys = {"api_key": "test-admin", "api_keys": {"r": ["read"], "w": ["write"]}}
    return Settings(data_dir=tmp_path / "data", database_url=database_url, **(keys | overrides))


def counts(client: TestClient) -> dict[str, int]:
    """Rows per table, read straight from the app's database."""
    with client.app.state.sessions() as session:
        return queries.counts(session)


def event(n: int | str, user: str = "u1", item: str = "p1", kind: str = "like", **kw) -> dict:
    return {"event_id": f"e{n}", "user_id": user, "item_id": item, "type": kind, **kw}
