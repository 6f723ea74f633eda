"""Training ``als``, ``itemknn`` and ``trending`` with Spark (``agora train --engine spark``).

The store's events (read over JDBC by :mod:`agora.db.spark.store`, or from an ``agora export
--format parquet`` folder) become the same weighted interactions as
:func:`agora.features.store.load_training_data` builds: each event weighted by
:func:`agora.features.store.event_weight` (in Spark SQL), summed per (user, item), users in
the order of their sorted external ids, every stored item in row-id order. The models are
fitted by Spark and written as the same artefacts the single-machine path writes
(:func:`agora.models.artifacts.save_artifact`), so ``agora serve`` loads them unchanged.

The aggregated interactions (one row per user and item, not per event) are also collected on
the driver: the artefact keeps the id maps, the data fingerprint and, for ALS, each user's row
checksum for fold-in, and the holdout metrics are scored there by the very code the
single-machine path uses (:func:`agora.models.training.holdout_metrics`).

- ``als``: by default ALS on Spark minimising exactly the objective :class:`ALSModel` hands
  ``implicit`` (confidence ``1 + alpha * w`` on the BM25 weights ``w``, a constant ridge):
  the confidences grouped by user and by item into cached partitions, each half-iteration's
  fixed factors broadcast and every partition's rows solved in numpy by ``implicit``'s
  conjugate-gradient steps (:mod:`agora.models.als_blocks`; :func:`spark_als_factors`).
  ``solver="mllib"`` keeps MLlib's implicit ALS: it scales each user's (item's) ridge by
  their number of interactions (ALS-WR), so :func:`spark_reg_param` can only match
  ``regularization`` at the typical user and item, times a scale chosen on ml1m-general
  valid (:data:`ALS_REG_SCALE`, docs/spark.md).
- ``itemknn``: the shrunk cosine ``x_i . x_j / (|x_i| |x_j| + shrink)`` of every co-occurring
  pair by a self-join on the user, top ``k`` per item by a window: the ``similarity_`` of
  :class:`ItemKNNModel`.
- ``trending``: distinct users per item and the time-decayed mass of :class:`TrendingModel`
  as Spark SQL aggregates.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp

from agora.db.pseudonyms import IdSealer
from agora.db.spark.parquet import EXPORTED, read_parquet_tables
from agora.db.spark.session import DEFAULT_MASTER, spark_session
from agora.db.spark.store import read_table
from agora.features.interactions import Interactions, hold_out_one
from agora.features.store import RATING_THRESHOLD
from agora.models.als_blocks import initial_factors, regularised_gram, solve_rows
from agora.models.artifacts import prune_artifacts, save_artifact
from agora.models.base import Recommender
from agora.models.implicit_mf import ALSModel
from agora.models.itemknn import ItemKNNModel
from agora.models.popularity import _DAY, TrendingModel
from agora.models.training import TrainedModel, holdout_metrics

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import Column, DataFrame, SparkSession

#: The models ``--engine spark`` trains.
SPARK_MODELS = ("als", "itemknn", "trending")
#: The scale of :func:`spark_reg_param`, chosen on ml1m-general valid NDCG@10 (docs/spark.md).
ALS_REG_SCALE = 0.1
#: Spark reads an interaction of weight 0 as "not preferred"; ``implicit`` keeps a stored 0
#: (a BM25 weight clipped at 0) as preferred with confidence 1. The smallest positive weight
#: keeps that meaning: confidence ``1 + alpha * 1e-12``.
_MIN_PREFERRED = 1e-12

#: Told of each step: (model or "data", step, wall seconds it took).
StepHook = Callable[[str, str, float], None]


class NotOnSpark(ValueError):
    """A model ``--engine spark`` does not train."""


def check_spark_models(names: Sequence[str]) -> None:
    """Raise :class:`NotOnSpark` naming the first model Spark does not train."""
    for name in names:
        if name not in SPARK_MODELS:
            raise NotOnSpark(
                f"model {name!r} does not train on Spark; --engine spark trains "
                f"{', '.join(SPARK_MODELS)}"
            )


@dataclass
class SparkInteractions:
    """The interactions twice: ``pairs`` in Spark (``user``, ``item`` indices, ``weight``
    summed, ``seen`` the epoch second of the latest event or null) and ``interactions``, the
    same on the driver; ``last_event_row``: the largest event row id read."""

    pairs: DataFrame
    interactions: Interactions
    last_event_row: int = 0


# -- the interactions ----------------------------------------------------------------------------


def event_weight_column(
    type_col: Column, value_col: Column, weights: Mapping[str, float]
) -> Column:
    """:func:`agora.features.store.event_weight` as a Spark column."""
    from pyspark.sql import functions as F  # noqa: N812 - Spark's own convention

    base: Column = F.lit(1.0)
    if weights:
        base = F.coalesce(
            F.create_map(*[F.lit(x) for kv in weights.items() for x in kv])[type_col], F.lit(1.0)
        )
    disliked = (type_col == "rating") & value_col.isNotNull() & (value_col < RATING_THRESHOLD)
    return F.when(disliked, F.lit(0.0)).otherwise(F.greatest(base.cast("double"), F.lit(0.0)))


def store_interactions(
    spark: SparkSession,
    events: DataFrame,
    users: DataFrame,
    items: DataFrame,
    event_weights: Mapping[str, float],
    ids: IdSealer | None = None,
) -> SparkInteractions:
    """The interactions of the store's ``events`` (``id``, ``user_id``, ``item_id``, ``type``,
    ``value``, ``timestamp``), ``users`` and ``items`` (``id``, ``external_id``) tables, as
    :func:`agora.features.store.load_training_data` builds them (``ids``: the store's sealer,
    when its user ids are kept sealed)."""
    from pyspark.sql import functions as F  # noqa: N812

    last_row = events.agg(F.max("id")).first()[0] or 0
    weighted = events.select(
        "user_id",
        "item_id",
        event_weight_column(F.col("type"), F.col("value"), event_weights).alias("weight"),
        (F.unix_micros(F.col("timestamp")) / 1e6).alias("seen"),
    ).where(F.col("weight") > 0)
    summed = weighted.groupBy("user_id", "item_id").agg(
        F.sum("weight").cast("float").alias("weight"), F.max("seen").alias("seen")
    )
    summed = summed.persist()
    item_rows = items.select("id", "external_id").orderBy("id").toArrow()
    user_rows = (
        summed.select("user_id").distinct().join(users, summed.user_id == users.id)
        .select("id", "external_id").toArrow()
    )  # fmt: skip
    external = user_rows.column("external_id").to_pylist()
    if ids is not None:
        external = [ids.open(u) for u in external]
    order = np.array(sorted(range(len(external)), key=external.__getitem__), dtype=np.int64)
    user_ids = np.array(external, dtype=object)[order]
    user_index = _frame(
        spark,
        {"user_id": _ints(user_rows, "id")[order], "user": np.arange(len(order), dtype=np.int32)},
    )
    item_index = _frame(
        spark,
        {"item_id": _ints(item_rows, "id"), "item": np.arange(item_rows.num_rows, dtype=np.int32)},
    )
    pairs = (
        summed.join(F.broadcast(user_index), "user_id")
        .join(F.broadcast(item_index), "item_id")
        .select("user", "item", "weight", "seen")
        .persist()
    )
    local = pairs.toArrow()
    summed.unpersist()
    shape = (len(user_ids), item_rows.num_rows)
    coords = (_ints(local, "user"), _ints(local, "item"))
    matrix = sp.csr_matrix((_floats(local, "weight").astype(np.float32), coords), shape=shape)
    last_seen = sp.csr_matrix((_floats(local, "seen"), coords), shape=shape)
    item_ids = np.array(item_rows.column("external_id").to_pylist(), dtype=object)
    interactions = Interactions(matrix, user_ids, item_ids, last_seen)
    return SparkInteractions(pairs, interactions, int(last_row))


def interactions_frame(spark: SparkSession, interactions: Interactions) -> DataFrame:
    """An in-memory :class:`Interactions` (e.g. a split's train) as Spark ``pairs``; ``seen``
    is null where ``last_seen`` holds no entry."""
    coo = interactions.matrix.tocoo()
    seen = np.full(coo.nnz, np.nan)
    if interactions.last_seen is not None:
        stamps = sp.csr_matrix(interactions.last_seen)
        present = stamps.copy()
        present.data = np.ones_like(present.data)
        has = np.asarray(present[coo.row, coo.col]).ravel() > 0
        seen[has] = np.asarray(stamps[coo.row[has], coo.col[has]]).ravel()
    columns = {
        "user": coo.row.astype(np.int32),
        "item": coo.col.astype(np.int32),
        "weight": coo.data.astype(np.float32),
        "seen": seen,
    }
    return _frame(spark, columns).persist()


def without_held_out(spark: SparkSession, pairs: DataFrame, held: sp.csr_matrix) -> DataFrame:
    """``pairs`` less the held-out (user, item) entries of ``held``."""
    rows, cols = held.nonzero()
    out = _frame(spark, {"user": rows.astype(np.int32), "item": cols.astype(np.int32)})
    return pairs.join(out, ["user", "item"], "left_anti")


# -- the models ----------------------------------------------------------------------------------


def spark_reg_param(
    regularization: float, pairs: int, users: int, items: int, scale: float = ALS_REG_SCALE
) -> float:
    """MLlib's ``regParam`` for ``implicit``'s ``regularization``: MLlib's ridge of a user with
    n interactions is ``regParam * n``, so ``regParam = regularization / n`` matches it for
    that user; at the geometric mean of the typical user's and item's n (``pairs / users``,
    ``pairs / items``, over those with any), times ``scale``."""
    typical = math.sqrt((pairs / max(users, 1)) * (pairs / max(items, 1)))
    return scale * regularization / max(typical, 1.0)


def als_weights(pairs: DataFrame, model: ALSModel, n_users: int) -> DataFrame:
    """``user``, ``item``, ``rating``: :meth:`ALSModel._weights` of ``pairs`` in Spark SQL
    (binarised, BM25 with the model's ``bm25_k1``/``bm25_b``; ``n_users`` rows in the
    matrix, empty ones included, as its idf and mean length count them)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F  # noqa: N812

    raw = F.when(F.col("weight") > 0, F.col("weight").cast("double")).otherwise(F.lit(0.0))
    frame = pairs.select("user", "item", raw.alias("x")).where(F.col("x") > 0)
    if model.binary:
        frame = frame.withColumn("x", F.lit(1.0))
    if model.weighting == "bm25":
        total = frame.agg(F.sum("x")).first()[0] or 0.0
        avg_len = max(total / max(n_users, 1), 1e-12)
        k1, b = float(model.bm25_k1), float(model.bm25_b)
        by_item = Window.partitionBy("item")
        by_user = Window.partitionBy("user")
        idf = F.lit(math.log(n_users)) - F.log1p(F.count(F.lit(1)).over(by_item))
        norm = F.lit(1.0 - b) + F.lit(b) * F.sum("x").over(by_user) / F.lit(avg_len)
        weight = F.col("x") * (k1 + 1.0) / (F.lit(k1) * norm + F.col("x")) * idf
        frame = frame.select("user", "item", F.greatest(weight, F.lit(0.0)).alias("x"))
    elif model.weighting != "none":
        raise ValueError(f"weighting must be 'none' or 'bm25', got {model.weighting!r}")
    return frame.select("user", "item", F.col("x").alias("rating"))


def _dense_factors(frame: DataFrame, rows: int, rank: int) -> np.ndarray:
    """MLlib's (id, features) factors as a rows x rank array (zeros for ids it never saw,
    which is what ``implicit`` gives a user or item without interactions)."""
    out = np.zeros((rows, rank), dtype=np.float32)
    local = frame.toArrow()
    if local.num_rows:
        features = local.column("features").combine_chunks().flatten().to_numpy()
        out[_ints(local, "id")] = np.asarray(features, np.float32).reshape(-1, rank)
    return out


#: The ALS solvers of :func:`fit_als`: ``cg`` and ``cholesky`` minimise ``implicit``'s
#: objective on Spark (:mod:`agora.models.als_blocks`), ``mllib`` is MLlib's ALS-WR.
SPARK_ALS_SOLVERS = ("cg", "cholesky", "mllib")


def fit_als(
    spark: SparkSession,
    pairs: DataFrame,
    interactions: Interactions,
    params: Mapping[str, Any],
    reg_scale: float = ALS_REG_SCALE,
    solver: str = "cg",
) -> ALSModel:
    """:class:`ALSModel` with ``params``, its factors fitted on Spark: by default the
    broadcast-join ALS of :func:`spark_als_factors` (``solver`` ``cg``, what ``implicit``
    runs, or ``cholesky``), or MLlib's implicit ALS (``mllib``, a per-interaction ridge
    matched by :func:`spark_reg_param` with ``reg_scale``)."""
    if solver not in SPARK_ALS_SOLVERS:
        raise ValueError(
            f"the Spark ALS solver must be one of {', '.join(SPARK_ALS_SOLVERS)}, got {solver!r}"
        )
    model = ALSModel(**params)
    raw = model._raw(interactions.matrix)
    model._fit_weighting(raw)  # idf_ and avg_len_, for fold-in when serving
    if solver == "mllib":
        users, items = _mllib_factors(pairs, model, raw, reg_scale)
    else:
        users, items = spark_als_factors(spark, pairs, model, raw.shape, solver)
    model.user_factors_, model.item_factors_ = users, items
    model._remember_rows(raw)
    return model


def spark_als_factors(
    spark: SparkSession,
    pairs: DataFrame,
    model: ALSModel,
    shape: tuple[int, int],
    solver: str = "cg",
) -> tuple[np.ndarray, np.ndarray]:
    """User and item factors minimising the objective :class:`ALSModel` gives ``implicit``
    (confidence ``1 + alpha * w``, constant ridge ``regularization``), by ALS on Spark.

    The confidences are grouped once by user and once by item into cached blocks (2 x the
    default parallelism partitions). Each half-iteration the driver computes ``Y^T Y + reg I``
    of the fixed side and broadcasts it with the fixed factors and the solved side's current
    ones (the warm start of ``cg``); every partition solves its rows in numpy
    (:func:`agora.models.als_blocks.solve_rows`) and the new factors are collected back to
    the driver as a dense float32 array. Rows without interactions are solved on the driver
    (as ``implicit`` does, they shrink from their random start). Starts from ``implicit``'s
    random factors for ``random_state``, users first."""
    from pyspark.sql import functions as F  # noqa: N812

    n_users, n_items = shape
    confidence = als_weights(pairs, model, n_users).select(
        "user", "item", (F.lit(1.0) + F.lit(float(model.alpha)) * F.col("rating")).alias("c")
    )
    confidence = confidence.persist()  # the BM25 windows once for both groupings
    partitions = 2 * spark.sparkContext.defaultParallelism
    by_user = _row_blocks(confidence, "user", "item", partitions)
    by_item = _row_blocks(confidence, "item", "user", partitions)
    by_user.count(), by_item.count()  # cached before the weights are let go
    confidence.unpersist()
    users, items = initial_factors(n_users, n_items, model.factors, model.random_state)
    reg = float(model.regularization)
    try:
        for _ in range(model.iterations):
            users = _half_step(spark, by_user, items, users, reg, solver)
            items = _half_step(spark, by_item, users, items, reg, solver)
    finally:
        by_user.unpersist()
        by_item.unpersist()
    return users, items


def _row_blocks(confidence: DataFrame, row: str, other: str, partitions: int) -> Any:
    """A cached RDD of one block per partition: (row ids, csr indptr, ``other`` indices,
    confidences) of the rows of ``confidence`` grouped by ``row``."""
    from pyspark.sql import functions as F  # noqa: N812

    grouped = (
        confidence.groupBy(row)
        .agg(F.collect_list(F.struct(F.col(other).alias("j"), F.col("c"))).alias("entries"))
        .repartition(partitions, row)
    )
    return grouped.rdd.mapPartitions(_to_block).cache()


def _to_block(rows: Any) -> Any:
    """One partition's grouped rows as a csr block."""
    ids, lengths, indices, conf = [], [], [], []
    for r in rows:
        ids.append(r[0])
        lengths.append(len(r[1]))
        indices.extend(e[0] for e in r[1])
        conf.extend(e[1] for e in r[1])
    indptr = np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)])
    yield (
        np.asarray(ids, dtype=np.int64),
        indptr,
        np.asarray(indices, dtype=np.int64),
        np.asarray(conf, dtype=np.float64),
    )


def _half_step(
    spark: SparkSession,
    blocks: Any,
    fixed: np.ndarray,
    current: np.ndarray,
    reg: float,
    solver: str,
) -> np.ndarray:
    """The solved side's new factors: each block solved on its partition against the
    broadcast ``fixed`` factors, rows in no block solved on the driver."""
    gram = regularised_gram(fixed, reg)
    context = spark.sparkContext
    shared = context.broadcast((fixed, gram, current if solver == "cg" else None))

    def solve(block: tuple) -> tuple[np.ndarray, np.ndarray]:
        ids, indptr, indices, conf = block
        y, g, previous = shared.value
        start = None if previous is None else previous[ids]
        return ids, solve_rows(indptr, indices, conf, y, g, start, solver)

    out = np.zeros_like(current)
    solved = np.zeros(len(current), dtype=bool)
    try:
        for ids, factors in blocks.map(solve).collect():
            out[ids] = factors
            solved[ids] = True
    finally:
        shared.destroy()
    empty = np.flatnonzero(~solved)
    if len(empty):
        nothing = np.zeros(len(empty) + 1, dtype=np.int64)
        out[empty] = solve_rows(
            nothing, nothing[:0], np.zeros(0), fixed, gram, current[empty], solver
        )
    return out


def _mllib_factors(
    pairs: DataFrame, model: ALSModel, raw: sp.csr_matrix, reg_scale: float
) -> tuple[np.ndarray, np.ndarray]:
    """User and item factors by MLlib's implicit ALS (``regParam`` by
    :func:`spark_reg_param`)."""
    from pyspark.ml.recommendation import ALS
    from pyspark.sql import functions as F  # noqa: N812

    n_users, n_items = raw.shape
    ratings = als_weights(pairs, model, n_users).select(
        "user", "item", F.greatest(F.col("rating"), F.lit(_MIN_PREFERRED)).alias("rating")
    )
    active_users = int((np.diff(raw.indptr) > 0).sum())
    active_items = len(np.unique(raw.indices))
    reg_param = spark_reg_param(
        float(model.regularization), raw.nnz, active_users, active_items, reg_scale
    )
    fitted = ALS(
        rank=model.factors,
        maxIter=model.iterations,
        regParam=reg_param,
        implicitPrefs=True,
        alpha=float(model.alpha),
        seed=model.random_state,
        userCol="user",
        itemCol="item",
        ratingCol="rating",
    ).fit(ratings)
    return (
        _dense_factors(fitted.userFactors, n_users, model.factors),
        _dense_factors(fitted.itemFactors, n_items, model.factors),
    )


def item_similarity(
    pairs: DataFrame, n_items: int, k: int, shrink: float, binary: bool
) -> sp.csr_matrix:
    """:func:`agora.models.itemknn.topk_cosine` with Spark SQL: items x items csr of the ``k``
    largest positive shrunk cosines per row, self excluded."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F  # noqa: N812

    k = max(0, min(k, n_items - 1))
    if k == 0:
        return sp.csr_matrix((n_items, n_items), dtype=np.float32)
    value = F.lit(1.0) if binary else F.col("weight").cast("double")
    x = pairs.where(F.col("weight") != 0).select("user", "item", value.alias("x"))
    norms = x.groupBy("item").agg(F.sqrt(F.sum(F.col("x") * F.col("x"))).alias("norm"))
    left = x.select("user", F.col("item").alias("i"), F.col("x").alias("xi"))
    right = x.select("user", F.col("item").alias("j"), F.col("x").alias("xj"))
    dots = (
        left.join(right, "user")
        .where(F.col("i") != F.col("j"))
        .groupBy("i", "j")
        .agg(F.sum(F.col("xi") * F.col("xj")).alias("dot"))
    )
    ni = norms.select(F.col("item").alias("i"), F.col("norm").alias("ni"))
    nj = norms.select(F.col("item").alias("j"), F.col("norm").alias("nj"))
    denom = F.col("ni") * F.col("nj") + F.lit(float(shrink))
    sims = (
        dots.join(F.broadcast(ni), "i")
        .join(F.broadcast(nj), "j")
        .select("i", "j", F.when(denom > 0, F.col("dot") / denom).otherwise(0.0).alias("sim"))
        .where(F.col("sim") > 0)
    )
    rank = F.row_number().over(Window.partitionBy("i").orderBy(F.desc("sim"), F.asc("j")))
    top = sims.withColumn("rank", rank).where(F.col("rank") <= k).toArrow()
    out = sp.csr_matrix(
        (_floats(top, "sim").astype(np.float32), (_ints(top, "i"), _ints(top, "j"))),
        shape=(n_items, n_items),
        dtype=np.float32,
    )
    out.sort_indices()
    return out


def fit_itemknn(
    pairs: DataFrame, interactions: Interactions, params: Mapping[str, Any]
) -> ItemKNNModel:
    """:class:`ItemKNNModel` with ``params``, its ``similarity_`` computed by Spark."""
    model = ItemKNNModel(**params)
    model.similarity_ = item_similarity(
        pairs, interactions.n_items, model.k, model.shrink, model.binary
    )
    return model


def fit_trending(
    pairs: DataFrame, interactions: Interactions, params: Mapping[str, Any]
) -> TrendingModel:
    """:class:`TrendingModel` with ``params``: distinct users per item, decayed by the age of
    each pair's latest event when times are known (its ``fit`` in Spark SQL)."""
    from pyspark.sql import functions as F  # noqa: N812

    model = TrendingModel(**params)
    n_items = interactions.n_items
    popular = pairs.where(F.col("weight") > 0).groupBy("item").agg(F.count("*").alias("n"))
    pop = _item_array(popular.toArrow(), "n", n_items)
    scores = pop.copy()
    stamped = pairs.where(F.col("seen").isNotNull() & ~F.isnan("seen"))
    known = stamped.where(F.col("seen") > 0)
    bounds = known.agg(F.max("seen").alias("newest"), F.min("seen").alias("oldest")).first()
    if model.half_life_days > 0 and bounds["newest"] is not None:
        seen = F.when(F.col("seen") > 0, F.col("seen")).otherwise(F.lit(bounds["oldest"]))
        age = (F.lit(bounds["newest"]) - seen) / F.lit(model.half_life_days * _DAY)
        decayed = stamped.groupBy("item").agg(F.sum(F.pow(F.lit(0.5), age)).alias("mass"))
        scores = _item_array(decayed.toArrow(), "mass", n_items)
        scores = scores + 1e-9 * pop / max(pop.max(), 1.0)
    model.item_scores_ = scores.astype(np.float64)
    return model


def _item_array(table: pa.Table, column: str, n_items: int) -> np.ndarray:
    """A per-item aggregate as an array over all items (0 where an item has none)."""
    out = np.zeros(n_items, dtype=np.float64)
    out[_ints(table, "item")] = _floats(table, column)
    return out


# -- moving columns between Spark and numpy (Arrow, no pandas) -----------------------------------


def _ints(table: pa.Table, column: str) -> np.ndarray:
    return np.asarray(table.column(column).to_numpy(), dtype=np.int64)


def _floats(table: pa.Table, column: str) -> np.ndarray:
    """A float column; nulls become NaN."""
    values = table.column(column).cast("float64").fill_null(float("nan"))
    return np.asarray(values.to_numpy(), dtype=np.float64)


def _frame(spark: SparkSession, columns: Mapping[str, np.ndarray]) -> DataFrame:
    """Numpy columns as a Spark DataFrame, through Arrow (NaN floats become nulls)."""
    import pyarrow as pa

    arrays = {
        name: pa.array(values, from_pandas=values.dtype.kind == "f")
        for name, values in columns.items()
    }
    return spark.createDataFrame(pa.table(arrays))


def fit_on_spark(
    spark: SparkSession,
    name: str,
    pairs: DataFrame,
    interactions: Interactions,
    params: Mapping[str, Any] | None = None,
    reg_scale: float = ALS_REG_SCALE,
    als_solver: str = "cg",
) -> Recommender:
    """Model ``name`` fitted by Spark on ``pairs`` (``interactions``: the same on the driver;
    ``als_solver``: :func:`fit_als`'s ``solver``)."""
    check_spark_models([name])
    params = dict(params or {})
    if name == "als":
        return fit_als(spark, pairs, interactions, params, reg_scale, als_solver)
    if name == "itemknn":
        return fit_itemknn(pairs, interactions, params)
    return fit_trending(pairs, interactions, params)


def fit_interactions_on_spark(
    spark: SparkSession,
    name: str,
    interactions: Interactions,
    params: Mapping[str, Any] | None = None,
    reg_scale: float = ALS_REG_SCALE,
    als_solver: str = "cg",
) -> Recommender:
    """:func:`fit_on_spark` on an in-memory :class:`Interactions` (``agora eval --engine
    spark``: a split's train)."""
    pairs = interactions_frame(spark, interactions)
    try:
        return fit_on_spark(spark, name, pairs, interactions, params, reg_scale, als_solver)
    finally:
        pairs.unpersist()


def train_on_spark(
    spark: SparkSession,
    data: SparkInteractions,
    names: Sequence[str],
    model_dir: Path,
    params: Mapping[str, Mapping[str, Any]] | None = None,
    validate: bool = True,
    keep_versions: int = 3,
    ids: IdSealer | None = None,
    on_step: StepHook | None = None,
    reg_scale: float = ALS_REG_SCALE,
    als_solver: str = "cg",
) -> list[TrainedModel]:
    """:func:`agora.models.training.train_models` with Spark fitting: per model, with
    ``validate`` a fit without :func:`hold_out_one`'s items scored by
    :func:`holdout_metrics`, then a fit on all interactions saved as a new version."""
    check_spark_models(names)
    params = params or {}
    interactions = data.interactions

    clock = [time.perf_counter()]

    def told(model: str, step: str) -> float:
        """Seconds since the last step, told to ``on_step``."""
        now = time.perf_counter()
        seconds, clock[0] = now - clock[0], now
        if on_step:
            on_step(model, step, seconds)
        return seconds

    split = hold_out_one(interactions) if validate and interactions.n_users else None
    train_pairs = without_held_out(spark, data.pairs, split[1]).persist() if split else None
    results = []
    for name in names:
        metrics: dict[str, Any] = {"last_event_row": data.last_event_row, "engine": "spark"}
        own = params.get(name, {})
        clock[0] = time.perf_counter()
        if split is not None and train_pairs is not None:
            probe = fit_on_spark(spark, name, train_pairs, split[0], own, reg_scale, als_solver)
            told(name, "holdout fit")
            metrics.update(holdout_metrics(probe, *split))
            told(name, "holdout scoring")
        model = fit_on_spark(spark, name, data.pairs, interactions, own, reg_scale, als_solver)
        fit_seconds = told(name, "fit")
        metrics["fit_seconds"] = round(fit_seconds, 3)
        if name == "als":
            metrics["spark_als_solver"] = als_solver
            if als_solver == "mllib":
                metrics["spark_reg_scale"] = reg_scale
        path = save_artifact(model, model_dir, interactions, metrics=metrics, ids=ids)
        prune_artifacts(model_dir, name, keep_versions)
        told(name, "save")
        results.append(TrainedModel(name, path, fit_seconds, metrics))
    if train_pairs is not None:
        train_pairs.unpersist()
    return results


def train_store_on_spark(
    names: Sequence[str],
    model_dir: Path,
    event_weights: Mapping[str, float],
    database_url: str | None = None,
    parquet_dir: Path | None = None,
    params: Mapping[str, Mapping[str, Any]] | None = None,
    validate: bool = True,
    keep_versions: int = 3,
    ids: IdSealer | None = None,
    master: str = DEFAULT_MASTER,
    event_log_dir: Path | None = None,
    partitions: int = 4,
    on_step: StepHook | None = None,
    on_loaded: Callable[[Interactions], None] | None = None,
    als_solver: str = "cg",
) -> list[TrainedModel]:
    """What ``agora train --engine spark`` does: a Spark session on ``master``, the events read
    from the store at ``database_url`` (JDBC, ``partitions`` parallel reads on PostgreSQL) or
    from the Parquet export in ``parquet_dir``, :func:`store_interactions`, then
    :func:`train_on_spark`. A store without events raises ValueError."""
    check_spark_models(names)
    with spark_session(master, "agora-train", event_log_dir=event_log_dir) as spark:
        started = time.perf_counter()
        if parquet_dir is not None:
            tables = read_parquet_tables(spark, parquet_dir)
        elif database_url is not None:
            tables = {
                table: read_table(spark, database_url, table, list(columns), partitions)
                for table, columns in EXPORTED.items()
            }
        else:
            raise ValueError("give a database_url or a parquet_dir to read the events from")
        data = store_interactions(
            spark, tables["events"], tables["users"], tables["items"], event_weights, ids
        )
        if on_step:
            on_step("data", "read and weigh events", time.perf_counter() - started)
        if on_loaded:
            on_loaded(data.interactions)
        if data.interactions.matrix.nnz == 0:
            raise ValueError("no events in the store; run `agora import` first")
        try:
            return train_on_spark(
                spark,
                data,
                names,
                model_dir,
                params,
                validate,
                keep_versions,
                ids,
                on_step,
                als_solver=als_solver,
            )
        finally:
            data.pairs.unpersist()
