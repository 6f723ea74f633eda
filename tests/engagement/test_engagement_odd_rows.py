"""`agora engagement replay|leaderboard` on a store holding an event dated year 1 and one dated
year 9999 (written past validation, as old data or another writer would)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from engagement_support import T0, events, items
from sqlalchemy import insert, select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from agora.cli.main import app as agora
from agora.config import get_settings
from agora.db.engine import transaction
from agora.db.tables import Event, Item, User

runner = CliRunner()


def test_replay_and_leaderboard_read_odd_times_clamped(
    sessions: sessionmaker[Session],
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with transaction(sessions) as session:
        items(session, {"q1": ("asker", ["python"])})
        events(session, [(f"like{i}", f"fan{i}", "q1", "like", T0) for i in range(3)])
        fan = session.scalar(select(User.id).where(User.external_id == "fan0"))
        post = session.scalar(select(Item.id).where(Item.external_id == "q1"))
        for n, when in enumerate(
            (datetime(1, 1, 1, tzinfo=UTC), datetime(9999, 12, 31, tzinfo=UTC))
        ):
            session.execute(
                insert(Event).values(
                    event_id=f"odd{n}", user_id=fan, item_id=post, type="like", value=None,
                    timestamp=when, context={},
                )
            )  # fmt: skip
    monkeypatch.setenv("AGORA_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("AGORA_DATABASE_URL", database_url)
    get_settings.cache_clear()
    try:
        replayed = runner.invoke(agora, ["engagement", "replay"])
        assert replayed.exit_code == 0, replayed.output
        assert replayed.output.startswith("replayed 5 events")
        board = runner.invoke(agora, ["engagement", "leaderboard"])
        assert board.exit_code == 0, board.output
        assert "asker" in board.output
    finally:
        get_settings.cache_clear()
