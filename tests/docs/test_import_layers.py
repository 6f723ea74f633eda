"""The import contract of docs/ARCHITECTURE.md, held by docs/import_layers.py (it reads every
module with ``ast``): no module in src/agora imports a layer above its own, no two domains
import each other, every module has a layer, and the page's tables are what the script prints
now."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[2]

#: Upward imports allowed for a while, as ``importer -> target``, each with why and what removes
#: it (an entry nothing matches fails below). Empty since the error mapping stopped naming
#: ingest's and serving's errors (``api.errors``); add nothing here but to land a move in steps:
#: move the code instead (docs/ARCHITECTURE.md says how).
ALLOWED_UPWARD: set[str] = set()
#: The pairs of domains allowed to import each other: none since the differentially private
#: release moved to the HTTP kit (api.dp), the ads' stored viewer to the feed and the feed's
#: impressions to db.tables. A new pair fails (break it instead: docs/ARCHITECTURE.md says how),
#: and so does a pair listed here once it is broken.
KNOWN_CYCLES: set[tuple[str, str]] = set()


def pair(found: object) -> str:
    return f"{found.module} -> {found.target}"  # type: ignore[attr-defined]


def test_no_import_runs_upward(import_layers: ModuleType) -> None:
    found = [u for u in import_layers.upward() if pair(u) not in ALLOWED_UPWARD]
    assert not found, "imports that run upward (see docs/ARCHITECTURE.md):\n" + "\n".join(
        str(u) for u in found
    )


def test_the_allowlist_names_only_imports_that_still_exist(import_layers: ModuleType) -> None:
    left = ALLOWED_UPWARD - {pair(u) for u in import_layers.upward()}
    assert not left, f"no longer imported, take them off ALLOWED_UPWARD: {sorted(left)}"


def test_no_new_cycle_between_domains(import_layers: ModuleType) -> None:
    cycles = import_layers.domain_cycles()
    assert not cycles - KNOWN_CYCLES, f"domains importing each other: {cycles - KNOWN_CYCLES}"
    assert not KNOWN_CYCLES - cycles, f"broken, take off KNOWN_CYCLES: {KNOWN_CYCLES - cycles}"


def test_every_module_has_a_layer(import_layers: ModuleType) -> None:
    src = import_layers.SRC
    unmapped = [
        name
        for path in sorted(src.rglob("*.py"))
        if (name := import_layers.module_name(path)) != "agora"
        and import_layers.layer(name) is None
    ]
    assert not unmapped, f"put these in import_layers.LAYERS (and the page's table): {unmapped}"


def test_the_architecture_page_shows_the_imports_as_they_are(import_layers: ModuleType) -> None:
    page = (REPO / "docs" / "ARCHITECTURE.md").read_text()
    assert import_layers.markdown() in page, (
        "docs/ARCHITECTURE.md's import tables are stale: paste `python docs/import_layers.py "
        "--markdown` into its last section"
    )


def test_an_upward_import_or_a_table_module_reaching_up_is_found(
    import_layers: ModuleType, tmp_path: Path
) -> None:
    """The check can fail: a models module importing evaluation (at module level or inside a
    function), a tables module importing its domain's service, the schema's assembly importing
    a domain's service rather than its tables."""
    src = tmp_path / "agora"
    files = {
        "models/fit.py": "import numpy\nfrom agora.evaluation.metrics import ndcg\n",
        "models/late.py": "def f():\n    from agora.serving import service\n",
        "feed/models.py": "from agora.db.tables import Base\nfrom agora.feed import service\n",
        "db/migrations/domains.py": "import agora.feed.models\nimport agora.feed.service\n",
        "feed/service.py": "from agora.serving.service import ModelStore\n",
    }
    for name, text in files.items():
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / name).write_text(text)
    found = {(str(u), u.lazy) for u in import_layers.upward(src)}
    assert found == {
        ("agora.models.fit:2 -> agora.evaluation.metrics", False),
        ("agora.models.late:2 -> agora.serving", True),
        ("agora.feed.models:2 -> agora.feed", False),
        ("agora.db.migrations.domains:2 -> agora.feed.service", False),
    }
