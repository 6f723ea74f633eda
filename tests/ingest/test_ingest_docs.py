"""The examples in docs/import-format.md import as written."""

from __future__ import annotations

import re
from pathlib import Path

from agora.ingest.agora_format import load_agora

DOC = Path(__file__).resolve().parents[2] / "docs" / "import-format.md"
EXAMPLE = re.compile(r"<!-- example: (\S+)(?: kind=(\w+))? -->\n```\w+\n(.*?)```", re.S)


def test_documented_examples_import(tmp_path: Path) -> None:
    examples = EXAMPLE.findall(DOC.read_text(encoding="utf-8"))
    assert [name for name, _, _ in examples] == ["example.jsonl", "events.csv", "items.csv"]
    counts = {}
    for name, kind, text in examples:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        counts[name] = load_agora(path, kind=kind or None).counts()
    assert counts["example.jsonl"] == {
        "users": 2,
        "groups": 1,
        "items": 1,
        "events": 2,
        "edges": 1,
        "memberships": 1,
    }
    assert counts["events.csv"]["events"] == 2
    assert counts["items.csv"]["items"] == 2
