"""No command prints a secret: every ``agora`` command runs with a database password and an API
key the test knows, and neither shows up in what it prints (stdout, stderr, tracebacks)."""

from __future__ import annotations

import json
import signal
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
import typer
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from agora.cli.main import app as cli
from agora.config import get_settings

DB_PASSWORD = "pg-pass-Zq81xw"
API_KEY = "api-key-Lm42vt"
SECRETS = (DB_PASSWORD, API_KEY)


def _commands() -> Iterator[tuple[list[str], click.Command]]:
    """Every leaf command of the typer app, with its path of names."""
    root = typer.main.get_command(cli)

    def walk(cmd: click.Command, path: list[str], ctx: click.Context):
        if hasattr(cmd, "list_commands"):  # a group (typer's own click types)
            for name in cmd.list_commands(ctx):
                sub = cmd.get_command(ctx, name)
                yield from walk(sub, [*path, name], click.Context(sub, parent=ctx))
        else:
            yield path, cmd

    yield from walk(root, [], click.Context(root))


@pytest.fixture
def secret_env(tmp_path: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> dict:
    url = make_url(postgres_url).set(password=DB_PASSWORD)  # trust auth: any password works
    env = {
        "AGORA_DATABASE_URL": url.render_as_string(hide_password=False),
        "AGORA_API_KEY": API_KEY,
        "AGORA_DATA_DIR": str(tmp_path / "data"),
        "AGORA_MODELS": json.dumps(["trending", "latest"]),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    yield env
    get_settings.cache_clear()


def _arguments(path: list[str], tmp_path: Path) -> list[str] | None:
    """Minimal real arguments per command; None = only ``--help`` (needs files it cannot get)."""
    events = tmp_path / "events.jsonl"
    if not events.exists():
        rows = [
            {"event_id": f"e{i}", "user_id": f"u{i % 3}", "item_id": f"p{i % 4}", "type": "like"}
            for i in range(12)
        ]
        events.write_text("".join(json.dumps(row) + "\n" for row in rows))
    known = {
        "import": [str(events)],
        "recommend": ["u1"],
        "demo": ["--no-serve"],
        "worker": ["--once"],  # without --once it refreshes until stopped
        # both fit the sentiment model on its bundled labelled corpus whatever the store holds
        # (over 10 minutes on this machine): issue 11 item 8 moves that work out of the way
        "analytics sentiment train": ["--help"],
        "analytics sentiment by": ["--help"],
        "engagement points": ["u1"],
        "engagement badges": ["u1"],
        "engagement trust": ["u1"],
        "engagement digest": ["u1"],
        "moderation decide": ["1", "uphold"],
        "market set-status": ["1", "paused"],
        "market report": ["1"],
        "analytics engagement-report": ["--out", str(tmp_path / "engagement.md")],
        "experiment start": ["1"],
        "experiment stop": ["1"],
        "experiment report": ["1", "--out", str(tmp_path / "experiment.md")],
    }
    return known.get(" ".join(path))


def _printed(result) -> str:
    text = result.stdout + (result.stderr or "")
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        text += "".join(traceback.format_exception(result.exception))
    return text


def test_no_command_prints_the_database_password_or_the_api_key(secret_env, tmp_path: Path):
    runner = CliRunner()
    migrated = runner.invoke(cli, ["migrate"])
    assert migrated.exit_code == 0, _printed(migrated)
    assert "***" in migrated.stdout and "postgresql" in migrated.stdout  # masked, still useful
    ran = 0
    commands = sorted(_commands(), key=lambda c: c[0] != ["import"])  # data first
    for path, command in commands:
        if path == ["serve"]:
            continue  # runs until stopped: the next test starts it as a process
        required = any(p.required for p in command.params)
        args = _arguments(path, tmp_path)
        if args is None:
            args = ["--help"] if required else []
        result = runner.invoke(cli, [*path, *args])
        printed = _printed(result)
        for secret in SECRETS:
            assert secret not in printed, f"agora {' '.join(path)} printed a secret:\n{printed}"
        ran += args != ["--help"]
    assert ran >= 30  # most commands really ran, not only their help


def test_serve_prints_and_logs_no_secret(secret_env, spawn_server):
    command = [sys.executable, "-m", "agora.cli.main", "serve"]
    server = spawn_server(command, secret_env)
    assert server.stop(signal.SIGINT) == 0
    log = server.log()
    assert "serving on" in log and "Application startup complete" in log
    for secret in SECRETS:
        assert secret not in log
