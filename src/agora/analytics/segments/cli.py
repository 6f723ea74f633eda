"""``agora analytics segments build|show``: cluster users into described segments.

Reads (and with ``--store`` writes) the store named by ``AGORA_DATABASE_URL``. Stored segments are
groups ``segment:<k>:<n>`` that campaigns can target.
"""

from __future__ import annotations

from contextlib import ExitStack
from functools import partial
from typing import Annotated, Any

import typer
from rich.table import Table

from agora.analytics.engine_options import (
    DEFAULT_MASTER,
    EngineOption,
    SparkMasterOption,
    check_engine,
    spark_job,
)
from agora.analytics.segments import service as segments
from agora.analytics.segments import spark as segments_spark
from agora.cli.shell import console, fail, store_sessions
from agora.config import get_settings
from agora.db.engine import transaction
from agora.db.pseudonyms import sealer_for_session

app = typer.Typer(help="User segments and personas.", no_args_is_help=True)


def _table(title: str, rows: list[dict[str, Any]]) -> Table:
    table = Table(title=title)
    for column in ("segment", "label", "size", "median events", "top tags (lift)", "examples"):
        table.add_column(column, justify="right" if column in ("size", "median events") else "left")
    for row in rows:
        tags = ", ".join(f"{t['tag']} ({t['lift']:.1f})" for t in row["top_tags"])
        table.add_row(
            row["group_id"],
            row["label"],
            str(row["size"]),
            f"{row['median_events']:g}",
            tags,
            ", ".join(row["examples"]),
        )
    return table


@app.command("build")
def build_cmd(
    k: Annotated[
        int | None, typer.Option(min=1, help="Number of segments (default: by silhouette).")
    ] = None,
    seed: Annotated[int, typer.Option(min=0, help="Random seed.")] = 0,
    store: Annotated[bool, typer.Option(help="Replace the stored segment groups.")] = False,
    factors: Annotated[
        str | None,
        typer.Option(
            help="Interests from this trained model's user factors (als, bpr).", metavar="MODEL"
        ),
    ] = None,
    engine: EngineOption = "local",
    spark_master: SparkMasterOption = DEFAULT_MASTER,
) -> None:
    """Cluster the users by behaviour and interests (tags, or a model's factors), describe each
    (with --engine spark the feature matrix is computed by Spark, the clustering here)."""
    on_spark = check_engine(engine)
    settings = get_settings()
    sessions = store_sessions(settings)
    loaded = None
    if factors is not None:
        from agora.models.artifacts import load_latest

        with sessions() as session:
            ids = sealer_for_session(session)
        try:
            loaded = load_latest(settings.model_dir, factors, ids)
        except (FileNotFoundError, KeyError) as exc:
            raise fail(f"{exc}; train it with `agora train --models {factors}`", 1) from exc
    with ExitStack() as stack, transaction(sessions) as session:
        load = None
        if on_spark:  # the feature matrix from Spark; embedding and clustering stay here
            spark = stack.enter_context(spark_job(spark_master, "agora-segments"))
            load = partial(
                segments_spark.load_features,
                spark,
                settings.resolved_database_url,
                sealer_for_session(session),
            )
        try:
            result = segments.build_segments(
                session, k, seed, store=store, factors=loaded, load=load
            )
        except ValueError as exc:
            raise fail(str(exc)) from exc
    rows = [{"group_id": s.group_id, **s.attributes()} for s in result.segments]
    sil = "n/a" if result.silhouette is None else f"{result.silhouette:.3f}"
    title = f"{len(result.users)} users, k={result.k}, silhouette {sil}"
    console.print(_table(title + (" (stored)" if store else ""), rows))
    console.print("seconds: " + ", ".join(f"{p} {s:.2f}" for p, s in result.seconds.items()))


@app.command("show")
def show_cmd() -> None:
    """The stored segments with their descriptions."""
    with store_sessions(get_settings())() as session:
        rows = segments.stored_segments(session)
    if not rows:
        raise fail("no stored segments: run `agora analytics segments build --store`", 1)
    console.print(_table(f"{len(rows)} stored segments", rows))
