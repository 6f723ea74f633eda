"""The scope every route needs, read from the app itself, and docs/scopes.md generated from it.

``python -m agora.api.scopes_doc`` rewrites ``docs/scopes.md``; ``--check`` only compares and
exits 1 when the file is out of date (a test does the same). The scope of a route is the one its
:func:`agora.api.auth.require` dependency names; a route without one is served to anybody, and
the tests allow that only for the home page, ``/health`` and the API documentation.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant

try:  # FastAPI >= 0.16x keeps included routers nested; this walks them
    from fastapi.routing import iter_route_contexts
except ImportError:  # older FastAPI: app.routes is already flat

    def iter_route_contexts(routes):  # type: ignore[no-redef]
        return routes


from agora.api.auth import IMPLIED

DEFAULT_OUTPUT = Path(__file__).resolve().parents[3] / "docs" / "scopes.md"

#: Why a route gets the scope it has (the rules the table applies).
POLICY = """\
Scopes nest: `admin` ⊇ `write` ⊇ `read`. `AGORA_API_KEY` is the admin key; further keys and
their scopes come from `AGORA_API_KEYS='{"key": ["read"]}'`. A request without a known key gets
401, a key without the scope 403; either way nothing is read or written.

* **read**: what a platform shows its members: recommendations, feeds, items, profiles as the
  platform sent them, public engagement (points, badges, leaderboards, digests), aggregate
  analytics, a user's experiment arm.
* **write**: what members do, relayed by the platform as it happens: users, items, events,
  edges (and removing one edge: an unfollow or unblock), groups, flags, feedback and feed
  settings, ad clicks and conversions.
* **admin**: the operator's decisions and what is not for members' eyes: erasing a person or an
  item with everyone's events on it, moderation queue and decisions, campaigns (money),
  experiment control and results, model reload, replays, tasks, alert rules, fraud suspicion
  (`/analytics/anomalies/*`) and behavioural segments of people.
"""


@dataclass(frozen=True)
class RouteScope:
    """One method of one route and the scope it needs (None: served without a key)."""

    method: str
    path: str
    scope: str | None
    summary: str


def declared_scopes(dependant: Dependant | None) -> set[str]:
    """The scopes named by ``require`` dependencies anywhere under ``dependant``."""
    found: set[str] = set()
    if dependant is None:
        return found
    for sub in dependant.dependencies:
        scope = getattr(sub.call, "scope", None)
        if scope in IMPLIED:
            found.add(scope)
        found |= declared_scopes(sub)
    return found


def _summary(route) -> str:
    summary = getattr(route, "summary", None)
    if summary:
        return summary
    doc = (getattr(route, "endpoint", None) and route.endpoint.__doc__) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def route_scopes(app: FastAPI) -> list[RouteScope]:
    """Every (method, path) the app serves with the scope it needs, sorted by path and method.

    A route needing several scopes is reported with the widest (admin over write over read).
    HEAD, which Starlette adds to plain GET routes, is left out.
    """
    rows: set[RouteScope] = set()
    for route in iter_route_contexts(app.routes):
        scopes = declared_scopes(getattr(route, "dependant", None))
        scope = max(scopes, key=lambda s: len(IMPLIED[s])) if scopes else None
        for method in sorted(route.methods or {"*"}):
            if method == "HEAD" and "GET" in (route.methods or ()):
                continue
            rows.add(RouteScope(method, route.path, scope, _summary(route)))
    return sorted(rows, key=lambda r: (r.path, r.method))


def render(rows: list[RouteScope]) -> str:
    """docs/scopes.md: the policy, then one table row per method and path."""
    lines = [
        "# API scopes",
        "",
        "Generated from the app by `python -m agora.api.scopes_doc`; do not edit by hand (a test",
        "fails when this file and the app disagree).",
        "",
        POLICY,
        "| method | path | scope | summary |",
        "|---|---|---|---|",
    ]
    for row in rows:
        summary = row.summary.replace("|", "\\|")
        lines.append(f"| {row.method} | `{row.path}` | {row.scope or 'none'} | {summary} |")
    return "\n".join(lines) + "\n"


def current() -> str:
    """The table for the app as the code builds it (on a throw-away SQLite store)."""
    from agora.api.app import create_app  # the shell; imported here to keep this module light
    from agora.config import Settings

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
                f"{args.output} is out of date: run `python -m agora.api.scopes_doc`",
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
