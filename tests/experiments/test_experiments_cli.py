"""``agora experiment`` commands against a real store (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from experiments_support import USERS, community, event, experiment, impressions
from typer.testing import CliRunner

from agora.config import Settings, get_settings
from agora.db.engine import make_engine, session_factory, transaction
from agora.experiments import service
from agora.experiments.cli import app
from agora.ingest.service import add_dataset, add_events

runner = CliRunner()


@pytest.fixture
def store(
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    migrated_store: Callable[[str], str],
) -> Iterator[Path]:
    """The CLI set to use a copy of the run's migrated store holding the community."""
    monkeypatch.setenv("AGORA_DATABASE_URL", database_url)
    get_settings.cache_clear()
    engine = make_engine(migrated_store(database_url))
    with transaction(session_factory(engine)) as session:
        add_dataset(session, community(), Settings().event_types, max_future_seconds=1e9)
    engine.dispose()
    yield tmp_path
    get_settings.cache_clear()


def test_power_prints_the_sample_size() -> None:
    result = runner.invoke(
        app, ["power", "--baseline", "0.05", "--mde", "0.01", "--alpha", "0.05", "--power", "0.8"]
    )
    assert result.exit_code == 0, result.output
    assert "8,158 users per arm" in result.output
    means = runner.invoke(app, ["power", "--sd", "1", "--mde", "0.1"])
    assert "1,570 users per arm" in means.output
    bad = runner.invoke(app, ["power", "--baseline", "0.99", "--mde", "0.05"])
    assert bad.exit_code == 2 and "between 0 and 1" in bad.output


def test_create_list_stop_and_report(store: Path) -> None:
    path = store / "experiments.json"
    path.write_text(json.dumps(experiment(planned_users=1)))
    bad = runner.invoke(app, ["create", str(path)])
    assert bad.exit_code == 2 and "planned_users" in bad.output
    path.write_text(json.dumps(experiment()))
    created = runner.invoke(app, ["create", str(path), "--start"])
    assert created.exit_code == 0, created.output
    assert "1 experiment(s) created" in created.output
    assert "0 experiment(s) created, 1 already" in runner.invoke(app, ["create", str(path)]).output

    # a day of traffic: exposures, impressions, and the diverse arm clicks more
    engine = make_engine(get_settings().resolved_database_url)
    sessions = session_factory(engine)
    start = datetime.now(UTC) - timedelta(days=3)
    with transaction(sessions) as session:
        rows, events = [], []
        for n, user in enumerate(USERS[:60]):
            at = start + timedelta(minutes=30 * n)
            service.arm_overrides(session, user, at)
            rows += [(user, "i0", at), (user, "i1", at)]
            if n % 2 == 0 or service.arm_overrides(session, user, at):
                events.append(event(user, "i0", "like", at + timedelta(minutes=5)))
        impressions(session, rows)
        add_events(session, events, Settings().event_types)
    engine.dispose()

    listed = runner.invoke(app, ["list"])
    assert listed.exit_code == 0 and "diverse" in listed.output and "running" in listed.output
    assert "no guardrail tripped" in runner.invoke(app, ["check"]).output
    out = store / "report"
    result = runner.invoke(app, ["report", "diverse", "--out", str(out)])
    assert result.exit_code == 0, result.output
    text = (out / "report.md").read_text()
    assert "## Metrics per arm" in text and "| diverse | ctr |" in text
    assert "delta-method" in text and "Welch" in text
    for metric in ("ctr", "engagement_per_user", "retention"):
        assert (out / f"{metric}.png").read_bytes()[:4] == b"\x89PNG"
        assert f"]({metric}.png)" in text

    stopped = runner.invoke(app, ["stop", "diverse", "--reason", "shipped"])
    assert stopped.exit_code == 0 and "shipped" in stopped.output
    assert runner.invoke(app, ["start", "diverse"]).exit_code == 2
    assert runner.invoke(app, ["report", "nope", "--out", str(out)]).exit_code == 2
