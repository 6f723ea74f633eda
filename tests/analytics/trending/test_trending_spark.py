"""Trending counts, baselines and bursts computed by Spark equal the single-machine ones on the
bundled community (SQLite and PostgreSQL)."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime

import numpy as np
import pytest

from agora.analytics.trending import service as trending
from agora.analytics.trending import spark as ts
from agora.db.engine import make_engine, session_factory

#: The bundled community's newest activity is on 2021-12-04; its busiest months are May-June.
NOW = datetime(2021, 12, 4, 20, 7, 12, 113000, tzinfo=UTC)


@pytest.mark.parametrize("bucket, n_buckets", [("day", 200), ("week", 30)])
def test_series_and_bursts_equal_the_local_engine(
    spark, spark_community: str, bucket: str, n_buckets: int
) -> None:
    engine = make_engine(spark_community)
    with session_factory(engine)() as session:
        series = trending.store_series(session, NOW, bucket, n_buckets)
        local = trending.trending(session, NOW, bucket, n_buckets, alpha=0.01, min_count=3)
    engine.dispose()
    on_spark = ts.store_series(spark, spark_community, NOW, bucket, n_buckets)
    assert (on_spark.start, on_spark.width) == (series.start, series.width)
    assert on_spark.keys == sorted(series.keys)
    order = [series.keys.index(k) for k in on_spark.keys]
    assert np.array_equal(on_spark.counts, series.counts[order])
    found = ts.trending(spark, spark_community, NOW, bucket, n_buckets, alpha=0.01, min_count=3)
    assert found == local
    if bucket == "day":
        assert len(local.bursts) > 50 and local.bursts[0].key == "smart-contract"


def test_keywords_stay_on_the_local_engine(sqlite_url: str) -> None:
    env = {**os.environ, "AGORA_DATABASE_URL": sqlite_url}
    done = subprocess.run(
        [sys.executable, "-m", "agora.cli.main", "analytics", "trending"]
        + ["--engine", "spark", "--source", "keywords"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2
    assert "--source keywords runs on --engine local" in done.stderr
