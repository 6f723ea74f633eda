"""The per-user feature matrix of :mod:`agora.analytics.segments` computed by Spark
(``--engine spark``); embedding and clustering stay with scikit-learn on the driver.

Spark passes over the events once per fact (events per type, last event, distinct active days,
tag engagements through the items' tags, posts authored); the driver gets one row per user and
one per (user, tag) and assembles :class:`~agora.analytics.segments.service.UserFeatures` with
:func:`~agora.analytics.segments.service.features_from`, as the single-machine path does. Tags are
numbered in order of first appearance over the events in id order (and their order on the
item), as the single-machine path meets them reading the events table.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from scipy import sparse

from agora.analytics.segments.service import UserFeatures, features_from
from agora.db.spark.store import epoch_seconds, read_table

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from agora.db.pseudonyms import IdSealer

DAY = 86_400


def load_features(
    spark: SparkSession, database_url: str, ids: IdSealer | None = None
) -> UserFeatures:
    """:func:`segments.load_features` with the passes over the events done by Spark; ``ids``
    opens the user ids of a sealed store."""
    from pyspark.sql import functions as F  # noqa: N812

    events = read_table(
        spark, database_url, "events", ["id", "user_id", "item_id", "type", "timestamp"]
    ).withColumn("ts", epoch_seconds("timestamp"))
    events = events.cache()
    try:
        event_types = sorted(r["type"] for r in events.select("type").distinct().collect())
        if not event_types:
            raise ValueError("the store has no events: there is no behaviour to segment")
        items = read_table(spark, database_url, "items", ["id", "author_id", "tags"])
        users = read_table(spark, database_url, "users", ["id", "external_id"])
        authored = (
            items.where(F.col("author_id").isNotNull())
            .groupBy(F.col("author_id").alias("user_id"))
            .agg(F.count(F.lit(1)).alias("posts"))
        )
        day = F.floor(F.col("ts") / DAY)  # as the single-machine path's int(ts // 86400)
        per_user = (
            events.groupBy("user_id")
            .pivot("type", event_types)
            .agg(F.count(F.lit(1)))
            .join(
                events.groupBy("user_id").agg(
                    F.max("ts").alias("last"), F.countDistinct(day).alias("days")
                ),
                "user_id",
            )
            .join(authored, "user_id", "left")
            .join(users.select(F.col("id").alias("user_id"), "external_id"), "user_id")
            .orderBy("user_id")
            .collect()
        )
        tagged = events.join(
            items.select(
                F.col("id").alias("item_id"),
                F.posexplode(F.from_json("tags", "array<string>")).alias("pos", "tag"),
            ),
            "item_id",
        )
        tag_order = [
            r["tag"]
            for r in tagged.groupBy("tag")
            .agg(F.min(F.struct("id", "pos")).alias("first"))
            .orderBy("first")
            .collect()
        ]
        engaged = tagged.groupBy("user_id", "tag").agg(F.count(F.lit(1)).alias("n")).collect()
    finally:
        events.unpersist()
    row_of = {r["user_id"]: i for i, r in enumerate(per_user)}
    col_of = {tag: j for j, tag in enumerate(tag_order)}
    opened = (lambda name: name) if ids is None else ids.open
    tag_counts = sparse.csr_matrix(
        (
            np.asarray([r["n"] for r in engaged], dtype=np.float64),
            ([row_of[r["user_id"]] for r in engaged], [col_of[r["tag"]] for r in engaged]),
        ),
        shape=(len(per_user), max(len(tag_order), 1)),
    )
    return features_from(
        users=[opened(r["external_id"]) for r in per_user],
        event_types=event_types,
        type_counts=np.asarray(
            [[r[t] or 0 for t in event_types] for r in per_user], dtype=np.float64
        ),
        last=np.asarray([r["last"] for r in per_user], dtype=np.float64),
        active_days=np.asarray([r["days"] for r in per_user], dtype=np.float64),
        posts=np.asarray([r["posts"] or 0 for r in per_user], dtype=np.float64),
        tags=tag_order,
        tag_counts=tag_counts,
    )
