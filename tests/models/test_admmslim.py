"""ADMM-SLIM: planted co-consumption, the constrained optimum, sparsity, save/load."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.optimize import nnls

from agora.features.interactions import Interactions, SideData
from agora.models.admmslim import ADMMSLIMModel
from agora.models.registry import create_model, model_class


def _top1(model: ADMMSLIMModel, inter: Interactions, history: sp.csr_matrix) -> str:
    items, _ = model.recommend(-1, history, n=1)
    return str(inter.item_ids[items[0]])


def test_recommends_the_co_consumed_item(tiny: Interactions, history) -> None:  # noqa: ANN001
    model = ADMMSLIMModel(lambda1=0.1, lambda2=1.0, rho=10.0, iterations=200).fit(tiny)
    assert _top1(model, tiny, history(tiny, ["a"])) == "b"
    assert _top1(model, tiny, history(tiny, ["d"])) == "c"
    items, weights = model.similar_items(tiny.item_index("a"), n=3)
    assert tiny.item_ids[items[0]] == "b" and weights[0] > 0
    # the cold item f has no weights and scores 0
    f = tiny.item_index("f")
    assert model.weights_[f].nnz == 0 and model.weights_[:, f].nnz == 0
    assert model.score(np.array([0]), tiny.matrix[[0]])[0, f] == 0.0
    assert create_model("admmslim").name == model_class("admmslim").name == "admmslim"


def test_converges_to_the_non_negative_ridge_solution(
    random_data: tuple[Interactions, SideData],
) -> None:
    """With lambda1 = 0 every column of C solves min ||x_j - X c||^2 + sum_i d_i c_i^2
    over c >= 0 with c_j = 0 (d_i = lambda2 * pop_i^alpha): checked against scipy's NNLS."""
    inter, _ = random_data
    model = ADMMSLIMModel(lambda1=0.0, lambda2=20.0, alpha=0.5, rho=20.0, iterations=1500)
    c = model.fit(inter).weights_.toarray()
    x = (inter.matrix.toarray() > 0).astype(np.float64)
    d = 20.0 * np.sqrt(x.mean(axis=0))
    for j in range(x.shape[1]):
        keep = np.arange(x.shape[1]) != j
        a = np.vstack([x[:, keep], np.diag(np.sqrt(d[keep]))])
        y = np.concatenate([x[:, j], np.zeros(keep.sum())])
        expected = np.zeros(x.shape[1])
        expected[keep] = nnls(a, y)[0]
        np.testing.assert_allclose(c[:, j], expected, atol=2e-3)
    assert np.all(c >= 0) and np.all(np.diag(c) == 0)


def test_l1_makes_the_weights_sparser(random_data: tuple[Interactions, SideData]) -> None:
    inter, _ = random_data
    nnz = [
        ADMMSLIMModel(lambda1=l1, lambda2=5.0, rho=20.0, iterations=200).fit(inter).weights_.nnz
        for l1 in (0.0, 0.5, 2.0)
    ]
    assert nnz[0] > nnz[1] > nnz[2] > 0


def test_save_load_round_trip(random_data: tuple[Interactions, SideData], tmp_path) -> None:  # noqa: ANN001
    inter, _ = random_data
    model = ADMMSLIMModel(lambda1=0.5, lambda2=5.0, rho=20.0, iterations=50).fit(inter)
    hist = inter.matrix[[0, 3, 5]]
    before = model.score(np.array([0, 3, -1]), hist)
    model.save(tmp_path / "m")
    loaded = ADMMSLIMModel.load(tmp_path / "m")
    assert loaded.get_params() == model.get_params()
    np.testing.assert_array_equal(loaded.score(np.array([0, 3, -1]), hist), before)
    assert sp.issparse(loaded.weights_)
    assert not list((tmp_path / "m").glob("*.pkl"))
