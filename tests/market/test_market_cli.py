"""``agora market`` commands against a real SQLite store."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from market_support import community
from typer.testing import CliRunner

from agora.config import Settings, get_settings
from agora.db.engine import make_engine, session_factory, transaction
from agora.ingest.service import add_dataset
from agora.market.cli import app

runner = CliRunner()


@pytest.fixture
def store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, migrated_store: Callable[[str], str]
) -> Path:
    """The data folder's SQLite store (a copy of the run's migrated store) holding the
    community, which the CLI uses."""
    monkeypatch.setenv("AGORA_DATA_DIR", str(tmp_path / "agora-data"))
    get_settings.cache_clear()
    settings = get_settings()
    engine = make_engine(migrated_store(settings.resolved_database_url))
    with transaction(session_factory(engine)) as session:
        add_dataset(session, community(), Settings().event_types, max_future_seconds=1e9)
    engine.dispose()
    yield tmp_path
    get_settings.cache_clear()


def test_create_list_pause_and_report(store: Path) -> None:
    spec = {"campaign_id": "c1", "advertiser": "Acme", "items": ["a0"], "bid": 1, "daily_budget": 5}
    path = store / "campaigns.json"
    path.write_text(json.dumps([spec]))
    created = runner.invoke(app, ["create", str(path)])
    assert created.exit_code == 0, created.output
    assert "1 campaign(s) created" in created.output
    assert (
        "0 campaign(s) created, 1 already stored"
        in runner.invoke(app, ["create", str(path)]).output
    )
    listed = runner.invoke(app, ["campaigns"])
    assert listed.exit_code == 0 and "Acme" in listed.output and "active" in listed.output
    assert runner.invoke(app, ["set-status", "c1", "paused"]).exit_code == 0
    assert "paused" in runner.invoke(app, ["campaigns"]).output
    report = runner.invoke(app, ["report", "c1", "--json"])
    assert report.exit_code == 0, report.output
    assert json.loads(report.output)["impressions"] == 0
    assert json.loads(report.output)["serving"]["status"] == "not_serving"
    printed = runner.invoke(app, ["report", "c1"]).output
    assert "lift method" in printed and "serving now: no" in printed
    assert "why not: paused: its status is paused; PATCH status=active" in printed


def test_bad_input_exits_2_with_where(store: Path) -> None:
    path = store / "bad.json"
    path.write_text(json.dumps({"campaign_id": "c1", "advertiser": "A", "items": [], "bid": 1}))
    bad = runner.invoke(app, ["create", str(path)])
    assert bad.exit_code == 2
    assert "0.items" in bad.output and "0.daily_budget" in bad.output
    path.write_text(
        json.dumps(
            {"campaign_id": "c1", "advertiser": "A", "items": ["zz"], "bid": 1, "daily_budget": 1}
        )
    )
    missing = runner.invoke(app, ["create", str(path)])
    assert (
        missing.exit_code == 2
        and "zz" in missing.output
        and "nothing was written" in missing.output
    )
    assert runner.invoke(app, ["report", "nope"]).exit_code == 2
    assert runner.invoke(app, ["set-status", "c1", "gone"]).exit_code == 2
