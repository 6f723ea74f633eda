"""``agora analytics influence|seeds|cascades|trending|alerts``: influence, spread and topics.

Every command reads the store named by ``AGORA_DATABASE_URL`` (``cascades --weibo FILE`` reads a
DeepHawkes/CasFlow Weibo cascade file instead).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from agora.analytics import influence, influence_spark, trending, trending_spark
from agora.analytics import sentiment as sa
from agora.analytics.engine_cli import (
    DEFAULT_MASTER,
    EngineOption,
    SparkMasterOption,
    check_engine,
    spark_job,
)
from agora.cli.shell import console, error, fail, store_sessions
from agora.config import get_settings
from agora.db.engine import transaction
from agora.db.pseudonyms import sealer_for_session

if TYPE_CHECKING:
    import igraph as ig

app = typer.Typer(help="Influence, cascades, trending topics and alerts.", no_args_is_help=True)

NowOption = Annotated[
    datetime | None, typer.Option("--now", help="End of the window (default: now, UTC).")
]


def _now(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    return now.replace(tzinfo=UTC) if now.tzinfo is None else now


def _user_graph(on_spark: bool, spark_master: str, include_events: bool = True) -> ig.Graph:
    """The store's user graph, built in this process or by a Spark job."""
    settings = get_settings()
    with store_sessions(settings)() as session:
        if not on_spark:
            return influence.build_user_graph(
                session, event_weights=settings.event_weights, include_events=include_events
            )
        ids = sealer_for_session(session)
    with spark_job(spark_master, "agora-influence") as spark:
        return influence_spark.build_user_graph(
            spark,
            settings.resolved_database_url,
            event_weights=settings.event_weights,
            include_events=include_events,
            ids=ids,
        )


@app.command("influence")
def influence_cmd(
    top: Annotated[int, typer.Option(min=1, help="Users listed.")] = 20,
    events: Annotated[bool, typer.Option(help="Count interactions with posts.")] = True,
    engine: EngineOption = "local",
    spark_master: SparkMasterOption = DEFAULT_MASTER,
) -> None:
    """Most influential users: PageRank, eigenvector centrality and weighted in-degree (with
    --engine spark the graph's edges are built by Spark, the centrality here)."""
    graph = _user_graph(check_engine(engine), spark_master, include_events=events)
    table = Table(title=f"influence ({graph.vcount()} users, {graph.ecount()} edges)")
    for column in ("user", "pagerank", "eigenvector", "in-degree"):
        table.add_column(column, justify="left" if column == "user" else "right")
    for row in influence.centrality(graph, top):
        table.add_row(
            row.user_id, f"{row.pagerank:.5f}", f"{row.eigenvector:.4f}", f"{row.in_degree:g}"
        )
    console.print(table)


@app.command("seeds")
def seeds_cmd(
    k: Annotated[int, typer.Option(min=1, help="Seed users to pick.")] = 10,
    p: Annotated[
        float | None,
        typer.Option(min=0, max=1, help="Edge probability (default: 1 / in-degree)."),
    ] = None,
    runs: Annotated[int, typer.Option(min=1, help="Monte Carlo samples.")] = 100,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    engine: EngineOption = "local",
    spark_master: SparkMasterOption = DEFAULT_MASTER,
) -> None:
    """Greedy (CELF) seed users maximising expected spread under independent cascade."""
    graph = _user_graph(check_engine(engine), spark_master)
    if graph.vcount() == 0:
        error("the store has no user graph (no edges or interactions)")
        raise typer.Exit(1)
    graph = influence.spread_graph(graph)  # influence flows against attention
    chosen = influence.celf_seeds(graph, k, influence.LiveEdgeSamples(graph, p, runs, seed))
    table = Table(title=f"CELF seeds ({runs} samples, p={'1/in-degree' if p is None else p})")
    table.add_column("k", justify="right")
    table.add_column("user")
    table.add_column("expected spread", justify="right")
    for i, (user, spread) in enumerate(zip(chosen.seeds, chosen.spread, strict=True), 1):
        table.add_row(str(i), user, f"{spread:.2f}")
    console.print(table)


@app.command("cascades")
def cascades_cmd(
    item_id: Annotated[str | None, typer.Argument(help="Item external id.")] = None,
    weibo: Annotated[
        Path | None, typer.Option("--weibo", exists=True, help="A Weibo cascade file.")
    ] = None,
) -> None:
    """Share cascade statistics of one stored item, or of every cascade in a Weibo file."""
    if (item_id is None) == (weibo is None):
        raise typer.BadParameter("give an ITEM_ID or --weibo FILE (one of them)")
    table = Table(title="cascades")
    for column in ("cascade", "size", "depth", "max breadth", "virality", "s to 10", "s to 100"):
        table.add_column(column, justify="left" if column == "cascade" else "right")
    if weibo is not None:
        trees = [
            (c.cascade_id, influence.reconstruct_cascade(c.root, c.published, c.shares()))
            for c in influence.read_weibo_cascades(weibo)
        ]
    else:
        with store_sessions(get_settings())() as session:
            cascade = influence.item_cascade(session, item_id)  # type: ignore[arg-type]
        if cascade is None:
            error(f"item {item_id!r} is not in the store")
            raise typer.Exit(1)
        trees = [(item_id, cascade)]
    for name, tree in trees:
        s = tree.stats()
        table.add_row(
            str(name),
            *(
                "-" if s[col] is None else f"{s[col]:g}"
                for col in (
                    "size",
                    "depth",
                    "max_breadth",
                    "structural_virality",
                    "seconds_to_10",
                    "seconds_to_100",
                )
            ),
        )
    console.print(table)


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
