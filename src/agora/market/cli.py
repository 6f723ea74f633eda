"""``agora market ...``: list, create and pause campaigns, and print a campaign's report."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from agora.cli.shell import console, fail, read_specs, store_sessions
from agora.config import get_settings
from agora.db.engine import transaction
from agora.market import service
from agora.market.config import market_config
from agora.market.schemas import CampaignIn

app = typer.Typer(help="Ad campaigns, their auction and their measurement.", no_args_is_help=True)

CampaignArg = Annotated[str, typer.Argument(help="Campaign id.")]


@app.command("campaigns")
def campaigns() -> None:
    """Every campaign with whether it can serve now, its bid, budget and today's spend."""
    now = datetime.now(UTC)
    settings = get_settings()
    with store_sessions(settings)() as session:
        rows = [
            service.campaign_out(session, c, market_config(settings), now)
            for c in service.list_campaigns(session)
        ]
    table = Table(title="campaigns")
    columns = ("id", "advertiser", "status", "serving", "bid", "daily budget", "spent today", "cap")
    for column in columns:
        table.add_column(column, justify="left" if column in ("id", "advertiser") else "right")
    for c in rows:
        table.add_row(
            c["campaign_id"],
            c["advertiser"],
            c["status"],
            ", ".join(r["code"] for r in c["serving"]["reasons"]) or "serving",
            f"{c['bid']:.2f}",
            f"{c['daily_budget']:.2f}",
            f"{c['spent_today']:.2f}",
            str(c["frequency_cap"]),
        )
    console.print(table)


@app.command()
def create(
    path: Annotated[Path, typer.Argument(help="JSON file: one campaign object or a list.")],
) -> None:
    """Create campaigns from a JSON file (fields as POST /campaigns); all or nothing."""
    specs = read_specs(path, CampaignIn)
    now = datetime.now(UTC)
    try:
        with transaction(store_sessions(get_settings())) as session:
            done = [service.create_campaign(session, spec, now)[1] for spec in specs]
    except (service.CampaignConflict, service.MissingItems) as exc:
        raise fail(f"{path}: {exc}; nothing was written") from exc
    console.print(f"{sum(done)} campaign(s) created, {len(done) - sum(done)} already stored")


@app.command("set-status")
def set_status(
    campaign_id: CampaignArg,
    status: Annotated[str, typer.Argument(help="active | paused")],
) -> None:
    """Pause or resume a campaign."""
    if status not in ("active", "paused"):
        raise fail(f"status must be 'active' or 'paused', not {status!r}")
    try:
        with transaction(store_sessions(get_settings())) as session:
            service.update_campaign(session, campaign_id, {"status": status}, datetime.now(UTC))
    except service.UnknownCampaign as exc:
        raise fail(str(exc)) from exc
    console.print(f"campaign {campaign_id} is {status}")


@app.command()
def report(
    campaign_id: CampaignArg,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Impressions, clicks, CTR, spend, CPC, conversions, CVR, ROI and lift over the holdout."""
    settings = get_settings()
    try:
        with store_sessions(settings)() as session:
            body = service.report(session, campaign_id, market_config(settings), datetime.now(UTC))
    except service.UnknownCampaign as exc:
        raise fail(str(exc)) from exc
    if as_json:
        console.print_json(json.dumps(body))
        return

    def pct(x: float | None) -> str:
        return "-" if x is None else f"{100 * x:.2f}%"

    def interval(i: dict) -> str:
        return (
            "-"
            if i["estimate"] is None
            else f"{pct(i['estimate'])} [{pct(i['low'])}, {pct(i['high'])}]"
        )

    lift = body["lift"]
    table = Table(title=f"campaign {campaign_id}", show_header=False)
    for name, value in (
        ("impressions", f"{body['impressions']:,}"),
        ("clicks", f"{body['clicks']:,}"),
        ("CTR", interval(body["ctr"])),
        ("spend", f"{body['spend']:.2f} (today {body['spent_today']:.2f})"),
        ("CPC", "-" if body["cpc"] is None else f"{body['cpc']:.3f}"),
        ("conversions (post-click)", f"{body['conversions']:,}"),
        ("CVR", interval(body["cvr"])),
        ("ROI", "-" if body["roi"] is None else f"{body['roi']:.2f}"),
        ("exposed arm", f"{lift['exposed_converters']:,} / {lift['exposed_users']:,} converted"),
        ("holdout arm", f"{lift['holdout_converters']:,} / {lift['holdout_users']:,} converted"),
        ("lift (difference)", interval(lift["difference"])),
    ):
        table.add_row(name, value)
    console.print(table)
    console.print(f"lift method: {lift['method']}")
    serving = body["serving"]
    console.print(f"serving now: {'yes' if serving['status'] == 'serving' else 'no'}")
    for label, entries in (("why not", serving["reasons"]), ("note", serving["notes"])):
        for entry in entries:
            console.print(f"  {label}: {entry['code']}: {entry['detail']}")
