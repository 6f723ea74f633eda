"""The `agora` command as users run it: clear errors with file and line, real files, real splits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agora.cli.main import app as cli
from agora.config import get_settings

runner = CliRunner()


@pytest.fixture(autouse=True)
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("AGORA_DATA_DIR", str(tmp_path / "agora-data"))
    get_settings.cache_clear()
    yield tmp_path / "agora-data"
    get_settings.cache_clear()


def _stored_events() -> int:
    from agora.db.engine import make_engine, migrate, session_factory
    from agora.db.queries import counts

    engine = make_engine(get_settings().resolved_database_url)
    migrate(engine)
    with session_factory(engine)() as session:
        return counts(session)["events"]


def test_import_reports_file_line_and_field_and_writes_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "events.jsonl"
    bad.write_text(
        '{"event_id": "e1", "user_id": "u1", "item_id": "p1", "type": "like"}\n'
        '{"event_id": "e2", "user_id": "u1", "item_id": "p2", "type": "like", '
        '"timestamp": "not a date"}\n'
    )
    result = runner.invoke(cli, ["import", str(bad)])
    assert result.exit_code == 2
    assert "events.jsonl:2" in result.output and "timestamp" in result.output
    assert _stored_events() == 0


def test_import_good_file_then_resend_stores_once(tmp_path: Path) -> None:
    good = tmp_path / "events.jsonl"
    good.write_text(
        "\n".join(
            json.dumps({"event_id": f"e{i}", "user_id": "u1", "item_id": f"p{i}", "type": "view"})
            for i in range(5)
        )
        + "\n"
    )
    assert runner.invoke(cli, ["import", str(good)]).exit_code == 0
    again = runner.invoke(cli, ["import", str(good)])
    assert again.exit_code == 0 and "5 events already stored" in again.output
    assert _stored_events() == 5


def test_import_missing_path_and_unknown_format(tmp_path: Path) -> None:
    missing = runner.invoke(cli, ["import", str(tmp_path / "nope.jsonl")])
    assert missing.exit_code == 2 and "no such file" in missing.output
    odd = tmp_path / "data.bin"
    odd.write_bytes(b"\x00\x01")
    unknown = runner.invoke(cli, ["import", str(odd)])
    assert unknown.exit_code == 2 and "format" in unknown.output


def test_train_on_empty_store_says_what_to_do() -> None:
    result = runner.invoke(cli, ["train"])
    assert result.exit_code == 2 and "agora import" in result.output


def test_eval_writes_recommendations_metrics_and_report(
    shared_benchmarks: Path, tmp_path: Path
) -> None:
    out = tmp_path / "eval"
    split = shared_benchmarks / "ml100k-seq"
    result = runner.invoke(
        cli,
        ["eval", "--split", str(split), "--model", "itemknn", "--out", str(out), "--k", "10"],
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0.0 < metrics["ndcg@10"] < 1.0 and metrics["n_test_users"] == 939
    lines = (out / "recommendations.tsv").read_text().splitlines()
    assert lines[0] == "user_id\titem_id\trank" and len(lines) == 1 + 939 * 10
    assert (out / "report.md").exists() and list(out.glob("*.png"))


def test_eval_rejects_bad_params_json(shared_benchmarks: Path, tmp_path: Path) -> None:
    result = runner.invoke(
        cli,
        [
            "eval",
            "--split",
            str(shared_benchmarks / "ml100k-seq"),
            "--model",
            "ease",
            "--params",
            "{reg: 5",
            "--out",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 2 and "--params is not valid JSON" in result.output


def test_prune_impressions_keeps_the_recent_ones() -> None:
    from datetime import UTC, datetime, timedelta

    from agora.db.engine import make_engine, migrate, session_factory, transaction
    from agora.db.tables import FeedImpression, Item, User

    engine = make_engine(get_settings().resolved_database_url)
    migrate(engine)
    now = datetime.now(UTC)
    with transaction(session_factory(engine)) as session:
        session.add_all([User(id=1, external_id="u", created=now, attributes={}),
                         Item(id=1, external_id="i", created=now, tags=[], media={},
                              attributes={})])  # fmt: skip
        session.flush()
        session.add_all(
            FeedImpression(
                user_id=1,
                item_id=1,
                session="s" * 12,
                position=p,
                source="fresh",
                served=now - timedelta(days=age),
            )  # fmt: skip
            for p, age in enumerate([1, 10, 40, 90])
        )
    result = runner.invoke(cli, ["prune-impressions", "--older-than-days", "30"])
    assert result.exit_code == 0, result.output
    assert "deleted 2 impressions" in result.output
    with session_factory(engine)() as session:
        assert session.query(FeedImpression).count() == 2


def test_serve_and_demo_explain_host_and_port() -> None:
    for command in ("serve", "demo"):
        result = runner.invoke(cli, [command, "--help"], terminal_width=200, env={"COLUMNS": "200"})
        assert result.exit_code == 0, result.output
        text = " ".join(result.output.split())
        assert "--host" in text and "--port" in text, text
        assert "AGORA_HOST" in text and "AGORA_PORT" in text, text
        assert "default 127.0.0.1" in text and "default 8000" in text, text
