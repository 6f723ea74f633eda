"""The numpy half-step of the Spark ALS: exact where it should be, ``implicit``'s CG where it
mirrors it, and the objective both engines minimise."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from agora.features.interactions import Interactions
from agora.models.als_blocks import (
    implicit_objective,
    initial_factors,
    regularised_gram,
    solve_rows,
)
from agora.models.implicit_mf import ALSModel, fold_in_users


def random_interactions(users: int = 300, items: int = 200, seed: int = 7) -> Interactions:
    rng = np.random.default_rng(seed)
    matrix = sp.random(users, items, density=0.05, random_state=rng, format="csr")
    matrix.data = rng.integers(1, 4, matrix.nnz).astype(np.float32)
    return Interactions(
        sp.csr_matrix(matrix, dtype=np.float32),
        np.array([f"u{i}" for i in range(users)], dtype=object),
        np.array([f"i{i}" for i in range(items)], dtype=object),
    )


def confidences(model: ALSModel, interactions: Interactions) -> sp.csr_matrix:
    """``1 + alpha * w`` on the observed entries, as ALSModel hands it to implicit."""
    raw = model._raw(interactions.matrix)
    model._fit_weighting(raw)
    conf = model._weights(raw)
    conf.data = 1.0 + model.alpha * conf.data
    conf.sort_indices()
    return conf


def test_the_exact_solve_is_the_fold_in_closed_form() -> None:
    model = ALSModel(factors=6, regularization=5.0, alpha=2.0)
    conf = confidences(model, random_interactions())
    items = np.random.default_rng(1).normal(size=(conf.shape[1], 6)).astype(np.float32)
    gram = regularised_gram(items, 5.0)
    got = solve_rows(conf.indptr, conf.indices, conf.data, items, gram, None, "cholesky")
    weights = conf.copy()
    weights.data = (weights.data - 1.0) / 2.0
    expected = fold_in_users(items, weights, alpha=2.0, reg=5.0)
    assert np.allclose(got, expected, atol=1e-5)
    # CG with as many steps as factors reaches the same solution from any start
    start = np.zeros((conf.shape[0], 6), dtype=np.float32)
    cg = solve_rows(conf.indptr, conf.indices, conf.data, items, gram, start, "cg", cg_steps=12)
    assert np.allclose(cg, expected, atol=1e-4)


def test_cg_half_steps_reproduce_implicit_als() -> None:
    interactions = random_interactions()
    model = ALSModel(factors=8, iterations=4, regularization=2.0).fit(interactions)
    conf = confidences(model, interactions)
    by_item = conf.T.tocsr()
    users, items = initial_factors(*conf.shape, 8, model.random_state)
    for _ in range(model.iterations):
        gram = regularised_gram(items, 2.0)
        users = solve_rows(conf.indptr, conf.indices, conf.data, items, gram, users)
        gram = regularised_gram(users, 2.0)
        items = solve_rows(by_item.indptr, by_item.indices, by_item.data, users, gram, items)
    assert np.allclose(users, model.user_factors_, atol=1e-4)
    assert np.allclose(items, model.item_factors_, atol=1e-4)
    ours = implicit_objective(conf, users, items, 2.0)
    theirs = implicit_objective(conf, model.user_factors_, model.item_factors_, 2.0)
    assert ours == pytest.approx(theirs, rel=1e-5)


def test_the_objective_is_the_dense_one() -> None:
    rng = np.random.default_rng(3)
    conf = sp.random(20, 15, density=0.3, random_state=rng, format="csr")
    conf.data = 1.0 + conf.data
    x, y = rng.normal(size=(20, 4)), rng.normal(size=(15, 4))
    c = np.ones((20, 15))
    p = np.zeros((20, 15))
    rows, cols = conf.nonzero()
    c[rows, cols] = np.asarray(conf[rows, cols]).ravel()
    p[rows, cols] = 1.0
    dense = float((c * (p - x @ y.T) ** 2).sum() + 0.5 * ((x**2).sum() + (y**2).sum()))
    assert implicit_objective(conf, x, y, 0.5) == pytest.approx(dense, rel=1e-12)


def test_an_unknown_solver_is_refused() -> None:
    none = np.zeros(1, dtype=np.int64)
    with pytest.raises(ValueError, match="solver must be one of cg, cholesky"):
        solve_rows(none, none[:0], np.zeros(0), np.zeros((2, 2)), np.eye(2), None, "lu")
