"""The importers apply the same time rule as the write routes: same message, file and line."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agora.cli.main import app as cli
from agora.config import get_settings
from agora.ingest.errors import ImportFailed
from agora.ingest.registry import load_any

runner = CliRunner()
LINE = '{{"event_id":"e{n}","user_id":"u1","item_id":"p1","type":"like","timestamp":"{when}"}}\n'


def _events(path: Path, *times: str) -> Path:
    path.write_text("".join(LINE.format(n=n, when=when) for n, when in enumerate(times)))
    return path


def test_an_ancient_event_in_a_file_is_named_by_line(tmp_path: Path) -> None:
    path = _events(tmp_path / "events.jsonl", "2020-01-01T00:00:00Z", "0001-01-01T00:00:00Z")
    with pytest.raises(ImportFailed) as info:
        load_any(path)
    (problem,) = info.value.problems
    assert (problem.line, problem.field) == (2, "timestamp")
    assert "is before 1970-01-01T00:00:00+00:00, the earliest accepted time" in problem.message


def test_the_earliest_time_setting_applies_to_every_format(tmp_path: Path) -> None:
    earliest = datetime(2010, 1, 1, tzinfo=UTC)
    path = _events(tmp_path / "events.jsonl", "2009-12-31T00:00:00Z", "2011-01-01T00:00:00Z")
    with pytest.raises(ImportFailed) as info:
        load_any(path, earliest=earliest)
    assert [(p.line, p.field) for p in info.value.problems] == [(1, "timestamp")]
    assert "earliest accepted time (AGORA_EARLIEST_TIMESTAMP)" in str(info.value)

    folder = tmp_path / "bench"
    folder.mkdir()
    (folder / "train.tsv").write_text(
        "user_id\titem_id\trating\ttimestamp\nu1\ti1\t1\t1230768000\nu2\ti1\t1\t1293840000\n"
    )  # 2009-01-01 and 2011-01-01
    assert len(load_any(folder, "benchmark").events) == 2
    with pytest.raises(ImportFailed) as info:
        load_any(folder, "benchmark", earliest=earliest)
    assert "2009-01-01T00:00:00+00:00 is before 2010-01-01T00:00:00+00:00" in str(info.value)


def test_cli_import_exits_2_with_file_and_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGORA_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("AGORA_EARLIEST_TIMESTAMP", "2015-01-01T00:00:00Z")
    get_settings.cache_clear()
    try:
        path = _events(tmp_path / "events.jsonl", "2016-01-01T00:00:00Z", "2014-01-01T00:00:00Z")
        result = runner.invoke(cli, ["import", str(path)])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 2, result.output
    assert "events.jsonl:2" in result.output and "earliest accepted time" in result.output
