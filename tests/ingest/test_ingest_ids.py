"""Importers apply the same id rule as the write routes, named by file, line and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from agora.ingest.errors import ImportFailed
from agora.ingest.registry import load_any


def test_an_unaddressable_id_in_a_file_is_named_by_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text(
        '{"event_id":"e1","user_id":"张伟 🙂","item_id":"100%","type":"like"}\n'
        '{"event_id":"e2","user_id":"alice/bob","item_id":"p1","type":"like"}\n'
        '{"kind":"item","item_id":"..","author_id":"a\\nb"}\n'
    )
    with pytest.raises(ImportFailed) as info:
        load_any(path)
    found = [(p.line, p.field) for p in info.value.problems]
    assert found == [(2, "user_id"), (3, "item_id"), (3, "author_id")]
    assert "an id must not contain '/' (no route could address it)" in str(info.value)
    path.write_text(path.read_text().splitlines()[0] + "\n")
    assert load_any(path).events[0].user_id == "张伟 🙂"
