"""The whole path a platform takes: import the bundled dump, train, recommend, post an event."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from agora.api.app import create_app
from agora.cli.main import app as cli
from agora.config import Settings, get_settings


@pytest.fixture
def agora_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("AGORA_DATA_DIR", str(tmp_path / "agora-data"))
    monkeypatch.setenv("AGORA_API_KEY", "e2e-admin")
    monkeypatch.setenv("AGORA_MODELS", '["trending", "itemknn", "ease"]')
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()


def test_import_train_recommend_then_an_event_removes_the_item(
    agora_env: Settings, bundled_dump: Path
) -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["import", str(bundled_dump)])
    assert result.exit_code == 0, result.output
    assert "imported" in result.output
    result = runner.invoke(cli, ["train"])
    assert result.exit_code == 0, result.output

    client = TestClient(create_app(agora_env))
    headers = {"Authorization": "Bearer e2e-admin"}
    with client:
        first = client.get("/users/28/recommendations?n=5&model=ease", headers=headers)
        assert first.status_code == 200, first.text
        items = [r["item_id"] for r in first.json()["items"]]
        assert len(items) == 5 and all(r["model"] == "ease" for r in first.json()["items"])
        assert all(r["title"] and r["created"] for r in first.json()["items"])
        top = items[0]
        posted = client.post(
            "/events",
            headers=headers,
            json={"event_id": "e2e-1", "user_id": "28", "item_id": top, "type": "view"},
        )
        assert posted.status_code in (200, 201), posted.text
        after = client.get("/users/28/recommendations?n=5&model=ease", headers=headers)
        after_items = [r["item_id"] for r in after.json()["items"]]
        assert top not in after_items and len(after_items) == 5
