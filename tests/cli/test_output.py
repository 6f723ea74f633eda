"""What the CLI prints: titles, ids and tags from the store appear as they are (no rich markup)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agora.cli.main import app as cli
from agora.config import get_settings

runner = CliRunner()
TITLE = "How do I [staking] pools? [bold]really[/bold] :smile:"
USER = "[red]eve"


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A data folder holding items whose titles and a user whose id look like rich markup."""
    data = tmp_path / "agora-data"
    monkeypatch.setenv("AGORA_DATA_DIR", str(data))
    get_settings.cache_clear()
    rows = [{"kind": "item", "item_id": "p1", "author_id": USER, "title": TITLE, "tags": ["x"]}]
    rows += [{"kind": "item", "item_id": f"q{i}", "title": f"plain {i}"} for i in range(3)]
    users = [USER, "u2", "u3", "u4"]
    rows += [
        {"event_id": f"e{i}-{item}", "user_id": u, "item_id": item, "type": "like"}
        for i, u in enumerate(users)
        for item in ("p1", "q0", "q1")
        if not (u == "u2" and item == "p1")
    ]
    path = tmp_path / "community.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    imported = runner.invoke(cli, ["import", str(path)])
    assert imported.exit_code == 0, imported.output
    trained = runner.invoke(cli, ["train", "--models", "trending", "--no-validate"])
    assert trained.exit_code == 0, trained.output
    yield data
    get_settings.cache_clear()


def test_recommend_prints_titles_with_brackets_as_they_are(store: Path) -> None:
    env = {**os.environ, "AGORA_DATA_DIR": str(store), "COLUMNS": "200"}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "agora.cli.main",
            "recommend",
            "u2",
            "--n",
            "3",
            "--model",
            "trending",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert TITLE in done.stdout, done.stdout


def test_engagement_commands_print_user_ids_as_they_are(store: Path) -> None:
    assert runner.invoke(cli, ["engagement", "replay"]).exit_code == 0
    board = runner.invoke(cli, ["engagement", "leaderboard"], terminal_width=200)
    assert board.exit_code == 0 and USER in board.output, board.output
    points = runner.invoke(cli, ["engagement", "points", USER], terminal_width=200)
    assert points.exit_code == 0 and points.output.startswith(f"{USER}: "), points.output
    unknown = runner.invoke(cli, ["engagement", "points", "[b]nobody"], terminal_width=200)
    assert unknown.exit_code == 2 and "[b]nobody" in unknown.output, unknown.output
