"""Models fitted by Spark equal the single-machine ones and load as the same artefacts."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from stores import StoreTemplates, bundled_community

from agora.config import Settings
from agora.db.engine import make_engine, session_factory
from agora.db.spark.parquet import EXPORTED
from agora.db.spark.store import read_table
from agora.features.interactions import Interactions
from agora.features.store import load_training_data
from agora.models.als_blocks import implicit_objective
from agora.models.artifacts import load_artifact
from agora.models.implicit_mf import ALSModel
from agora.models.itemknn import ItemKNNModel
from agora.models.popularity import TrendingModel
from agora.models.spark_training import (
    ALS_REG_SCALE,
    NotOnSpark,
    SparkInteractions,
    als_weights,
    check_spark_models,
    fit_interactions_on_spark,
    interactions_frame,
    spark_reg_param,
    store_interactions,
    train_on_spark,
)

WEIGHTS = Settings().event_weights


def single_machine(database_url: str) -> tuple[Interactions, int]:
    engine = make_engine(database_url)
    with session_factory(engine)() as session:
        interactions, _, last_row = load_training_data(session, WEIGHTS)
    engine.dispose()
    return interactions, last_row


@pytest.fixture(scope="module")
def community(
    spark, tmp_path_factory: pytest.TempPathFactory, store_templates: StoreTemplates
) -> tuple[Interactions, SparkInteractions]:  # noqa: ANN001
    """The bundled community on SQLite (a copy of the run's): the single-machine interactions
    and Spark's."""
    url = f"sqlite:///{tmp_path_factory.mktemp('spark-training') / 'agora.db'}"
    store_templates.copy_into(url, "community", bundled_community)
    tables = {t: read_table(spark, url, t, list(c)) for t, c in EXPORTED.items()}
    data = store_interactions(spark, tables["events"], tables["users"], tables["items"], WEIGHTS)
    return single_machine(url)[0], data


def assert_same_interactions(expected: Interactions, got: Interactions) -> None:
    assert list(got.user_ids) == list(expected.user_ids)
    assert list(got.item_ids) == list(expected.item_ids)
    assert (got.matrix != expected.matrix).nnz == 0
    assert np.allclose(got.last_seen.toarray(), expected.last_seen.toarray())


def test_spark_reads_the_interactions_the_single_machine_path_builds(
    spark,  # noqa: ANN001
    database_url: str,
    community_store: Callable[[str], str],
) -> None:
    community_store(database_url)
    expected, last_row = single_machine(database_url)
    tables = {t: read_table(spark, database_url, t, list(c), 3) for t, c in EXPORTED.items()}
    data = store_interactions(spark, tables["events"], tables["users"], tables["items"], WEIGHTS)
    assert expected.matrix.nnz > 4000
    assert_same_interactions(expected, data.interactions)
    assert data.last_event_row == last_row
    assert data.pairs.count() == expected.matrix.nnz


def test_itemknn_similarity_equals_the_single_machine_one(spark, community) -> None:  # noqa: ANN001
    interactions, data = community
    n_items = interactions.n_items
    every = ItemKNNModel(k=n_items, shrink=10.0).fit(interactions).similarity_
    spark_every = fit_interactions_on_spark(spark, "itemknn", interactions, {"k": n_items})
    assert every.nnz > 10_000
    assert spark_every.similarity_.shape == every.shape
    assert np.allclose(spark_every.similarity_.toarray(), every.toarray(), atol=1e-6)
    # top 5: the same similarity values per item (which of equal ones is kept may differ)
    top = ItemKNNModel(k=5, shrink=10.0).fit(interactions).similarity_
    spark_top = fit_interactions_on_spark(spark, "itemknn", interactions, {"k": 5}).similarity_
    for row in range(n_items):
        a, b = top.getrow(row).data, spark_top.getrow(row).data
        assert np.allclose(np.sort(a), np.sort(b), atol=1e-6), row


@pytest.mark.parametrize("half_life_days", [7.0, 0.0])
def test_trending_scores_equal_the_single_machine_ones(spark, community, half_life_days) -> None:  # noqa: ANN001
    interactions, data = community
    params = {"half_life_days": half_life_days}
    expected = TrendingModel(**params).fit(interactions).item_scores_
    got = fit_interactions_on_spark(spark, "trending", interactions, params).item_scores_
    assert np.count_nonzero(expected) > 100
    assert np.allclose(got, expected, rtol=1e-9, atol=1e-12)


def test_als_is_fed_the_weights_implicit_is_fed(spark, community) -> None:  # noqa: ANN001
    interactions, data = community
    model = ALSModel(bm25_b=0.3)
    raw = model._raw(interactions.matrix)
    model._fit_weighting(raw)
    expected = model._weights(raw)
    rows = als_weights(data.pairs, model, interactions.n_users).toArrow()
    got = sp.csr_matrix(
        (
            rows.column("rating").to_numpy(),
            (rows.column("user").to_numpy(), rows.column("item").to_numpy()),
        ),
        shape=expected.shape,
    )
    assert got.nnz == expected.nnz
    assert np.allclose(got.toarray(), expected.toarray(), rtol=1e-5, atol=1e-6)


def test_spark_artefacts_load_and_recommend(spark, community, tmp_path: Path) -> None:  # noqa: ANN001
    interactions, data = community
    names = ["als", "itemknn", "trending"]
    steps: list[tuple[str, str]] = []
    results = train_on_spark(
        spark, data, names, tmp_path, params={"als": {"factors": 8, "iterations": 3}},
        on_step=lambda model, step, seconds: steps.append((model, step)),
    )  # fmt: skip
    assert [r.name for r in results] == names
    assert ("als", "holdout fit") in steps and ("trending", "save") in steps
    heavy = int(np.argmax(np.diff(interactions.matrix.indptr)))
    for result in results:
        loaded = load_artifact(result.path)
        assert list(loaded.user_ids) == list(interactions.user_ids)
        assert list(loaded.item_ids) == list(interactions.item_ids)
        assert loaded.meta["metrics"]["engine"] == "spark"
        assert loaded.meta["metrics"]["holdout_users"] > 100
        assert "holdout_ndcg@10" in loaded.meta["metrics"]
        history = interactions.matrix[heavy]
        items, scores = loaded.model.recommend(heavy, history, n=5)
        assert len(items) == 5 and not set(items) & set(history.indices)
    als = load_artifact(results[0].path).model
    assert als.user_factors_.shape == (interactions.n_users, 8)
    assert np.abs(als.item_factors_).sum() > 0


def test_models_spark_does_not_train_are_refused() -> None:
    check_spark_models(["als", "itemknn", "trending"])
    with pytest.raises(NotOnSpark, match="'ease' does not train on Spark"):
        check_spark_models(["als", "ease"])


def test_reg_param_matches_the_typical_user_and_item() -> None:
    # 100 interactions per user and 400 per item: the geometric mean is 200
    assert spark_reg_param(50.0, 40_000, 400, 100, scale=1.0) == pytest.approx(0.25)
    assert spark_reg_param(50.0, 40_000, 400, 100) == pytest.approx(0.25 * ALS_REG_SCALE)


def test_an_in_memory_split_becomes_the_same_pairs(spark) -> None:  # noqa: ANN001
    interactions = Interactions.from_triples(
        ["a", "a", "b"], ["x", "y", "y"], [1.0, 2.0, 3.0], [10.0, 20.0, 30.0],
        item_ids=["x", "y", "z"],
    )  # fmt: skip
    rows = sorted(tuple(r) for r in interactions_frame(spark, interactions).collect())
    assert rows == [(0, 0, 1.0, 10.0), (0, 1, 2.0, 20.0), (1, 1, 3.0, 30.0)]


def test_spark_als_reaches_implicits_factors(spark, community) -> None:  # noqa: ANN001
    interactions, _ = community
    params = {"factors": 8, "iterations": 3}
    expected = ALSModel(**params).fit(interactions)
    conf = expected._weights(expected._raw(interactions.matrix))
    conf.data = 1.0 + expected.alpha * conf.data
    reg = expected.regularization
    theirs = implicit_objective(conf, expected.user_factors_, expected.item_factors_, reg)
    cg = fit_interactions_on_spark(spark, "als", interactions, params)  # the default: cg
    assert np.allclose(cg.user_factors_, expected.user_factors_, atol=1e-4)
    assert np.allclose(cg.item_factors_, expected.item_factors_, atol=1e-4)
    assert implicit_objective(conf, cg.user_factors_, cg.item_factors_, reg) == pytest.approx(
        theirs, rel=1e-5
    )
    exact = fit_interactions_on_spark(spark, "als", interactions, params, als_solver="cholesky")
    ours = implicit_objective(conf, exact.user_factors_, exact.item_factors_, reg)
    assert ours <= theirs * (1 + 1e-3)  # exact half-steps: at least as low as 3 CG steps
    heavy = np.argsort(-np.diff(interactions.matrix.indptr))[:50]
    history = interactions.matrix[heavy]
    top = [model.recommend_batch(heavy, history, n=10)[0] for model in (expected, exact)]
    overlap = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(*top, strict=True)])
    assert overlap >= 0.8


def test_mllib_als_is_still_an_option(spark, community) -> None:  # noqa: ANN001
    interactions, _ = community
    params = {"factors": 4, "iterations": 2}
    model = fit_interactions_on_spark(spark, "als", interactions, params, als_solver="mllib")
    assert model.user_factors_.shape == (interactions.n_users, 4)
    assert np.abs(model.item_factors_).sum() > 0
    default = fit_interactions_on_spark(spark, "als", interactions, params)
    assert not np.allclose(model.item_factors_, default.item_factors_, atol=1e-3)
    with pytest.raises(ValueError, match="solver must be one of cg, cholesky, mllib"):
        fit_interactions_on_spark(spark, "als", interactions, params, als_solver="sgd")
