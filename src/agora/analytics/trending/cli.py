"""``agora analytics trending|rule|alerts``: bursting topics and opinion alerts.

Every command reads the store named by ``AGORA_DATABASE_URL``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.table import Table

from agora.analytics.engine_options import (
    DEFAULT_MASTER,
    EngineOption,
    SparkMasterOption,
    check_engine,
    spark_job,
)
from agora.analytics.sentiment import service as sa
from agora.analytics.trending import service as trending
from agora.analytics.trending import spark as trending_spark
from agora.cli.shell import console, fail, store_sessions
from agora.config import get_settings
from agora.db.engine import transaction

app = typer.Typer(help="Trending topics and alerts.", no_args_is_help=True)

NowOption = Annotated[
    datetime | None, typer.Option("--now", help="End of the window (default: now, UTC).")
]


def _now(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    return now.replace(tzinfo=UTC) if now.tzinfo is None else now


def _burst_table(title: str, bursts: list[trending.Burst]) -> Table:
    table = Table(title=title)
    for column in ("key", "start", "end", "peak", "baseline", "p-value", "total"):
        table.add_column(column, justify="left" if column in ("key", "start", "end") else "right")
    for b in bursts:
        table.add_row(
            b.key,
            b.start.isoformat(),
            b.end.isoformat(),
            str(b.peak_count),
            f"{b.baseline:.2f}",
            f"{b.p_value:.1e}",
            str(b.total),
        )
    return table


@app.command("trending")
def trending_cmd(
    bucket: Annotated[str, typer.Option(help="hour, day or week.")] = "day",
    buckets: Annotated[int, typer.Option(min=2, help="Buckets looked at.")] = 60,
    source: Annotated[str, typer.Option(help="tags or keywords (jieba for Chinese).")] = "tags",
    alpha: Annotated[float, typer.Option(min=0, max=1, help="Poisson tail threshold.")] = 1e-3,
    min_count: Annotated[int, typer.Option(min=1, help="Least count of a burst.")] = 5,
    now: NowOption = None,
    engine: EngineOption = "local",
    spark_master: SparkMasterOption = DEFAULT_MASTER,
) -> None:
    """Tags or keywords whose post volume bursts above their baseline (with --engine spark
    the counts, baselines and bursts of tags are computed by Spark)."""
    if bucket not in trending.BUCKETS or source not in ("tags", "keywords"):
        raise typer.BadParameter("--bucket is hour|day|week and --source is tags|keywords")
    on_spark = check_engine(engine)
    if on_spark and source != "tags":
        raise fail("--engine spark counts tags; --source keywords runs on --engine local")
    settings = get_settings()
    with store_sessions(settings)() as session:
        when, origin = (
            (_now(now), "given") if now else trending.store_now(session, _now(None), bucket)
        )
        if origin == "store":
            console.print(f"now = {when:%Y-%m-%d %H:%M} UTC, the store's newest activity")
        options = {"bucket": bucket, "n_buckets": buckets, "alpha": alpha, "min_count": min_count}
        if not on_spark:
            result = trending.trending(session, when, source=source, **options)
    if on_spark:
        with spark_job(spark_master, "agora-trending") as spark:
            result = trending_spark.trending(spark, settings.resolved_database_url, when, **options)
    console.print(_burst_table(f"trending in the last {bucket}", result.trending))
    console.print(_burst_table(f"bursts in the last {buckets} {bucket}s", result.bursts))


@app.command("rule")
def rule_cmd(
    name: Annotated[str, typer.Argument(help="Rule name (an existing rule is updated).")],
    kind: Annotated[str, typer.Option(help="volume_spike or sentiment_drop.")] = "volume_spike",
    tag: Annotated[str | None, typer.Option(help="Tag watched (default: any tag).")] = None,
    bucket: Annotated[str, typer.Option(help="hour, day or week.")] = "day",
    baseline_buckets: Annotated[int, typer.Option(min=1, help="Buckets of baseline.")] = 7,
    threshold: Annotated[
        float | None,
        typer.Option(help="Spike: tail probability (0.001); drop: least mean drop (0.3)."),
    ] = None,
    min_count: Annotated[int, typer.Option(min=1, help="Least posts that count.")] = 5,
) -> None:
    """Create or update an alert rule."""
    from pydantic import ValidationError

    try:
        spec = trending.RuleSpec(
            name=name,
            kind=kind,
            tag=tag,
            bucket=bucket,
            baseline_buckets=baseline_buckets,
            threshold=threshold,
            min_count=min_count,
        )
    except ValidationError as exc:
        raise typer.BadParameter(str(exc)) from None
    with transaction(store_sessions(get_settings())) as session:
        rule, created = trending.upsert_rule(session, spec, datetime.now(UTC))
        console.print(f"{'created' if created else 'updated'} rule {rule.id} {name!r}")


@app.command("alerts")
def alerts_cmd(
    evaluate: Annotated[bool, typer.Option(help="Evaluate the rules first.")] = False,
    status: Annotated[str | None, typer.Option(help="open or closed (default: all).")] = None,
    now: NowOption = None,
) -> None:
    """List alert episodes; with --evaluate, evaluate every enabled rule at --now first."""
    settings = get_settings()
    sessions = store_sessions(settings)
    if evaluate:

        def scorer() -> sa.SentimentClassifier:
            return sa.load_sentiment(settings.model_dir)  # the shipped one unless trained here

        with transaction(sessions) as session:
            run = trending.evaluate_alerts(session, _now(now), scorer)
            console.print(
                f"fired {len(run.fired)}, ongoing {len(run.ongoing)}, closed {len(run.closed)}"
            )
    with sessions() as session:
        episodes = trending.list_alerts(session, status)
    table = Table(title="alerts")
    for column in ("id", "rule", "kind", "key", "status", "opened", "closed", "value", "baseline"):
        table.add_column(column)
    for e in episodes:
        table.add_row(
            str(e.id),
            str(e.rule_id),
            e.kind,
            e.key,
            e.status,
            e.opened.isoformat(),
            e.closed.isoformat() if e.closed else "-",
            f"{e.value:g}",
            f"{e.baseline:g}",
        )
    console.print(table)
