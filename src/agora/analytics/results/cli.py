"""``agora analytics refresh [JOB]``: compute now what the API serves from storage."""

from __future__ import annotations

from typing import Annotated

import typer

from agora.analytics import jobs
from agora.analytics.results import service as results
from agora.cli.shell import console, fail
from agora.config import get_settings
from agora.db.engine import open_store, session_factory

app = typer.Typer(help="Results computed in the background.")


@app.command()
def refresh(
    job: Annotated[str, typer.Argument(help="anomalies, influence, sentiment or all.")] = "all",
) -> None:
    """Compute now what the API serves from storage (what `agora serve` refreshes in the
    background): fake-engagement anomalies, influence, the sentiment of unscored posts."""
    known = [*results.KEYS, jobs.SENTIMENT_JOB]
    if job not in (*known, "all"):
        raise fail(f"refresh one of {', '.join(known)} or all, not {job!r}")
    settings = get_settings()
    engine = open_store(settings)
    sessions = session_factory(engine)
    for key in known if job == "all" else [job]:
        if key == jobs.SENTIMENT_JOB:
            scored = jobs.score_sentiment(sessions, settings.model_dir, budget_seconds=None)
            console.print(f"sentiment: scored {scored:,} posts and comments")
        else:
            seconds = jobs.refresh_result(sessions, key, settings.event_weights)
            console.print(f"{key}: computed in {seconds:.1f} s")
    engine.dispose()
