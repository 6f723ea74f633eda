"""Engagement analytics as Spark jobs: the twins of :mod:`agora.analytics.engagement` that
``--engine spark`` runs, returning the same dataclasses so the report is unchanged.

Spark does the passes over the whole log (bucketing, distinct users, joins of events with
their items, first responses, per-item counts) and hands the driver only aggregates: one row
per time bucket, per (cohort, week), per item. The driver finishes with the same numpy code as
the single-machine path (:func:`~agora.analytics.engagement.service.retention_from`,
:func:`~agora.analytics.engagement.service.response_times_from`,
:func:`~agora.analytics.engagement.service.attention_from`). Times are read as the single-machine
SQL reads them: clamped to the store's time span, and in whole seconds on SQLite (its
``strftime('%s')``), so both engines agree on either database.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from agora.analytics.engagement import service as eg
from agora.analytics.engagement.report import Engagement
from agora.db.spark.store import epoch_seconds, jdbc_source, read_table

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

    from agora.db.pseudonyms import IdSealer


class StoreFrames:
    """The tables one engagement run reads (each read once and cached) and its times as the
    single-machine SQL reads them."""

    def __init__(self, spark: SparkSession, database_url: str) -> None:
        self.spark = spark
        self.url = database_url
        self.whole_seconds = not jdbc_source(database_url).is_postgresql
        self._frames: dict[str, DataFrame] = {}

    def table(self, name: str, columns: list[str]) -> DataFrame:
        key = f"{name}:{','.join(columns)}"
        if key not in self._frames:
            self._frames[key] = read_table(self.spark, self.url, name, columns).cache()
        return self._frames[key]

    def seconds(self, column: str | Column) -> Column:
        return epoch_seconds(column, whole=self.whole_seconds)

    def events(self) -> DataFrame:
        return self.table("events", ["id", "user_id", "item_id", "type", "timestamp"])

    def items(self) -> DataFrame:
        return self.table("items", ["id", "external_id", "author_id", "created"])

    def release(self) -> None:
        for frame in self._frames.values():
            frame.unpersist()


def _bucket(seconds: Column, width: int) -> Column:
    """Whole days or Monday-aligned weeks since the epoch (:func:`engagement._bucket_index`)."""
    from pyspark.sql import functions as F  # noqa: N812

    shift = eg.MONDAY_SHIFT if width == eg.WEEK else 0
    return F.floor((seconds.cast("long") + shift) / width)


def _others(events: DataFrame, items: DataFrame) -> Column:
    """Events by someone other than the item's author (or on an item without one)."""
    return items["author_id"].isNull() | (events["user_id"] != items["author_id"])


def active_users(
    store: StoreFrames,
    bucket: str = "day",
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[eg.ActivePoint]:
    """:func:`engagement.active_users` in Spark: events and distinct users per bucket."""
    from pyspark.sql import functions as F  # noqa: N812

    if bucket not in eg.BUCKETS:
        raise ValueError(f"bucket must be one of {', '.join(eg.BUCKETS)}, not {bucket!r}")
    width = eg.BUCKETS[bucket]
    events = store.events()
    if since is not None:
        events = events.where(F.col("timestamp") >= F.lit(since))
    if until is not None:
        events = events.where(F.col("timestamp") < F.lit(until))
    rows = (
        events.select("user_id", _bucket(store.seconds("timestamp"), width).alias("b"))
        .groupBy("b")
        .agg(F.count(F.lit(1)).alias("events"), F.countDistinct("user_id").alias("users"))
        .collect()
    )
    if not rows:
        return []
    found = {int(r["b"]): (int(r["users"]), int(r["events"])) for r in rows}
    first, last = min(found), max(found)
    return [
        eg.ActivePoint(eg._bucket_start(b, width), *found.get(b, (0, 0)))
        for b in range(first, last + 1)
    ]


def interaction_rates(
    store: StoreFrames, by: str = "item", top: int = 20, ids: IdSealer | None = None
) -> list[eg.InteractionRate]:
    """:func:`engagement.interaction_rates` in Spark: other users' events per item-day."""
    from pyspark.sql import functions as F  # noqa: N812

    if by not in ("item", "author"):
        raise ValueError(f"by must be 'item' or 'author', not {by!r}")
    events, items = store.events(), store.items()
    end = events.agg(F.max(store.seconds("timestamp"))).first()[0]
    if end is None:
        return []
    joined = items.join(events, (events["item_id"] == items["id"]) & _others(events, items))
    if by == "author":
        joined = joined.where(items["author_id"].isNotNull())
    per_item = joined.groupBy(items["id"], items["author_id"], items["created"]).agg(
        F.count(events["id"]).alias("events"), F.countDistinct(events["user_id"]).alias("users")
    )
    days = F.greatest((F.lit(float(end)) - store.seconds("created")) / eg.DAY, F.lit(1.0))
    per_item = per_item.withColumn("days", days)
    if by == "item":
        ranked = per_item.select(
            F.col("id").alias("key"),
            F.lit(1).alias("items"),
            "events",
            "users",
            (F.col("events") / F.col("days")).alias("rate"),
        )
        names = items.select(F.col("id").alias("key"), F.col("external_id").alias("name"))
    else:
        per_author = per_item.groupBy(F.col("author_id").alias("key")).agg(
            F.count(F.lit(1)).alias("items"),
            F.sum("events").alias("events"),
            F.sum("days").alias("days"),
        )
        author_users = joined.groupBy(F.col("author_id").alias("key")).agg(
            F.countDistinct(events["user_id"]).alias("users")
        )
        ranked = per_author.join(author_users, "key").select(
            "key", "items", "events", "users", (F.col("events") / F.col("days")).alias("rate")
        )
        names = store.table("users", ["id", "external_id"]).select(
            F.col("id").alias("key"), F.col("external_id").alias("name")
        )
    rows = (
        ranked.orderBy(F.col("rate").desc(), F.col("key").asc())
        .limit(top)
        .join(names, "key")
        .orderBy(F.col("rate").desc(), F.col("key").asc())
        .collect()
    )
    opened = (lambda name: name) if ids is None or by == "item" else ids.open
    return [
        eg.InteractionRate(
            opened(r["name"]), int(r["items"]), int(r["events"]), int(r["users"]), r["rate"]
        )
        for r in rows
    ]


def retention_cohorts(store: StoreFrames, weeks: int = 8) -> eg.Retention:
    """:func:`engagement.retention_cohorts` in Spark: each user's distinct active weeks against
    their first, counted per (cohort, weeks after); the driver gets one row per pair."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F  # noqa: N812

    if weeks < 0:
        raise ValueError(f"weeks must be >= 0, not {weeks}")
    pairs = (
        store.events()
        .select("user_id", _bucket(store.seconds("timestamp"), eg.WEEK).alias("week"))
        .distinct()
        .withColumn("cohort", F.min("week").over(Window.partitionBy("user_id")))
        .withColumn("after", F.col("week") - F.col("cohort"))
        .cache()
    )
    try:
        last_week = pairs.agg(F.max("week")).first()[0]
        if last_week is None:
            return eg.Retention([], [None] * (weeks + 1))
        rows = (
            pairs.where(F.col("after") <= weeks)
            .groupBy("cohort", "after")
            .agg(F.count(F.lit(1)).alias("users"))
            .collect()
        )
    finally:
        pairs.unpersist()
    cohorts = np.unique(np.asarray([r["cohort"] for r in rows], dtype=np.int64))
    active = np.zeros((cohorts.size, weeks + 1), dtype=np.int64)
    for r in rows:
        active[np.searchsorted(cohorts, r["cohort"]), r["after"]] = r["users"]
    return eg.retention_from(active, cohorts, int(last_week))


def time_to_first_response(
    store: StoreFrames,
    response_types: Sequence[str] = eg.RESPONSE_TYPES,
    of: str | None = None,
) -> eg.ResponseTimes:
    """:func:`engagement.time_to_first_response` in Spark: each post's first answer or comment
    by someone else; the driver gets one (created, first response) pair per post."""
    from pyspark.sql import functions as F  # noqa: N812

    events, items = store.events(), store.items()
    first = (
        events.join(items, events["item_id"] == items["id"])
        .where(events["type"].isin(list(response_types)) & _others(events, items))
        .groupBy(events["item_id"])
        .agg(F.min(events["timestamp"]).alias("at"))
    )
    posts = items.select("id", "created")
    if of is not None:
        marked = events.where(F.col("type") == of).select(F.col("item_id").alias("id"))
        posts = posts.join(marked.distinct(), "id", "left_semi")
    rows = (
        posts.join(first, posts["id"] == first["item_id"], "left")
        .select("id", store.seconds("created").alias("created"), store.seconds("at").alias("at"))
        .orderBy("id")
        .collect()
    )
    created = np.asarray([r["created"] for r in rows], dtype=np.float64)
    first_at = np.asarray([np.nan if r["at"] is None else r["at"] for r in rows], dtype=np.float64)
    return eg.response_times_from(created, first_at)


def attention_gini(
    store: StoreFrames, event_types: Sequence[str] | None = None, include_zero: bool = True
) -> eg.Attention:
    """:func:`engagement.attention_gini` in Spark: other users' events per item (zero for
    items nobody engaged with); the driver gets one count per item."""
    from pyspark.sql import functions as F  # noqa: N812

    events, items = store.events(), store.items()
    cond = (events["item_id"] == items["id"]) & _others(events, items)
    if event_types is not None:
        cond = cond & events["type"].isin(list(event_types))
    rows = (
        items.join(events, cond, "left")
        .groupBy(items["id"], items["author_id"])
        .agg(F.count(events["id"]).alias("n"))
        .orderBy("id")
        .collect()
    )
    authors = np.asarray(
        [np.nan if r["author_id"] is None else r["author_id"] for r in rows], dtype=np.float64
    )
    counts = np.asarray([r["n"] for r in rows], dtype=np.float64)
    return eg.attention_from(authors, counts, event_types, include_zero)


def compute(
    spark: SparkSession,
    database_url: str,
    since: datetime | None = None,
    until: datetime | None = None,
    weeks: int = 8,
    of: str | None = None,
    top: int = 10,
    ids: IdSealer | None = None,
) -> Engagement:
    """:func:`engagement_report.compute` on Spark: every analytic once, each timed; ``ids``
    opens the user ids of a sealed store (the top authors' names)."""
    store = StoreFrames(spark, database_url)
    seconds: dict[str, float] = {}

    def timed(name: str, fn: Callable[..., Any], *args: Any) -> Any:
        start = time.perf_counter()
        out = fn(store, *args)
        seconds[name] = time.perf_counter() - start
        return out

    try:
        return Engagement(
            daily=timed("active_users_day", active_users, "day", since, until),
            weekly=timed("active_users_week", active_users, "week", since, until),
            top_items=timed("interaction_rates_item", interaction_rates, "item", top),
            top_authors=timed("interaction_rates_author", interaction_rates, "author", top, ids),
            retention=timed("retention_cohorts", retention_cohorts, weeks),
            response=timed("time_to_first_response", time_to_first_response, eg.RESPONSE_TYPES, of),
            attention=timed("attention_gini", attention_gini, None, True),
            seconds=seconds,
        )
    finally:
        store.release()
