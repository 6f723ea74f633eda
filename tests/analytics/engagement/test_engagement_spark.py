"""The engagement analytics as Spark jobs equal the single-machine ones on the bundled
community (SQLite and PostgreSQL), odd stored times included, and the CLI's report with
``--engine spark`` reads as the local engine's (``tests/cli/test_train_spark.py`` runs a Spark
job as a process of its own)."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from spark_compare import assert_engagement_equal
from sqlalchemy import func, select, update
from typer.testing import CliRunner

from agora.analytics.engagement import service as eg
from agora.analytics.engagement import spark as es
from agora.analytics.engagement.report import compute
from agora.cli.main import app as cli
from agora.config import get_settings
from agora.db.engine import make_engine, session_factory, transaction
from agora.db.tables import Event, Item


def _local(url: str, **options) -> object:  # noqa: ANN003
    engine = make_engine(url)
    try:
        with session_factory(engine)() as session:
            return compute(session, **options)
    finally:
        engine.dispose()


def test_active_users_in_a_window_equal_the_local_engine(spark, spark_community: str) -> None:
    since, until = datetime(2021, 6, 1, tzinfo=UTC), datetime(2021, 9, 15, 12, tzinfo=UTC)
    engine = make_engine(spark_community)
    with session_factory(engine)() as session:
        local = eg.active_users(session, "week", since, until)
    engine.dispose()
    frames = es.StoreFrames(spark, spark_community)
    assert es.active_users(frames, "week", since, until) == local
    assert local[0].start == datetime(2021, 5, 31, tzinfo=UTC)  # a Monday, the week of `since`
    assert es.active_users(frames, "day", until, until) == []


def test_every_engagement_job_equals_the_local_engine_odd_stored_times_included(
    spark, database_url: str, community_store: Callable[[str], str]
) -> None:
    """The whole report on both engines, on the bundled community with times outside
    [1970, 2100] written behind the API's back (an event in 1950 and one in 2250, a post created
    in 2300): both engines read them clamped."""
    community_store(database_url)
    engine = make_engine(database_url)
    with transaction(session_factory(engine)) as session:
        first, last = session.execute(select(func.min(Event.id), func.max(Event.id))).one()
        session.execute(
            update(Event)
            .where(Event.id == first)
            .values(timestamp=datetime(1950, 3, 1, tzinfo=UTC))
        )
        session.execute(
            update(Event).where(Event.id == last).values(timestamp=datetime(2250, 1, 1, tzinfo=UTC))
        )
        answered = session.scalar(select(Event.item_id).where(Event.type == "answer").limit(1))
        session.execute(
            update(Item).where(Item.id == answered).values(created=datetime(2300, 1, 1, tzinfo=UTC))
        )
    engine.dispose()
    options = {"weeks": 6, "of": "ask", "top": 10}
    local = _local(database_url, **options)
    on_spark = es.compute(spark, database_url, **options)
    assert len(local.daily) > 100 and len(local.retention.cohorts) > 20
    assert local.response.answered > 500 and local.attention.items.events > 1000
    assert local.daily[0].start == datetime(1970, 1, 1, tzinfo=UTC)
    assert local.daily[-1].start == datetime(2100, 1, 1, tzinfo=UTC)
    assert local.response.seconds.min() == 0.0  # answered "before" the post's clamped creation
    assert_engagement_equal(local, on_spark)
    assert set(on_spark.seconds) == set(local.seconds)


def _report(out: Path, url: str, monkeypatch: pytest.MonkeyPatch, *engine: str) -> tuple[str, str]:
    """``agora analytics engagement-report`` (in this process: with ``--engine spark`` it runs on
    the test run's Spark session): its printed line and report, without the timings (the one
    part that differs between runs)."""
    monkeypatch.setenv("AGORA_DATABASE_URL", url)
    monkeypatch.setenv("AGORA_DATA_DIR", str(out / "data"))
    get_settings.cache_clear()
    try:
        done = CliRunner().invoke(
            cli,
            [
                "analytics",
                "engagement-report",
                "--out",
                str(out / "report"),
                "--of",
                "ask",
                *engine,
            ],
            env={"COLUMNS": "200"},
        )
    finally:
        get_settings.cache_clear()
    assert done.exit_code == 0, done.output[-2000:]
    printed = re.sub(r", [0-9.]+ s$", "", done.output.strip().splitlines()[-1])
    report = (out / "report" / "engagement.md").read_text(encoding="utf-8")
    return printed.replace(str(out), "OUT"), report[: report.index("## Timings")]


def test_cli_report_on_spark_reads_as_the_local_one(
    tmp_path: Path,
    sqlite_community: str,
    spark,  # noqa: ANN001 - the session the CLI's Spark job runs on
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    local = _report(tmp_path / "local", sqlite_community, monkeypatch)
    on_spark = _report(
        tmp_path / "spark",
        sqlite_community,
        monkeypatch,
        "--engine",
        "spark",
        "--spark-master",
        "local[2]",
    )
    assert on_spark[0] == local[0]
    assert "Gini items 0." in local[0] and "## Highest interaction rates" in local[1]
    assert on_spark[1] == local[1]
    assert spark.sparkContext._jsc is not None  # the run's session is still up after the job
