"""The user graph of :mod:`agora.analytics.influence` built by Spark (``--engine spark``).

Spark joins the social edges and the events with their items' authors and sums each directed
pair's weight; the driver gets one row per pair and builds the same igraph graph with
:func:`~agora.analytics.influence.service.graph_from_edges`, where centrality stays.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from agora.analytics.influence.service import ATTENTION_EDGE_TYPES, graph_from_edges
from agora.config import DEFAULT_EVENT_WEIGHTS
from agora.db.spark.store import read_table
from agora.features.store import RATING_THRESHOLD

if TYPE_CHECKING:
    import igraph as ig
    from pyspark.sql import Column, DataFrame, SparkSession

    from agora.db.pseudonyms import IdSealer


def _event_weight(event_weights: Mapping[str, float]) -> Column:
    """:func:`agora.features.store.event_weight` as a Spark column of ``type`` and ``value``."""
    from pyspark.sql import functions as F  # noqa: N812

    base = F.lit(1.0)
    for kind, weight in event_weights.items():
        base = F.when(F.col("type") == kind, F.lit(float(weight))).otherwise(base)
    low_rating = (
        (F.col("type") == "rating")
        & F.col("value").isNotNull()
        & (F.col("value") < RATING_THRESHOLD)
    )
    return F.when(low_rating, F.lit(0.0)).otherwise(F.greatest(base, F.lit(0.0)))


def user_edges(
    spark: SparkSession,
    database_url: str,
    edge_types: Sequence[str] = ATTENTION_EDGE_TYPES,
    event_weights: Mapping[str, float] = DEFAULT_EVENT_WEIGHTS,
    include_events: bool = True,
) -> DataFrame:
    """``(src, dst, weight)`` per directed pair of user ids (primary keys): the summed positive
    contributions of social edges (friend both ways) and of weighted events on others' items."""
    from pyspark.sql import functions as F  # noqa: N812

    social = read_table(
        spark, database_url, "social_edges", ["id", "source_id", "target_id", "type", "weight"]
    )
    social = social.where(F.col("type").isin(list(edge_types)))
    parts = [
        social.select(F.col("source_id").alias("src"), F.col("target_id").alias("dst"), "weight"),
        social.where(F.col("type") == "friend").select(
            F.col("target_id").alias("src"), F.col("source_id").alias("dst"), "weight"
        ),
    ]
    if include_events:
        events = read_table(
            spark, database_url, "events", ["id", "user_id", "item_id", "type", "value"]
        )
        items = read_table(spark, database_url, "items", ["id", "author_id"])
        on_others = (
            events.join(items, events["item_id"] == items["id"])
            .where(items["author_id"].isNotNull() & (events["user_id"] != items["author_id"]))
            .groupBy(
                events["user_id"].alias("src"),
                items["author_id"].alias("dst"),
                events["type"].alias("type"),
                events["value"].alias("value"),
            )
            .agg(F.count(F.lit(1)).alias("n"))
        )
        parts.append(
            on_others.select(
                "src", "dst", (F.col("n") * _event_weight(event_weights)).alias("weight")
            )
        )
    union = parts[0]
    for part in parts[1:]:
        union = union.unionByName(part)
    # each contribution counts only if positive (Spark orders NaN above every number)
    kept = union.where((F.col("weight") > 0) & ~F.isnan("weight") & (F.col("src") != F.col("dst")))
    return kept.groupBy("src", "dst").agg(F.sum("weight").alias("weight"))


def build_user_graph(
    spark: SparkSession,
    database_url: str,
    edge_types: Sequence[str] = ATTENTION_EDGE_TYPES,
    event_weights: Mapping[str, float] = DEFAULT_EVENT_WEIGHTS,
    include_events: bool = True,
    ids: IdSealer | None = None,
) -> ig.Graph:
    """:func:`influence.build_user_graph` with the edges built by Spark; ``ids`` opens the
    user ids of a sealed store."""
    from pyspark.sql import functions as F  # noqa: N812

    edges = user_edges(spark, database_url, edge_types, event_weights, include_events)
    users = read_table(spark, database_url, "users", ["id", "external_id"])
    named = (
        edges.join(
            users.select(F.col("id").alias("src"), F.col("external_id").alias("src_name")), "src"
        )
        .join(users.select(F.col("id").alias("dst"), F.col("external_id").alias("dst_name")), "dst")
        .orderBy("src_name", "dst_name")
        .collect()
    )
    opened = (lambda name: name) if ids is None else ids.open
    return graph_from_edges(
        {(opened(r["src_name"]), opened(r["dst_name"])): r["weight"] for r in named}
    )
