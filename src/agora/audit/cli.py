"""``agora admin audit``: the audit log of admin actions, newest first (as ``GET /admin/audit``)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated

import typer
from rich.table import Table

from agora.audit import service
from agora.cli.shell import console, fail, store_sessions
from agora.config import get_settings
from agora.ingest.schemas import as_utc

app = typer.Typer(help="Operator tools: the audit log of admin actions.", no_args_is_help=True)


def _since(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise fail(
            f"--since {text!r}: expected an ISO 8601 time, e.g. 2026-12-01T00:00:00Z"
        ) from None
    return as_utc(when)


@app.command()
def audit(
    since: Annotated[
        str | None, typer.Option(help="Only entries from this time (ISO 8601; UTC if no offset).")
    ] = None,
    route: Annotated[
        str | None, typer.Option(help="Only this route template, e.g. /users/{user_id}.")
    ] = None,
    key: Annotated[str | None, typer.Option(help="Only this key fingerprint.")] = None,
    limit: Annotated[
        int, typer.Option(min=1, max=service.MAX_PAGE, help="Most entries shown.")
    ] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """Admin requests that changed something: time, key fingerprint, method, route, path ids,
    status, request id (never bodies, keys or an erased person's id)."""
    with store_sessions(get_settings())() as session:
        page, _ = service.entries(
            session, since=_since(since), route=route, key_id=key, limit=limit
        )
    if as_json:
        for entry in page:
            console.print(json.dumps({**entry.__dict__, "at": entry.at.isoformat()}))
        return
    table = Table(title="admin actions, newest first")
    for column in ("id", "at", "key", "method", "route", "path ids", "status", "request id"):
        table.add_column(column)
    for e in page:
        ids = ", ".join(f"{k}={'(left out)' if v is None else v}" for k, v in e.path_params.items())
        table.add_row(
            str(e.id),
            e.at.isoformat(timespec="seconds"),
            e.key_id,
            e.method,
            e.route,
            ids or "-",
            str(e.status),
            e.request_id or "-",
        )
    console.print(table)
