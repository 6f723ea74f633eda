"""``agora engagement ...``: replay the ledger, leaderboards, a user's points, badges, trust level
and digest (each applies the newly stored events first). The rules are
``engagement_config(settings)`` (``AGORA_ENGAGEMENT`` as JSON)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from agora.cli.shell import console, fail, store_sessions
from agora.config import get_settings
from agora.db.engine import transaction
from agora.db.pseudonyms import sealer_for_session
from agora.engagement import badge_awards, ledger, trust_levels
from agora.engagement import digest as digests
from agora.engagement.config import engagement_config
from agora.ingest.service import UnknownUser

app = typer.Typer(
    help="Points, badges, trust levels, leaderboards and digests.", no_args_is_help=True
)

UserArg = Annotated[str, typer.Argument(help="External user id.")]


@app.command()
def replay() -> None:
    """Rebuild the ledger, badges and trust levels from every stored event under the rules."""
    settings = get_settings()
    started = time.perf_counter()
    with transaction(store_sessions(settings)) as session:
        applied = ledger.replay(session, engagement_config(settings), datetime.now(UTC))
    console.print(f"replayed {applied:,} events in {time.perf_counter() - started:.1f} s")


@app.command()
def leaderboard(
    period: Annotated[str, typer.Option(help="all | week (the last 7 days)")] = "all",
    tag: Annotated[
        str | None, typer.Option(help="Only points earned on items with this tag.")
    ] = None,
    n: Annotated[int, typer.Option("-n", min=1, help="How many users.")] = 20,
) -> None:
    """Users ranked by points."""
    settings = get_settings()
    if period not in ("all", "week"):
        raise fail(f"--period must be 'all' or 'week', not {period!r}")
    with transaction(store_sessions(settings)) as session:
        ledger.catch_up(session, engagement_config(settings), datetime.now(UTC))
        rows = ledger.leaderboard(
            session, engagement_config(settings), datetime.now(UTC), period, tag, n
        )
    table = Table(title=f"leaderboard ({period}{', tag ' + tag if tag else ''})")
    for column in ("rank", "user", "points"):
        table.add_column(column, justify="left" if column == "user" else "right")
    for row in rows:
        table.add_row(str(row["rank"]), row["user_id"], f"{row['points']:,}")
    console.print(table)


@app.command()
def points(user: UserArg, n: Annotated[int, typer.Option("-n", min=1)] = 10) -> None:
    """A user's total, per rule, and latest ledger entries."""
    settings = get_settings()
    try:
        with transaction(store_sessions(settings)) as session:
            ledger.catch_up(session, engagement_config(settings), datetime.now(UTC))
            report = ledger.points(session, engagement_config(settings), user, datetime.now(UTC), n)
    except UnknownUser as exc:
        raise fail(str(exc)) from None
    console.print(Text.assemble((user, "bold"), f": {report.total:,} points"))
    for rule, total in sorted(report.by_rule.items(), key=lambda kv: -abs(kv[1])):
        console.print(f"  {rule}: {total:+,}")


@app.command()
def badges(user: UserArg) -> None:
    """The badges a user earned and how far they are from the others."""
    settings = get_settings()
    try:
        with transaction(store_sessions(settings)) as session:
            ledger.catch_up(session, engagement_config(settings), datetime.now(UTC))
            report = badge_awards.badges(
                session, engagement_config(settings), user, datetime.now(UTC)
            )
    except UnknownUser as exc:
        raise fail(str(exc)) from None
    earned = Table(title=f"badges of {user}")
    for column in ("badge", "level", "post", "awarded"):
        earned.add_column(column)
    for b in report.earned:
        post = b["item_title"] or b["item_id"] or ""
        earned.add_row(b["title"], b["level"] or "", post, f"{b['awarded']:%Y-%m-%d}")
    console.print(earned if report.earned else f"{user} has no badges yet")
    for p in report.progress:
        console.print(f"  {p.title}: {p.message}")


@app.command()
def trust(user: UserArg) -> None:
    """A user's trust level and what the next one still needs."""
    settings = get_settings()
    try:
        with transaction(store_sessions(settings)) as session:
            ledger.catch_up(session, engagement_config(settings), datetime.now(UTC))
            report = trust_levels.trust(
                session, engagement_config(settings), user, datetime.now(UTC)
            )
    except UnknownUser as exc:
        raise fail(str(exc)) from None
    console.print(Text.assemble((user, "bold"), f": trust level {report.level} ({report.name})"))
    if report.next_level:
        console.print(f"  {report.next_level}")


@app.command()
def digest(
    user: UserArg,
    fmt: Annotated[str, typer.Option("--format", help="text | html")] = "text",
    since: Annotated[
        datetime | None, typer.Option(help="Start (default: the user's last activity).")
    ] = None,
    picks: Annotated[int, typer.Option(min=0, help="Feed items to suggest.")] = 5,
) -> None:
    """What the user missed: replies and likes on their posts, points, badges, feed picks."""
    from agora.serving.service import ModelStore

    settings = get_settings()
    if fmt not in ("text", "html"):
        raise fail(f"--format must be 'text' or 'html', not {fmt!r}")
    now = datetime.now(UTC)
    sessions = store_sessions(settings)
    with transaction(sessions) as session:  # committed before the picks: see feed_picks
        ledger.catch_up(session, engagement_config(settings), now)
    try:
        with sessions() as session:
            report = digests.build_digest(session, engagement_config(settings), user, now, since)
            if picks:
                models = ModelStore(settings.model_dir, ids=sealer_for_session(session))
                models.reload()
                report.picks = digests.feed_picks(
                    session, models, user, picks, settings.feed, settings.event_weights, now,
                    report.since,
                )  # fmt: skip
    except UnknownUser as exc:
        raise fail(str(exc)) from None
    print(digests.render(report, fmt))
