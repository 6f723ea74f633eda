"""Trending baselines of :mod:`agora.analytics.trending` computed by Spark (``--engine spark``).

Spark counts the posts per tag per bucket over the window and runs the burst detector per
shard of tags (a Python task calling :func:`~agora.analytics.trending.service.detect_bursts` on the
shard's count series: each tag's EWMA baseline and Poisson tails depend only on its own row,
so sharding changes nothing); the driver gets the bursts only. Keyword sources (jieba over
titles, bodies and the text read in images) stay on the local engine.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import numpy as np

from agora.analytics.trending.service import (
    BUCKETS,
    Burst,
    Trending,
    VolumeSeries,
    detect_bursts,
)
from agora.db.spark.store import read_table
from agora.db.tables import as_utc

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

#: Tags per burst-detection task, about (a shard's series is a dense tags x buckets matrix).
TAGS_PER_SHARD = 20_000


def _window(now: datetime, bucket: str, n_buckets: int) -> tuple[datetime, datetime, int]:
    if bucket not in BUCKETS:
        raise ValueError(f"bucket must be one of {', '.join(BUCKETS)}, not {bucket!r}")
    width = BUCKETS[bucket]
    now = as_utc(now)
    return now - timedelta(seconds=width * n_buckets), now, width


def _counts(
    spark: SparkSession, database_url: str, start: datetime, end: datetime, width: int, source: str
) -> DataFrame:
    """``(key, t, n)``: posts created in ``[start, end)`` per distinct tag and bucket ``t``."""
    from pyspark.sql import functions as F  # noqa: N812

    if source != "tags":
        raise ValueError(
            f"the Spark engine counts tags; source {source!r} runs on the local engine"
        )
    start_micros = _micros(start)
    items = read_table(spark, database_url, "items", ["id", "created", "tags"]).where(
        (F.col("created") >= F.lit(start)) & (F.col("created") < F.lit(end))
    )
    bucket = F.floor((F.unix_micros("created") - F.lit(start_micros)) / (width * 1_000_000))
    return (
        items.select(
            bucket.alias("t"),
            F.explode(F.array_distinct(F.from_json("tags", "array<string>"))).alias("key"),
        )
        .groupBy("key", "t")
        .agg(F.count(F.lit(1)).alias("n"))
    )


def _micros(when: datetime) -> int:
    delta = as_utc(when) - datetime(1970, 1, 1, tzinfo=as_utc(when).tzinfo)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _n_buckets(start: datetime, end: datetime, width: int) -> int:
    """Buckets of ``[start, end)``, rounded up (as :func:`trending.count_series`)."""
    return max(1, -(-int((end - start).total_seconds()) // width))


def store_series(
    spark: SparkSession,
    database_url: str,
    now: datetime,
    bucket: str,
    n_buckets: int,
    source: str = "tags",
) -> VolumeSeries:
    """:func:`trending.store_series` counted by Spark (keys in sorted order)."""
    start, end, width = _window(now, bucket, n_buckets)
    rows = _counts(spark, database_url, start, end, width, source).collect()
    keys = sorted({r["key"] for r in rows})
    row_of = {k: i for i, k in enumerate(keys)}
    counts = np.zeros((len(keys), _n_buckets(start, end, width)), dtype=np.int64)
    for r in rows:
        counts[row_of[r["key"]], r["t"]] = r["n"]
    return VolumeSeries(keys, start, width, counts)


def trending(
    spark: SparkSession,
    database_url: str,
    now: datetime,
    bucket: str = "day",
    n_buckets: int = 60,
    source: str = "tags",
    halflife: float = 7.0,
    alpha: float = 1e-3,
    min_count: int = 5,
) -> Trending:
    """:func:`trending.trending` with the counts, baselines and bursts computed by Spark."""
    from pyspark.sql import functions as F  # noqa: N812

    start, end, width = _window(now, bucket, n_buckets)
    total = _n_buckets(start, end, width)
    warmup = min(7, n_buckets - 1)
    counts = _counts(spark, database_url, start, end, width, source).cache()
    try:
        n_keys = counts.select("key").distinct().count()
        shards = max(1, -(-n_keys // TAGS_PER_SHARD))

        def shard_bursts(part: Iterable[tuple[str, int, int]]) -> list[tuple]:
            cells = list(part)
            keys = sorted({key for key, _, _ in cells})
            row_of = {k: i for i, k in enumerate(keys)}
            matrix = np.zeros((len(keys), total), dtype=np.int64)
            for key, t, n in cells:
                matrix[row_of[key], t] = n
            found = detect_bursts(
                VolumeSeries(keys, start, width, matrix), halflife, warmup, alpha, min_count
            )
            return [
                (
                    b.key,
                    int((b.start - start).total_seconds()) // width,
                    int((b.end - start).total_seconds()) // width,
                    b.peak_count,
                    b.baseline,
                    b.p_value,
                    b.total,
                )
                for b in found
            ]

        sharded = counts.select(
            F.pmod(F.hash("key"), F.lit(shards)).alias("shard"), "key", "t", "n"
        )
        rows = (
            sharded.rdd.map(lambda r: (r["shard"], (r["key"], int(r["t"]), int(r["n"]))))
            .groupByKey(shards)
            .flatMap(lambda shard: shard_bursts(shard[1]))
            .collect()
        )
    finally:
        counts.unpersist()
    series = VolumeSeries([], start, width, np.zeros((0, total), dtype=np.int64))
    bursts = sorted(
        (
            Burst(key, series.bucket_start(t0), series.bucket_start(t1), peak, base, p, n)
            for key, t0, t1, peak, base, p, n in rows
        ),
        key=lambda b: (b.p_value, -b.peak_count, b.key, b.start),
    )
    last = series.bucket_start(total)
    return Trending(as_utc(now), bucket, [b for b in bursts if b.end == last], bursts)
