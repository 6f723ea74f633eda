"""``agora analytics anomalies``: fake-engagement scores of the store's users and items."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from agora.analytics.anomalies import service as anomalies
from agora.cli.shell import console, store_sessions
from agora.config import get_settings

app = typer.Typer(help="Fake-engagement detection.", no_args_is_help=True)


@app.command("anomalies")
def anomalies_cmd(
    top: Annotated[int, typer.Option(min=1, help="Users and items listed.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
) -> None:
    """Users and items ranked by fake-engagement score, with the reasons that fired."""
    with store_sessions(get_settings())() as session:
        report = anomalies.detect(session)
    if as_json:
        out = {
            "threshold": report.params.flag_at,
            "scored_users": len(report.users),
            "flagged_users": len(report.flagged()),
            "users": [vars(u) for u in report.users[:top]],
            "items": [vars(i) for i in report.items[:top]],
        }
        typer.echo(json.dumps(out, indent=2))
        return
    users = Table(
        title=f"users by anomaly score ({len(report.flagged())} of {len(report.users)} "
        f"at or above {report.params.flag_at})"
    )
    for column in ("user", "score", *anomalies.WEIGHTS, "reasons"):
        users.add_column(column, justify="left" if column in ("user", "reasons") else "right")
    for u in report.users[:top]:
        users.add_row(
            u.user_id,
            f"{u.score:.3f}",
            *(f"{u.signals[k]:.2f}" for k in anomalies.WEIGHTS),
            "; ".join(u.reasons),
        )
    console.print(users)
    items = Table(title="items by anomaly score")
    for column in ("item", "score", "flagged share", "burstiness", "engagements", "reasons"):
        items.add_column(column, justify="left" if column in ("item", "reasons") else "right")
    for i in report.items[:top]:
        items.add_row(
            i.item_id,
            f"{i.score:.3f}",
            f"{i.flagged_share:.2f}",
            f"{i.burstiness:.2f}",
            str(i.engagements),
            "; ".join(i.reasons),
        )
    console.print(items)
