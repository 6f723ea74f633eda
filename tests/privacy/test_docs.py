"""docs/privacy.md names every table and reference that export and erasure reach."""

from __future__ import annotations

from pathlib import Path

from agora.privacy.service import UNKEYED, user_columns

DOC = Path(__file__).resolve().parents[2] / "docs" / "privacy.md"


def test_the_privacy_page_names_every_table_erasure_reaches() -> None:
    text = DOC.read_text()
    missing = [
        f"{c.table.name}.{c.name}"
        for c in user_columns()
        if f"`{c.table.name}`" not in text or f"`{c.name}`" not in text
    ]
    missing += [name for name in UNKEYED if f"`{name}`" not in text]
    assert missing == [], f"docs/privacy.md does not name {missing}"
