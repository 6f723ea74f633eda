"""``agora analytics influence|seeds|cascades``: influential users, seeds of spread, cascades.

Every command reads the store named by ``AGORA_DATABASE_URL`` (``cascades --weibo FILE`` reads a
DeepHawkes/CasFlow Weibo cascade file instead).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from agora.analytics.engine_options import (
    DEFAULT_MASTER,
    EngineOption,
    SparkMasterOption,
    check_engine,
    spark_job,
)
from agora.analytics.influence import service as influence
from agora.analytics.influence import spark as influence_spark
from agora.cli.shell import console, error, store_sessions
from agora.config import get_settings
from agora.db.pseudonyms import sealer_for_session

if TYPE_CHECKING:
    import igraph as ig

app = typer.Typer(help="Influence and cascades.", no_args_is_help=True)


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
