"""``agora analytics engagement-report --out DIR``: the store's engagement report (Markdown and
PNGs: DAU/WAU, retention cohorts, Lorenz curves of attention, time to first response)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from agora.analytics.engagement import spark as engagement_spark
from agora.analytics.engagement.report import compute, write_report
from agora.analytics.engine_options import (
    DEFAULT_MASTER,
    EngineOption,
    SparkMasterOption,
    check_engine,
    spark_job,
)
from agora.cli.shell import console, store_sessions
from agora.config import get_settings
from agora.db.pseudonyms import sealer_for_session

app = typer.Typer(help="Engagement analytics of the store.")


@app.command("engagement-report")
def engagement_report(
    out: Annotated[Path, typer.Option("--out", help="Folder written: engagement.md + PNGs.")],
    since: Annotated[
        datetime | None, typer.Option(help="Active users from this time (UTC).")
    ] = None,
    until: Annotated[
        datetime | None, typer.Option(help="Active users before this time (UTC).")
    ] = None,
    weeks: Annotated[int, typer.Option(min=0, help="Retention weeks after the first.")] = 8,
    of: Annotated[
        str | None,
        typer.Option(help="Response times only for posts with this event type (ask = questions)."),
    ] = None,
    engine: EngineOption = "local",
    spark_master: SparkMasterOption = DEFAULT_MASTER,
) -> None:
    """Compute every engagement analytic and write the report with its figures (with
    --engine spark each analytic's pass over the log is a Spark job)."""
    on_spark = check_engine(engine)
    settings = get_settings()
    factory = store_sessions(settings)
    with factory() as session:
        if not on_spark:
            result = compute(session, since=since, until=until, weeks=weeks, of=of)
        else:
            ids = sealer_for_session(session)
            with spark_job(spark_master, "agora-engagement") as spark:
                result = engagement_spark.compute(
                    spark, settings.resolved_database_url, since, until, weeks, of, ids=ids
                )
    path = write_report(result, out)
    a = result.attention
    console.print(
        f"wrote {path}: {len(result.weekly)} weeks, {len(result.retention.cohorts)} cohorts, "
        f"Gini items {a.items.gini:.3f} creators {a.creators.gini:.3f}, "
        f"{sum(result.seconds.values()):.2f} s"
    )
