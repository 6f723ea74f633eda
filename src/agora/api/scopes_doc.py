"""The scope every route needs, read from the app itself, and docs/scopes.md rendered from it.

``python docs/gen_reference.py`` (which builds the app) rewrites ``docs/scopes.md`` with the
other generated pages; ``--check`` only compares and exits 1 when one is out of date (a test
does the same). The
scope of a route is the one its :func:`agora.api.auth.require` dependency names; a route
without one is served to anybody, and the tests allow that only for the home page, ``/health``
and the API documentation.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import FastAPI

try:  # FastAPI >= 0.16x keeps included routers nested; this walks them
    from fastapi.routing import iter_route_contexts
except ImportError:  # older FastAPI: app.routes is already flat

    def iter_route_contexts(routes):  # type: ignore[no-redef]
        return routes


from agora.api.auth import route_scope

#: Why a route gets the scope it has (the rules the table applies).
POLICY = """\
Scopes nest: `admin` ⊇ `write` ⊇ `read`. `AGORA_API_KEY` is the admin key; further keys and
their scopes come from `AGORA_API_KEYS='{"key": ["read"]}'`. A request without a known key gets
401, a key without the scope 403; either way nothing is read or written.

* **read**: what a platform shows its members: recommendations, feeds, items, profiles as the
  platform sent them, public engagement (points, badges, leaderboards, digests), aggregate
  analytics (differentially private when `AGORA_DP_EPSILON` is set), a user's experiment arm.
* **write**: what members do, relayed by the platform as it happens: users, items, events,
  edges (and removing one edge: an unfollow or unblock), groups, flags, feedback and feed
  settings, ad clicks and conversions.
* **admin**: the operator's decisions and what is not for members' eyes: erasing a person or an
  item with everyone's events on it, moderation queue and decisions, campaigns (money),
  experiment control and results, model reload, replays, tasks, alert rules, fraud suspicion
  (`/analytics/anomalies/*`), behavioural segments of people, exact figures and the privacy
  budget (`/admin/privacy/budget`) while differential privacy is on, and the audit log of admin
  actions (`/admin/audit`: every admin request that changed something is recorded there).

The Gorse-compatible routes under `/api/` (docs/gorse.md) take the same keys, sent as Gorse's
clients send them (`X-API-Key`), with the same rules; their errors are Gorse's plain text.

The operator console (`/console/...`, see docs/console.md) takes the same keys: signing in
exchanges one for a session cookie, and each console route needs the scope shown here of the
signed-in key (actions also need the form's CSRF token). Without a session its pages redirect
to the sign-in form and its fragments and actions answer 401; only signing in and choosing the
language are open.

Each key also has a rate limit per route class (the scope a route needs; `POST /events` is a
class of its own): past it, 429 with `Retry-After` (`AGORA_LIMITS`, see docs/operations.md).
"""


@dataclass(frozen=True)
class RouteScope:
    """One method of one route and the scope it needs (None: served without a key)."""

    method: str
    path: str
    scope: str | None
    summary: str


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
        scope = route_scope(getattr(route, "dependant", None))
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
        "Generated from the app by `python docs/gen_reference.py`; do not edit by hand (a test",
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
