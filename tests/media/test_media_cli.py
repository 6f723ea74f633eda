"""``agora media analyse|show`` on a real store and a real media folder."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner
from vision_support import CHINESE, LATIN, text_image

from agora.cli.main import app
from agora.config import get_settings

runner = CliRunner()


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "media").mkdir()
    monkeypatch.setenv("AGORA_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("AGORA_MEDIA_ROOT", str(tmp_path / "media"))
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def test_analyse_reads_the_folder_and_show_says_what_was_read_and_why_not(env: Path) -> None:
    image = text_image([("Stake pool meetup", LATIN), ("质押池见面会", CHINESE)])
    (env / "media" / "a.png").write_bytes(image)
    items = env / "items.jsonl"
    items.write_text(
        '{"kind":"item","item_id":"i1","title":"Meetup","media":{"images":["a.png","b.png"]}}\n'
    )
    assert runner.invoke(app, ["import", str(items)]).exit_code == 0
    analysed = runner.invoke(app, ["media", "analyse"])
    assert analysed.exit_code == 0, analysed.output
    assert "read 1 image(s)" in analysed.output and "1 could not be fetched" in analysed.output
    shown = runner.invoke(app, ["media", "show", "i1"])
    assert shown.exit_code == 0
    flat = re.sub(r"[\s│┃]", "", shown.output)  # the table wraps cells to the console width
    assert "质押池见面会" in flat and "nosuchfileundermedia_root" in flat
    assert runner.invoke(app, ["media", "show", "nope"]).exit_code == 1
    again = runner.invoke(app, ["media", "analyse"])
    assert "read 0 image(s)" in again.output  # nothing is read twice
