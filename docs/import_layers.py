"""List the imports inside src/agora that run upward in the layer plan of docs/ARCHITECTURE.md.

``python docs/import_layers.py`` reads every module with ``ast`` (nothing is imported), maps each
``agora.X`` import to its package's layer and prints the ones whose target sits above the
importer, as ``importer:line -> target`` (and whether the import is inside a function), then
the two-way imports between domains. ``--markdown`` prints the tables the architecture page
carries. tests/docs/test_import_layers.py holds the code to it: no upward import, no new cycle
between domains, and the page's tables as this prints them.
"""

from __future__ import annotations

import argparse
import ast
from dataclasses import dataclass
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src" / "agora"

#: Layer of each part of ``agora`` by module prefix (the longest prefix wins): a module may
#: import its own layer and the layers below it, never one above.
SHELL, DOMAIN, SERVING, EVALUATION, MODELS, FEATURES, INGEST, KIT, GROUND = (
    8,
    7,
    6,
    5,
    4,
    3,
    2,
    1.5,
    1,
)
LAYERS: dict[str, float] = {
    **dict.fromkeys(
        ["api.app", "api.background", "cli", "web", "client", "wiring", "gorse"], SHELL
    ),
    **dict.fromkeys(
        ["analytics", "engagement", "feed", "market", "moderation", "experiments", "privacy"]
        + ["media", "audit"],
        DOMAIN,
    ),
    "serving": SERVING,
    "evaluation": EVALUATION,
    "models": MODELS,
    "features": FEATURES,
    "ingest": INGEST,
    # kits: the HTTP kit (auth, errors, routing, limits, middleware... every api module but the
    # app and its background jobs), the CLI kit (cli.shell) and vision; anyone above the
    # ground may use them, they use only db and config
    **dict.fromkeys(["api", "cli.shell", "vision", "significance", "metrics", "plots"], KIT),
    **dict.fromkeys(["db", "config"], GROUND),
}
#: The schema's assembly: the one module that imports every domain's tables, so that Alembic
#: (db.migrations.env), erasure and rekeying (privacy) see the whole schema on one metadata. It
#: sits in db and may import exactly the tables modules below, nothing else of a domain; those
#: modules define tables on db's metadata and import only db and config themselves (checked),
#: so the assembly reaches nothing above the ground through them.
ASSEMBLY = "agora.db.migrations.domains"
TABLES = {
    f"agora.{name}"
    for name in [
        "analytics.models",
        "audit.models",
        "engagement.models",
        "experiments.models",
        "feed.models",
        "market.models",
        "moderation.models",
        "api.dp_models",
    ]
}
LAYER_NAMES = {
    SHELL: "shell",
    DOMAIN: "domain",
    SERVING: "serving",
    EVALUATION: "evaluation",
    MODELS: "models",
    FEATURES: "features",
    INGEST: "ingest",
    KIT: "kit",
    GROUND: "db/config",
}


def layer(module: str) -> tuple[str, float] | None:
    """``(part, layer)`` of an ``agora`` module by the longest prefix in LAYERS; None if none."""
    names = module.split(".")[1:]
    for end in range(len(names), 0, -1):
        prefix = ".".join(names[:end])
        if prefix in LAYERS:
            return prefix, LAYERS[prefix]
    return None


@dataclass(frozen=True)
class Upward:
    """One import whose target's layer is above its importer's."""

    module: str
    line: int
    target: str
    lazy: bool

    def __str__(self) -> str:
        return f"{self.module}:{self.line} -> {self.target}"


def module_name(path: Path, src: Path = SRC) -> str:
    """``agora.x.y`` of the file ``path`` under the package folder ``src``."""
    rel = path.relative_to(src.parent).with_suffix("")
    names = list(rel.parts)
    return ".".join(names[:-1] if names[-1] == "__init__" else names)


def imports(path: Path, src: Path = SRC) -> list[tuple[str, int, bool]]:
    """``(agora module imported, line, inside a function)`` for every import in ``path``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    module = module_name(path, src)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found: list[tuple[str, int, bool]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            lazy = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
            if isinstance(child, ast.Import):
                found.extend((a.name, child.lineno, in_function) for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = package.split(".")[: len(package.split(".")) - child.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                if base == "agora":  # from agora import config, wiring
                    found.extend(
                        (f"agora.{a.name}", child.lineno, in_function) for a in child.names
                    )
                else:
                    found.append((base, child.lineno, in_function))
            visit(child, lazy)

    visit(tree, False)
    return [(name, line, lazy) for name, line, lazy in found if name.startswith("agora.")]


def allowed(module: str, target: str) -> bool:
    """Whether ``module`` may import ``target``: the same layer or one below, or the schema's
    assembly importing a domain's tables; a tables module imports only db and config."""
    here, there = layer(module), layer(target)
    if here is None or there is None:
        return True
    if module in TABLES:
        return there[1] == GROUND
    return there[1] <= here[1] or (module == ASSEMBLY and target in TABLES)


def upward(src: Path = SRC) -> list[Upward]:
    """Every import in src/agora (or another ``agora`` folder) that :func:`allowed` refuses: its
    target is in a higher layer than its importer (or, from a tables module, above db)."""
    out = []
    for path in sorted(src.rglob("*.py")):
        module = module_name(path, src)
        for target, line, lazy in imports(path, src):
            if not allowed(module, target):
                out.append(Upward(module, line, target, lazy))
    return out


def domain_imports(src: Path = SRC) -> dict[str, set[str]]:
    """Which domains each domain imports (same layer: allowed, but a cycle is a defect)."""
    edges: dict[str, set[str]] = {}
    for path in sorted(src.rglob("*.py")):
        here = layer(module_name(path, src))
        for target, _, _ in imports(path, src):
            there = layer(target)
            if here and there and here[1] == there[1] == DOMAIN and here[0] != there[0]:
                edges.setdefault(here[0], set()).add(there[0])
    return edges


def domain_cycles(edges: dict[str, set[str]] | None = None) -> set[tuple[str, str]]:
    """Pairs of domains that import each other, each pair once as ``(a, b)`` with a < b."""
    edges = domain_imports() if edges is None else edges
    return {
        (name, target)
        for name, targets in edges.items()
        for target in targets
        if name < target and name in edges.get(target, ())
    }


def markdown() -> str:
    """The architecture page's two tables: the upward imports (by importer and target; one row
    per pair, whatever the lines) and which domains import which, with their cycles."""
    found = upward()
    rows = ["| importer | imports | layers | where |", "|---|---|---|---|"] if found else []
    rows += [] if found else ["No import runs upward."]
    seen = set()
    for u in found:
        if (u.module, u.target) in seen:
            continue
        seen.add((u.module, u.target))
        low, high = (LAYER_NAMES[layer(m)[1]] for m in (u.module, u.target))
        where = "inside a function" if u.lazy else "module level"
        rows.append(f"| `{u.module}` | `{u.target}` | {low} → {high} | {where} |")
    edges = domain_imports()
    rows += ["", "| domain | imports the domains | cycles with |", "|---|---|---|"]
    for name, targets in sorted(edges.items()):
        cycles = sorted(t for t in targets if name in edges.get(t, ()))
        rows.append(f"| `{name}` | {', '.join(sorted(targets))} | {', '.join(cycles) or '-'} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--markdown", action="store_true", help="print the architecture page's tables")
    args = ap.parse_args(argv)
    if args.markdown:
        print(markdown())
        return 0
    found = upward()
    for u in found:
        print(f"{u}{' (in a function)' if u.lazy else ''}")
    print(f"{len(found)} upward imports")
    for a, b in sorted(domain_cycles()):
        print(f"cycle: agora.{a} <-> agora.{b}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
