"""LightGCN and the social-attention graph model (agora.models.social)."""

import time

import numpy as np
import pytest
import scipy.sparse as sp

from agora.features.interactions import Interactions, SideData
from agora.models.registry import create_model
from agora.models.social import SOCIAL_WEIGHTS, LightGCNModel, SocialGCNModel

pytest.importorskip("torch")

FAST = {
    "factors": 16,
    "layers": 2,
    "epochs": 30,
    "batch_size": 32,
    "learning_rate": 0.05,
    "reg": 1e-4,
    "num_threads": 1,
    "progress": False,
}


def planted(t_items: tuple[str, ...] = ()) -> tuple[Interactions, SideData]:
    """Friends f0..f5 (friends of each other and of t) all like x; t shares no item with them
    (by default t has no training item at all, optionally ``t_items``): only the friends
    reveal x. Other users like p and q (popular) or y with a different w_k each; filler users
    on 120 filler items make x a rare sampled negative."""
    rng = np.random.default_rng(0)
    pairs = [(f"o{k}", f"n{j}") for k in range(40) for j in rng.choice(120, 3, replace=False)]
    for k in range(8):
        pairs += [(f"a{k}", "p"), (f"a{k}", "q")]
    for k in range(4):
        pairs += [(f"b{k}", "y"), (f"b{k}", f"w{k}")]
    for k in range(6):
        pairs += [(f"f{k}", "x"), (f"f{k}", f"z{k}")]
    pairs += [("t", item) for item in t_items]
    users, items = zip(*pairs, strict=True)
    user_ids = sorted(set(users) | {"t"})
    inter = Interactions.from_triples(list(users), list(items), user_ids=user_ids)
    group = ["t"] + [f"f{k}" for k in range(6)]
    rows, cols = [], []
    for a in group:
        for b in group:
            if a != b:
                rows.append(inter.user_index(a))
                cols.append(inter.user_index(b))
    n = inter.n_users
    social = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(n, n))
    return inter, SideData(social=social)


def top1(model, inter, user):
    u = inter.user_index(user)
    items, _ = model.recommend(u, inter.matrix[[u]], n=1)
    return inter.item_ids[items[0]]


def test_friends_reveal_the_planted_item():
    inter, side = planted()
    with_social = SocialGCNModel(**FAST).fit(inter, side)
    without = SocialGCNModel(**FAST).fit(inter)
    assert top1(with_social, inter, "t") == "x"
    assert top1(without, inter, "t") != "x"
    t = inter.user_index("t")
    assert with_social.gate_[t] > 0 and without.gate_[t] == 0
    # the friends' attention rows are distributions
    alpha = with_social.social_alpha_
    src = with_social.social_src_
    sums = np.zeros((alpha.shape[0], inter.n_users))
    for layer in range(alpha.shape[0]):
        np.add.at(sums[layer], src, alpha[layer])
    assert np.allclose(sums[:, np.unique(src)], 1.0, atol=1e-5)


def test_without_social_edges_it_is_exactly_lightgcn():
    inter, _ = planted()
    fast = {**FAST, "epochs": 5}
    a = SocialGCNModel(**fast, random_state=3).fit(inter)
    b = LightGCNModel(**fast, random_state=3).fit(inter)
    np.testing.assert_array_equal(a.user_embeddings_, b.user_embeddings_)
    np.testing.assert_array_equal(a.item_embeddings_, b.item_embeddings_)
    # lightgcn ignores social edges even when given
    _, side = planted()
    c = LightGCNModel(**fast, random_state=3).fit(inter, side)
    np.testing.assert_array_equal(c.item_embeddings_, b.item_embeddings_)


@pytest.mark.parametrize("loss", ["bpr", "softmax"])
def test_fold_in_reproduces_fitted_users_and_reacts_to_new_events(loss):
    inter, side = planted()
    model = SocialGCNModel(**{**FAST, "loss": loss, "negatives": 8, "epochs": 8}).fit(inter, side)
    if loss == "softmax":  # trained on cosines: items are scored unit-normalised
        norms = np.linalg.norm(model.item_embeddings_, axis=1)
        np.testing.assert_allclose(norms, 1.0, rtol=1e-5)
    for user in ("t", "f0", "a1", "b1"):
        u = inter.user_index(user)
        folded = model._fold_in(u, inter.matrix[[u]].tocsr())
        np.testing.assert_allclose(folded, model.user_embeddings_[u], atol=1e-5)
    t = inter.user_index("t")
    before = model.score(np.array([t]), inter.matrix[[t]])
    changed = inter.matrix[[t]].tolil()
    changed[0, inter.item_index("q")] = 1.0
    after = model.score(np.array([t]), changed.tocsr())
    assert not np.allclose(before, after)
    # an unknown user with a history gets finite scores
    unknown = model.score(np.array([-1]), changed.tocsr())
    assert np.all(np.isfinite(unknown)) and np.any(unknown != 0)


def test_early_stopping_keeps_the_best_epoch_and_saves_a_curve(tmp_path):
    inter, side = planted()
    valid = sp.lil_matrix(inter.shape, dtype=np.float32)
    valid[inter.user_index("t"), inter.item_index("x")] = 1.0
    valid[inter.user_index("b0"), inter.item_index("q")] = 1.0
    params = {**FAST, "epochs": 20, "eval_every": 1, "patience": 5}
    model = SocialGCNModel(**params).fit(inter, side, valid=valid.tocsr())
    assert 1 <= model.best_epoch_ <= len(model.curve_loss_) <= 20
    assert model.best_valid_ == pytest.approx(np.nanmax(model.curve_valid_))
    assert np.isfinite(model.curve_valid_).sum() == len(model.curve_loss_)
    described = model.describe()
    assert described["best_epoch"] == model.best_epoch_
    assert described["valid_ndcg@10"] == pytest.approx(model.best_valid_, abs=1e-4)
    model.save(tmp_path / "m")
    png = tmp_path / "m" / "training_curve.png"
    assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    loaded = SocialGCNModel.load(tmp_path / "m")
    users = np.array([inter.user_index("t"), -1, 0])
    hist = inter.matrix[[inter.user_index("t"), 3, 0]]
    np.testing.assert_array_equal(model.score(users, hist), loaded.score(users, hist))
    np.testing.assert_array_equal(model.similar_items(0, 3)[0], loaded.similar_items(0, 3)[0])
    assert loaded.best_epoch_ == model.best_epoch_
    assert not list((tmp_path / "m").glob("*.pkl"))


def test_registered_and_bad_loss_rejected():
    assert isinstance(create_model("social"), SocialGCNModel)
    assert isinstance(create_model("lightgcn"), LightGCNModel)
    inter, _ = planted()
    with pytest.raises(ValueError, match="loss"):
        LightGCNModel(loss="hinge").fit(inter)


def planted_valid(inter: Interactions) -> sp.csr_matrix:
    """Valid items: t's is x (only t's friends reveal it), b0's is q (popular)."""
    valid = sp.lil_matrix(inter.shape, dtype=np.float32)
    valid[inter.user_index("t"), inter.item_index("x")] = 1.0
    valid[inter.user_index("b0"), inter.item_index("q")] = 1.0
    return valid.tocsr()


def test_auto_weight_keeps_the_valid_best_of_those_tried():
    inter, side = planted()
    params = {**FAST, "epochs": 12, "eval_every": 3}
    model = SocialGCNModel(**params).fit(inter, side, valid=planted_valid(inter))
    trials = model.describe()["social_weights_tried"]
    assert [t["weight"] for t in trials] == list(SOCIAL_WEIGHTS)
    best = max(trials, key=lambda t: t["valid_ndcg@10"])
    assert model.social_weight_ == best["weight"] == model.describe()["social_weight"]
    assert model.best_valid_ == pytest.approx(best["valid_ndcg@10"], abs=1e-6)
    # t's valid item is only reachable through the friends: a weight above 0 wins
    assert model.social_weight_ > 0 and top1(model, inter, "t") == "x"
    assert {t["stopped"] for t in trials} <= {"patience", "behind", "time", "epochs"}
    # weight 0 alone, given the same valid, is lightgcn: the same valid NDCG as its trial
    light = LightGCNModel(**params).fit(inter, side, valid=planted_valid(inter))
    assert light.best_valid_ == pytest.approx(trials[0]["valid_ndcg@10"], abs=1e-6)
    again = SocialGCNModel(**model.refit_params()).fit(inter, side)
    assert again.social_weight_ == model.social_weight_
    assert len(again.curve_loss_) == model.best_epoch_


def test_without_social_edges_auto_is_weight_0_and_lightgcn():
    inter, _ = planted()
    valid = planted_valid(inter)
    fast = {**FAST, "epochs": 6, "eval_every": 2, "random_state": 5}
    a = SocialGCNModel(**fast).fit(inter, SideData(), valid=valid)
    b = LightGCNModel(**fast).fit(inter, valid=valid)
    assert a.social_weight_ == 0.0 and len(a.social_trials_) == 1
    np.testing.assert_array_equal(a.user_embeddings_, b.user_embeddings_)
    np.testing.assert_array_equal(a.item_embeddings_, b.item_embeddings_)
    # weight 0 with friends present trains without them too
    _, side = planted()
    c = SocialGCNModel(**{**fast, "social_weight": 0.0}).fit(inter, side, valid=valid)
    np.testing.assert_array_equal(c.item_embeddings_, b.item_embeddings_)
    assert not c.gate_.any()


def test_auto_weights_share_the_time_limit_and_each_is_scored():
    inter, side = planted()
    params = {**FAST, "epochs": 500, "eval_every": 1000, "max_seconds": 3.0}
    model = SocialGCNModel(**params).fit(inter, side, valid=planted_valid(inter))
    assert len(model.social_trials_) == len(SOCIAL_WEIGHTS)
    assert model.fit_seconds_ <= 3.0 + 0.5
    for trial in model.social_trials_:  # each got about a third, none ran all its epochs
        assert trial["stopped"] == "time" and trial["epochs_run"] < 500
        # the epoch time stopped at is scored on valid, though eval_every never came
        assert trial["valid_ndcg@10"] >= 0 and trial["best_epoch"] == trial["epochs_run"]
    assert model.social_weight_ > 0


def test_epoch_cost_foretells_the_fit_time_and_counts_the_friends_weights():
    """The probe times a few mini-batches; scaled to whole epochs it says what the fit takes
    (within a factor 2), and ``social`` with valid and friends counts one training per
    weight it will try."""
    inter, side = planted()
    params = {**FAST, "batch_size": 4, "eval_every": 1, "epochs": 4, "patience": 10}
    valid = inter.matrix.copy()
    cost = LightGCNModel(**params).epoch_cost(inter, side, valid, seconds=0.3)
    assert cost.trainings == 1 and cost.eval_every == 1 and cost.valid_seconds > 0
    started = time.perf_counter()
    fitted = LightGCNModel(**params).fit(inter, side, valid)
    took = time.perf_counter() - started
    assert fitted.describe()["epochs_run"] == 4
    assert cost.seconds(4) / 2 < took < cost.seconds(4) * 2
    assert cost.epochs(cost.seconds(4)) == pytest.approx(4)
    social = SocialGCNModel(**params).epoch_cost(inter, side, valid, seconds=0.3)
    assert social.trainings == len(SOCIAL_WEIGHTS)
    assert SocialGCNModel(**params).epoch_cost(inter, None, valid, seconds=0.3).trainings == 1
    assert SocialGCNModel(**params).epoch_cost(inter, side, None, seconds=0.3).trainings == 1
