"""``agora moderation train|scan|queue|decide`` on a real store: upheld flags become labels,
the retrained classifier queues new spam, a decision from the command line feeds back."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from moderation_support import Sample
from sqlalchemy import select
from typer.testing import CliRunner

from agora.config import get_settings
from agora.db.engine import make_engine, migrate, session_factory, transaction
from agora.db.tables import Event
from agora.ingest.service import upsert_items
from agora.moderation import service
from agora.moderation.cli import app

runner = CliRunner()


@pytest.fixture
def store(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("AGORA_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("AGORA_DATABASE_URL", database_url)
    get_settings.cache_clear()
    engine = make_engine(database_url)
    migrate(engine)
    yield session_factory(engine)
    engine.dispose()
    get_settings.cache_clear()


def test_upheld_flags_train_the_classifier_that_then_queues_new_spam(store, sample: Sample) -> None:
    now = datetime.now(UTC)
    with transaction(store) as session:
        upsert_items(session, sample.ok[:60] + sample.spam[:12])
        for n, item in enumerate(sample.spam[:12]):
            flagged = service.add_flag(session, item.item_id, f"reader{n % 3}", "spam", now)
            service.decide(session, flagged.case.id, "uphold", now, decided_by="test")
    with store() as session:
        assert service.labelled_examples(session).counts() == {"low_quality": 12, "ok": 60}

    trained = runner.invoke(app, ["train"])
    assert trained.exit_code == 0, trained.output
    assert "12 low-quality and 60 ok items" in trained.output

    new_ok, new_spam = sample.ok[60:80], sample.spam[12:20]
    with transaction(store) as session:
        upsert_items(session, new_ok + new_spam)
    scanned = runner.invoke(app, ["scan"])
    assert scanned.exit_code == 0, scanned.output
    assert "scored 100 items" in scanned.output
    with store() as session:
        queued = {c.item_id: c for c in service.review_queue(session, limit=500)}
    assert len(set(queued) & {i.item_id for i in new_spam}) >= 6
    assert len(set(queued) & {i.item_id for i in new_ok}) <= 2
    assert not set(queued) & {i.item_id for i in sample.spam[:12]}  # decided: not again

    listed = runner.invoke(app, ["queue", "--limit", "50"])
    assert listed.exit_code == 0 and new_spam[0].title[:20] in listed.output
    case = max(queued.values(), key=lambda c: c.priority)
    decided = runner.invoke(app, ["decide", str(case.case_id), "uphold", "--moderator", "ops"])
    assert decided.exit_code == 0, decided.output
    assert "moderation:" in decided.output and "upheld" in decided.output
    with store() as session:
        upheld = session.scalars(select(Event).where(Event.type == "flag_upheld")).all()
    assert len(upheld) == 13  # 12 from the seed, 1 from the command line

    wrong = runner.invoke(app, ["decide", str(case.case_id), "reject"])
    assert wrong.exit_code == 2 and "already decided" in wrong.output
    missing = runner.invoke(app, ["decide", "99999", "uphold"])
    assert missing.exit_code == 2 and "99999 not found" in missing.output


def test_train_without_enough_labels_says_so(store) -> None:
    result = runner.invoke(app, ["train"])
    assert result.exit_code == 2
    assert "cannot train: need at least 5 examples of each class" in result.output
    scan = runner.invoke(app, ["scan"])
    assert scan.exit_code == 2 and "agora moderation train" in scan.output
