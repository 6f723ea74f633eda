"""Every measured table in the README and docs/ is the one its benchmark JSON draws now."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_every_marked_table_matches_its_json(gen_tables) -> None:
    assert gen_tables.stale() == [], "stale tables: run `python docs/gen_tables.py`"


def test_every_renderer_draws_a_table_somewhere_and_every_marker_has_one(gen_tables) -> None:
    markers = {
        (m["source"], m["name"])
        for path in gen_tables.documents()
        for m in gen_tables.MARKER.finditer(path.read_text())
    }
    assert markers == set(gen_tables.RENDERERS) | {gen_tables.INDEX}


def test_a_changed_figure_makes_its_table_stale_and_the_script_redraws_it(
    gen_tables, tmp_path: Path
) -> None:
    """The check can fail: a benchmark writes a new latency, the page no longer matches."""
    (tmp_path / "docs").mkdir()
    shutil.copy(REPO / "README.md", tmp_path / "README.md")
    shutil.copy(REPO / "docs" / "models.md", tmp_path / "docs" / "models.md")
    results = tmp_path / "bench" / "results"
    shutil.copytree(REPO / "bench" / "results", results)  # every table of the page has its JSON
    data = json.loads((results / "latency.json").read_text())
    data["runs"][0]["known_history"]["p50_ms"] = 123.456
    (results / "latency.json").write_text(json.dumps(data))

    assert gen_tables.stale(tmp_path) == ["docs/models.md: bench/results/latency.json#models"]
    page = tmp_path / "docs" / "models.md"
    redrawn = gen_tables.refreshed(page.read_text(), tmp_path)
    assert "| trending | 3,123 | 0.00 | 123.46 |" in redrawn
    page.write_text(redrawn)
    assert gen_tables.stale(tmp_path) == []


def test_a_marker_without_its_closing_line_is_reported_and_takes_no_text(
    gen_tables, tmp_path: Path
) -> None:
    """An opening marker whose ``<!-- /table -->`` is missing must not swallow the prose up to
    the next table's closing line (which once deleted a page's sections)."""
    (tmp_path / "docs").mkdir()
    (tmp_path / "README.md").write_text("# readme\n")
    shutil.copytree(REPO / "bench" / "results", tmp_path / "bench" / "results")
    page = tmp_path / "docs" / "page.md"
    closed = (REPO / "docs" / "models.md").read_text()
    text = "<!-- table: bench/results/latency.json#models -->\n<!-- end -->\n\nprose\n\n" + closed
    page.write_text(text)
    assert gen_tables.stale(tmp_path) == [
        "docs/page.md: unclosed marker (each needs <!-- /table -->)"
    ]
    assert gen_tables.refreshed(text, tmp_path).startswith(text[: text.index("\nprose") + 7])
