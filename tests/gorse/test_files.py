"""`agora import --format gorse` and `agora export --format gorse`: the files Gorse's dashboard
exports go in, and come out again line for line, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agora.cli.main import app as cli
from agora.config import get_settings

USERS = 'user_id,labels\r\nalice,"[""a"",""b""]"\r\nbob,null\r\ncarol,"{""age"":30}"\r\n'
ITEMS = (
    "item_id,is_hidden,categories,time_stamp,labels,description\r\n"
    'i1,false,news|tech,2022-08-07 00:26:46 +0000 UTC,"[""go""]","Hello, world"\r\n'
    "i2,true,,2022-08-08 10:00:00.5 +0000 UTC,null,\r\n"
)
FEEDBACK = (
    "feedback_type,user_id,item_id,time_stamp\r\n"
    "star,alice,i1,2022-09-01 00:00:00 +0000 UTC\r\n"
    "read,bob,i2,2022-09-02 12:30:00 +0000 UTC\r\n"
)


@pytest.fixture
def agora(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator:
    """`agora ...` in-process on a fresh store (SQLite, then PostgreSQL)."""
    monkeypatch.setenv("AGORA_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("AGORA_DATABASE_URL", database_url)
    get_settings.cache_clear()
    runner = CliRunner()
    yield lambda *args: runner.invoke(cli, list(args))
    get_settings.cache_clear()


def _folder(path: Path, **files: str) -> Path:
    path.mkdir()
    for name, text in files.items():
        (path / f"{name}.csv").write_bytes(text.encode())
    return path


def test_gorse_files_go_in_and_come_out_line_for_line(agora, tmp_path: Path) -> None:
    source = _folder(tmp_path / "from-gorse", users=USERS, items=ITEMS, feedback=FEEDBACK)
    imported = agora("import", "--format", "gorse", str(source))
    assert imported.exit_code == 0, imported.output
    assert "2 items" in imported.output and "2 feedback" in imported.output

    exported = agora("export", "--format", "gorse", str(tmp_path / "to-gorse"))
    assert exported.exit_code == 0, exported.output
    for name, text in (("users", USERS), ("items", ITEMS), ("feedback", FEEDBACK)):
        assert (tmp_path / "to-gorse" / f"{name}.csv").read_bytes().decode() == text, name


def test_a_file_with_bad_lines_writes_nothing_and_names_them(agora, tmp_path: Path) -> None:
    bad_items = ITEMS + "i3,maybe,,2022-08-09 00:00:00 +0000 UTC,null,\r\ni4,false,,soon,null,\r\n"
    source = _folder(tmp_path / "bad", users=USERS, items=bad_items)
    refused = agora("import", "--format", "gorse", str(source))
    assert refused.exit_code == 2
    assert "items.csv line 4: is_hidden 'maybe' is not true or false" in refused.output
    assert 'Could not find format for "soon"' in refused.output
    assert "nothing was written" in refused.output
    empty = agora("export", "--format", "gorse", str(tmp_path / "out"))
    assert empty.exit_code == 0, empty.output
    assert (tmp_path / "out" / "users.csv").read_text() == "user_id,labels\n"


def test_an_unmapped_feedback_type_is_refused(agora, tmp_path: Path) -> None:
    source = _folder(
        tmp_path / "poke",
        feedback="feedback_type,user_id,item_id,time_stamp\r\npoke,a,b,2022-01-01\r\n",
    )
    refused = agora("import", "--format", "gorse", str(source))
    assert refused.exit_code == 2 and "unknown feedback type 'poke'" in refused.output
