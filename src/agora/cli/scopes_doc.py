"""``python -m agora.cli.scopes_doc``: write docs/scopes.md from the app's routes (``--check``
only compares, exit 1 when out of date). The shell half of :mod:`agora.api.scopes_doc`: it builds
the app on a throw-away SQLite store."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from agora.api.app import create_app
from agora.api.scopes_doc import render, route_scopes
from agora.config import Settings

DEFAULT_OUTPUT = Path(__file__).resolve().parents[3] / "docs" / "scopes.md"


def current() -> str:
    """The table for the app as the code builds it (on a throw-away SQLite store)."""
    with tempfile.TemporaryDirectory() as tmp:
        app = create_app(Settings(data_dir=Path(tmp), database_url=None, redis_url=None))
        try:
            return render(route_scopes(app))
        finally:
            app.state.engine.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="the Markdown file")
    parser.add_argument(
        "--check", action="store_true", help="only compare; exit 1 when the file is out of date"
    )
    args = parser.parse_args(argv)
    text = current()
    if args.check:
        existing = args.output.read_text(encoding="utf-8") if args.output.exists() else ""
        if existing != text:
            print(
                f"{args.output} is out of date: run `python -m agora.cli.scopes_doc`",
                file=sys.stderr,
            )
            return 1
        print(f"{args.output} is up to date")
        return 0
    args.output.write_text(text, encoding="utf-8")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
