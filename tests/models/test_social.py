"""LightGCN and the social-attention graph model (agora.models.social)."""

import numpy as np
import pytest
import scipy.sparse as sp

from agora.features.interactions import Interactions, SideData
from agora.models.registry import create_model
from agora.models.social import LightGCNModel, SocialGCNModel

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
