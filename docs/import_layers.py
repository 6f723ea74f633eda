"""List the imports inside src/agora that run upward in the layer plan of docs/ARCHITECTURE.md.

``python docs/import_layers.py`` reads every module with ``ast`` (nothing is imported), maps each
``agora.X`` import to its package's layer and prints the ones whose target sits above the
importer, as ``importer -> target`` with the line and whether the import is at module level or
inside a function. ``--markdown`` prints them as the table the architecture page carries.
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
    # app and its background jobs), the CLI kit (cli.shell), Spark and vision; anyone above the
    # ground may use them, they use only db and config
    **dict.fromkeys(["api", "cli.shell", "spark", "vision", "metrics", "plots"], KIT),
    **dict.fromkeys(["db", "config"], GROUND),
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


def module_name(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    names = list(rel.parts)
    return ".".join(names[:-1] if names[-1] == "__init__" else names)


def imports(path: Path) -> list[tuple[str, int, bool]]:
    """``(agora module imported, line, inside a function)`` for every import in ``path``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    module = module_name(path)
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


def upward() -> list[Upward]:
    """Every import in src/agora whose target is in a higher layer than its importer."""
    out = []
    for path in sorted(SRC.rglob("*.py")):
        module = module_name(path)
        here = layer(module)
        for target, line, lazy in imports(path):
            there = layer(target)
            if here and there and there[1] > here[1]:
                out.append(Upward(module, line, target, lazy))
    return out


def domain_imports() -> dict[str, set[str]]:
    """Which domains each domain imports (same layer: allowed, but a cycle is a defect)."""
    edges: dict[str, set[str]] = {}
    for path in sorted(SRC.rglob("*.py")):
        here = layer(module_name(path))
        for target, _, _ in imports(path):
            there = layer(target)
            if here and there and here[1] == there[1] == DOMAIN and here[0] != there[0]:
                edges.setdefault(here[0], set()).add(there[0])
    return edges


def markdown(found: list[Upward]) -> str:
    rows = ["| importer | imports | layers | where |", "|---|---|---|---|"]
    for u in found:
        low, high = (LAYER_NAMES[layer(m)[1]] for m in (u.module, u.target))
        where = f"line {u.line}" + (", inside a function" if u.lazy else "")
        rows.append(f"| `{u.module}` | `{u.target}` | {low} → {high} | {where} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--markdown", action="store_true", help="print the architecture page's table")
    args = ap.parse_args(argv)
    found = upward()
    if args.markdown:
        print(markdown(found))
        print()
        edges = domain_imports()
        print("| domain | imports the domains | cycles with |\n|---|---|---|")
        for name, targets in sorted(edges.items()):
            cycles = sorted(t for t in targets if name in edges.get(t, ()))
            print(f"| `{name}` | {', '.join(sorted(targets))} | {', '.join(cycles) or '-'} |")
    else:
        for u in found:
            lazy = " (in a function)" if u.lazy else ""
            print(f"{u.module}:{u.line} -> {u.target}{lazy}")
        print(f"{len(found)} upward imports")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
