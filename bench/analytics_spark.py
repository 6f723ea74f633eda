"""The four analytics jobs on both engines: seconds each, and whether their outputs agree.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/analytics_spark.py \\
        [--database-url URL] [--spark-master local[2]] [--repeats 2]

Without ``--database-url`` the bundled community (data/cardano-se) is imported into a temporary
SQLite store. Each job runs ``--repeats`` times per engine on one Spark session (started once,
its start-up timed apart); the table shows the first (cold: the JVM compiles the job's code)
and the best run. Jobs: the engagement report's analytics (``engagement_report.compute``),
trending by day over 60 days before the store's newest activity, the segments' feature matrix
(``segments.load_features``) and the influence graph (``influence.build_user_graph``).
Prints a table; writes ``bench/results/analytics_spark.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from _record import run_record
from rich.console import Console
from rich.table import Table

from agora.analytics.engagement import spark as engagement_spark
from agora.analytics.engagement.report import compute
from agora.analytics.influence import service as influence
from agora.analytics.influence import spark as influence_spark
from agora.analytics.segments import service as segments
from agora.analytics.segments import spark as segments_spark
from agora.analytics.trending import service as trending
from agora.analytics.trending import spark as trending_spark
from agora.config import Settings
from agora.db.engine import make_engine, migrate, session_factory, transaction
from agora.db.spark.session import spark_session
from agora.ingest.registry import load_any
from agora.ingest.service import add_dataset

REPO = Path(__file__).resolve().parents[1]
BUNDLED = REPO / "data" / "cardano-se"
RESULTS = REPO / "bench" / "results"


def _import_bundled(url: str) -> None:
    engine = make_engine(url)
    migrate(engine)
    settings = Settings()
    with transaction(session_factory(engine)) as session:
        dataset = load_any(BUNDLED, None, event_types=settings.event_types)
        add_dataset(session, dataset, settings.event_types, float("inf"))
    engine.dispose()


def _edges(graph: Any) -> dict[tuple[str, str], float]:
    return {(graph.vs[e.source]["name"], graph.vs[e.target]["name"]): e["weight"] for e in graph.es}


def _same_engagement(a: Any, b: Any) -> bool:
    return (
        a.daily == b.daily
        and a.weekly == b.weekly
        and [c.users for c in a.retention.cohorts] == [c.users for c in b.retention.cohorts]
        and [(r.key, r.events) for r in a.top_items] == [(r.key, r.events) for r in b.top_items]
        and np.isclose(a.attention.items.gini, b.attention.items.gini, rtol=1e-9)
        and np.array_equal(np.sort(a.response.seconds), np.sort(b.response.seconds))
    )


def _same_features(a: segments.UserFeatures, b: segments.UserFeatures) -> bool:
    return (
        a.users == b.users
        and a.tags == b.tags
        and np.allclose(a.behaviour, b.behaviour, rtol=1e-9, atol=0)
        and (a.tag_counts != b.tag_counts).nnz == 0
    )


def _same_graph(a: Any, b: Any) -> bool:
    ea, eb = _edges(a), _edges(b)
    return ea.keys() == eb.keys() and all(np.isclose(ea[k], eb[k], rtol=1e-9) for k in ea)


def _timed(fn: Callable[[], Any], repeats: int) -> tuple[Any, list[float]]:
    seconds, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        seconds.append(time.perf_counter() - start)
    return out, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", help="A store to read (default: the bundled one).")
    parser.add_argument("--spark-master", default="local[2]")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    scratch = tempfile.TemporaryDirectory(prefix="agora-bench-")
    url = args.database_url
    if url is None:
        url = f"sqlite:///{Path(scratch.name) / 'agora.db'}"
        _import_bundled(url)
    settings = Settings()
    weights = settings.event_weights
    engine = make_engine(url)
    sessions = session_factory(engine)
    with sessions() as session:
        now, _ = trending.store_now(session, datetime.now(UTC), "day")

    def local(fn: Callable[[Any], Any]) -> Callable[[], Any]:
        def run() -> Any:
            with sessions() as session:
                return fn(session)

        return run

    jobs: dict[str, tuple[Callable[[], Any], Callable[[Any], Callable[[], Any]], Callable]] = {
        "engagement": (
            local(lambda s: compute(s)),
            lambda spark: lambda: engagement_spark.compute(spark, url),
            _same_engagement,
        ),
        "trending (tags, day, 60)": (
            local(lambda s: trending.trending(s, now, "day", 60)),
            lambda spark: lambda: trending_spark.trending(spark, url, now, "day", 60),
            lambda a, b: a == b,
        ),
        "segments features": (
            local(segments.load_features),
            lambda spark: lambda: segments_spark.load_features(spark, url),
            _same_features,
        ),
        "influence graph": (
            local(lambda s: influence.build_user_graph(s, event_weights=weights)),
            lambda spark: (
                lambda: influence_spark.build_user_graph(spark, url, event_weights=weights)
            ),
            _same_graph,
        ),
    }
    load_before = os.getloadavg()
    started = time.perf_counter()
    rows: list[dict[str, Any]] = []
    with spark_session(args.spark_master, "agora-bench-analytics") as spark:
        session_seconds = time.perf_counter() - started
        for name, (run_local, make_spark, same) in jobs.items():
            local_out, local_s = _timed(run_local, args.repeats)
            spark_out, spark_s = _timed(make_spark(spark), args.repeats)
            rows.append(
                {
                    "job": name,
                    "local_first": local_s[0],
                    "local_best": min(local_s),
                    "spark_first": spark_s[0],
                    "spark_best": min(spark_s),
                    "equal": bool(same(local_out, spark_out)),
                }
            )
    engine.dispose()
    scratch.cleanup()
    store = "bundled" if args.database_url is None else "given"  # a URL may hold a password
    table = Table(
        title=f"analytics on both engines ({store} store, Spark {args.spark_master}; "
        f"session start {session_seconds:.1f} s)"
    )
    for column in (
        "job",
        "local first s",
        "local best s",
        "spark first s",
        "spark best s",
        "equal",
    ):
        table.add_column(column, justify="left" if column == "job" else "right")
    for r in rows:
        table.add_row(
            r["job"],
            f"{r['local_first']:.2f}",
            f"{r['local_best']:.2f}",
            f"{r['spark_first']:.2f}",
            f"{r['spark_best']:.2f}",
            "yes" if r["equal"] else "NO",
        )
    console = Console()
    console.print(table)
    load_after = os.getloadavg()
    console.print(f"load average before {load_before[0]:.1f}, after {load_after[0]:.1f}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    record = run_record(
        {"spark_master": args.spark_master, "repeats": args.repeats, "store": store}
    )
    out = {
        "run": record,
        "load_average": {"before": load_before, "after": load_after},
        "spark_session_seconds": session_seconds,
        "jobs": rows,
    }
    path = RESULTS / "analytics_spark.json"
    path.write_text(json.dumps(out, indent=2, default=str) + "\n", encoding="utf-8")
    console.print(f"wrote {path}")


if __name__ == "__main__":
    main()
