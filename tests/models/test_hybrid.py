"""The learned hybrid: weights favour the member that is right, per history bucket."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pytest
import scipy.sparse as sp

from agora.features.interactions import Interactions, hold_out_one
from agora.models.base import Recommender
from agora.models.hybrid import HybridModel, ndcg_per_user, simplex_grid
from agora.models.registry import MODELS, create_model


class _Fixed(Recommender):
    """Scores from a fixed per-item vector (no learning)."""

    name: ClassVar[str] = "fixed"

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def item_scores(self, n_items: int) -> np.ndarray:
        raise NotImplementedError

    def fit(self, interactions, side=None, valid=None):  # noqa: ANN001, ANN201
        self.n_items_ = int(interactions.n_items)
        return self

    def score(self, users, history, times=None):  # noqa: ANN001, ANN201
        rows = history.shape[0]
        return np.tile(self.item_scores(self.n_items_), (rows, 1)).astype(np.float32)

    def similar_items(self, item, n=10):  # noqa: ANN001, ANN201
        raise NotImplementedError


class NoiseModel(_Fixed):
    name: ClassVar[str] = "noise"

    def score(self, users, history, times=None):  # noqa: ANN001, ANN201
        rng = np.random.default_rng(self.seed + int(np.sum(np.asarray(users))))
        return rng.random((history.shape[0], self.n_items_)).astype(np.float32)


class LowFirst(_Fixed):
    name: ClassVar[str] = "lowfirst"

    def item_scores(self, n_items: int) -> np.ndarray:
        return -np.arange(n_items, dtype=np.float64)


class HighFirst(_Fixed):
    name: ClassVar[str] = "highfirst"

    def item_scores(self, n_items: int) -> np.ndarray:
        return np.arange(n_items, dtype=np.float64)


@pytest.fixture(autouse=True)
def fake_models(monkeypatch: pytest.MonkeyPatch) -> None:
    for cls in (NoiseModel, LowFirst, HighFirst):
        monkeypatch.setitem(MODELS, cls.name, cls)


def clustered(seed: int = 0, n_users: int = 300, n_items: int = 60, n_clusters: int = 6):
    """Users like the items of their own cluster: train and valid drawn from it."""
    rng = np.random.default_rng(seed)
    size = n_items // n_clusters
    train, valid = [], []
    for u in range(n_users):
        c = u % n_clusters
        items = rng.permutation(np.arange(c * size, (c + 1) * size))
        train += [(u, i) for i in items[:6]]
        valid += [(u, i) for i in items[6:8]]
    return _matrices(train, valid, n_users, n_items)


def _matrices(train, valid, n_users, n_items):  # noqa: ANN001, ANN202
    def csr(pairs):  # noqa: ANN001, ANN202
        r, c = zip(*pairs, strict=True)
        return sp.csr_matrix((np.ones(len(r), np.float32), (r, c)), shape=(n_users, n_items))

    x = csr(train)
    inter = Interactions(x, np.array([f"u{u}" for u in range(n_users)], dtype=object),
                         np.array([f"i{i}" for i in range(n_items)], dtype=object))  # fmt: skip
    return inter, csr(valid)


def test_weights_favour_the_member_that_knows_the_answer() -> None:
    inter, valid = clustered()
    model = HybridModel(members={"noise": {}, "itemknn": {}}, history_buckets=1, step=0.1)
    model.fit(inter, valid=valid)
    w = dict(zip(model.members, model.weights_[0], strict=True))
    assert w["itemknn"] >= 0.8 > w["noise"]
    assert model.member_valid_ndcg_[1] > 2 * model.member_valid_ndcg_[0]
    assert model.valid_ndcg_ >= model.member_valid_ndcg_.max() - 1e-12
    assert model.weights_source_ == "valid"
    # score() is the fused, recommend ranks with it
    items, _ = model.recommend_batch(np.arange(6), inter.matrix[:6], 2)
    size = 10
    for u, recs in enumerate(items):
        assert all(i // size == u % 6 for i in recs)


def test_weights_depend_on_history_length() -> None:
    """Short histories: valid items are low ids; long histories: high ids."""
    n_items, train, valid = 100, [], []
    for u in range(200):
        long = u % 2 == 1
        hist = range(40, 40 + (20 if long else 3))
        train += [(u, i) for i in hist]
        valid += [(u, i) for i in ((97, 98, 99) if long else (0, 1, 2))]
    inter, valid_m = _matrices(train, valid, 200, n_items)
    model = HybridModel(
        members={"lowfirst": {}, "highfirst": {}}, history_buckets=2, min_bucket_users=20
    )
    model.fit(inter, valid=valid_m)
    assert len(model.weights_) == 2
    assert model.weights_[0, 0] > model.weights_[1, 0]  # short: mostly "lowfirst"
    assert model.weights_[1, 1] == 1.0  # long: "highfirst" only
    assert model.valid_ndcg_ == pytest.approx(1.0)
    assert model.member_valid_ndcg_.max() == pytest.approx(0.5)
    # a new short history takes the short-history weights
    short = sp.csr_matrix(([1.0], ([0], [50])), shape=(1, n_items))
    assert model.recommend(-1, short, n=1)[0][0] == 0
    desc = model.describe()
    assert [b["weights"]["highfirst"] for b in desc["buckets"]][1] == 1.0


def test_save_load_round_trip_gives_identical_scores(tmp_path) -> None:  # noqa: ANN001
    inter, valid = clustered(seed=1, n_users=120)
    params = {"ease": {"reg": 10.0}, "als": {"factors": 8, "iterations": 3}, "itemknn": {}}
    model = create_model("hybrid", members=params, step=0.25).fit(inter, valid=valid)
    model.save(tmp_path / "h")
    assert (tmp_path / "h" / "members" / "1-als" / "model.json").is_file()
    loaded = MODELS["hybrid"].load(tmp_path / "h")
    users = np.array([0, 5, -1])
    hist = inter.matrix[[0, 5, 7]]
    np.testing.assert_array_equal(loaded.score(users, hist), model.score(users, hist))
    np.testing.assert_array_equal(loaded.weights_, model.weights_)
    a, b = model.similar_items(3, 5), loaded.similar_items(3, 5)
    np.testing.assert_array_equal(a[0], b[0])


def test_without_valid_uses_an_internal_holdout_and_refits_on_all() -> None:
    inter, _ = clustered(seed=2, n_users=120)
    model = HybridModel(members={"noise": {}, "itemknn": {}}, history_buckets=1)
    model.fit(inter)
    assert model.weights_source_ == "holdout"
    assert model.weights_[0, 1] > model.weights_[0, 0]
    knn = model._models[1]
    np.testing.assert_array_equal(
        knn.similarity_.toarray(), create_model("itemknn").fit(inter).similarity_.toarray()
    )


def test_similar_items_from_first_member_that_has_it() -> None:
    inter, valid = clustered(seed=3, n_users=60)
    model = HybridModel(members={"noise": {}, "itemknn": {}}, history_buckets=1).fit(
        inter, valid=valid
    )
    items, _ = model.similar_items(0, 3)
    assert all(i // 10 == 0 for i in items)


def test_helpers() -> None:
    assert len(simplex_grid(3, 0.1)) == 66
    np.testing.assert_allclose(simplex_grid(2, 0.5).sum(axis=1), 1.0)
    x = sp.csr_matrix(np.array([[1, 1, 1, 0], [1, 1, 0, 0]], dtype=np.float32))
    rest, held = hold_out_one(Interactions(x, ["a", "b"], ["i", "j", "k", "l"]), seed=0)
    train = rest.matrix
    assert held.nnz == 1 and train.nnz == 4 and (train + held - x).nnz == 0
    fused = np.array([[0.0, 3.0, 2.0, 1.0]])
    truth = sp.csr_matrix(np.array([[0, 0, 0, 1]], dtype=np.float32))
    hist = sp.csr_matrix(np.array([[0, 1, 0, 0]], dtype=np.float32))
    # item 1 masked: ranking 2, 3, 0 -> hit at rank 2
    assert ndcg_per_user(fused, hist, truth, 10)[0] == pytest.approx(1 / np.log2(3))
    with pytest.raises(ValueError, match="unknown model"):
        HybridModel(members={"nope": {}})


def test_train_models_saves_a_hybrid_artifact_that_loads(tmp_path) -> None:  # noqa: ANN001
    """`agora train --models hybrid` path: no valid, internal holdout, artefact round trip."""
    from agora.models.artifacts import load_artifact
    from agora.models.training import train_models

    inter, _ = clustered(seed=4, n_users=90)
    params = {"hybrid": {"members": {"itemknn": {}, "ease": {"reg": 10.0}}, "step": 0.25}}
    (result,) = train_models(inter, None, ["hybrid"], tmp_path, params=params)
    assert "holdout_ndcg@10" in result.metrics
    loaded = load_artifact(result.path)
    assert loaded.model.weights_source_ == "holdout"
    assert loaded.model.describe()["members"] == ["itemknn", "ease"]
    hist = inter.matrix[[1, 2]]
    assert np.all(np.isfinite(loaded.model.score(np.array([1, 2]), hist)))


def test_ease_dropout_is_edlae() -> None:
    """EDLAE = EASE with ridge reg + p/(1-p) * G_ii; p = 0 is plain EASE."""
    inter, _ = clustered(seed=5, n_users=60)
    plain = create_model("ease", reg=10.0).fit(inter)
    same = create_model("ease", reg=10.0, dropout=0.0).fit(inter)
    np.testing.assert_array_equal(plain.weights_, same.weights_)
    x = inter.matrix.toarray().astype(np.float64)
    g = x.T @ x
    p = 0.25
    inv = np.linalg.inv(g + np.diag(10.0 + p / (1 - p) * np.diag(g)))
    expected = -inv / np.diag(inv)[None, :]
    np.fill_diagonal(expected, 0.0)
    edlae = create_model("ease", reg=10.0, dropout=p).fit(inter)
    np.testing.assert_allclose(edlae.weights_, expected, atol=1e-5)
    with pytest.raises(ValueError, match="dropout"):
        create_model("ease", dropout=1.0).fit(inter)


class TimesSeen(_Fixed):
    """Records the ``times`` it is scored with; ``sequential`` like SASRec."""

    name: ClassVar[str] = "timesseen"
    sequential: ClassVar[bool] = True
    seen: ClassVar[list] = []

    def item_scores(self, n_items: int) -> np.ndarray:
        return np.zeros(n_items)

    def score(self, users, history, times=None):  # noqa: ANN001, ANN201
        TimesSeen.seen.append(times)
        return super().score(users, history, times)


def test_event_times_reach_sequential_members(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(MODELS, "timesseen", TimesSeen)
    inter, valid = clustered(seed=6, n_users=60)
    inter.last_seen = sp.csr_matrix(inter.matrix * 1.7e9)
    model = HybridModel(members={"timesseen": {}, "itemknn": {}}, history_buckets=1)
    assert model.sequential  # a sequential member makes the blend ask for event order
    TimesSeen.seen.clear()
    model.fit(inter, valid=valid)
    assert TimesSeen.seen and all(t is not None and t.nnz for t in TimesSeen.seen)
    model.weights_ = np.array([[0.5, 0.5]])
    model.score(np.array([0]), inter.matrix[[0]], inter.last_seen[[0]])
    assert TimesSeen.seen[-1].nnz == inter.matrix[[0]].nnz
