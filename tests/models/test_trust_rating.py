"""Rating prediction with a trust graph (agora.models.trust_rating)."""

import numpy as np
import pytest
import scipy.sparse as sp

from agora.models.trust_rating import TrustMF, rmse_mae

pytest.importorskip("torch")


def planted():
    """Users 0-19 love items 0-4 and hate 5-9, users 20-39 the opposite. User 40 rated only
    the neutral item 10 and trusts users 0-4: only the trust says which side they are on."""
    rng = np.random.default_rng(0)
    users, items, ratings = [], [], []
    for u in range(40):
        love = range(5) if u < 20 else range(5, 10)
        for i in rng.choice(10, 7, replace=False):
            users.append(u)
            items.append(i)
            ratings.append(5.0 if i in love else 1.0)
        users.append(u)
        items.append(10)
        ratings.append(3.0)
    users.append(40)
    items.append(10)
    ratings.append(3.0)
    n = 41
    trust = sp.csr_matrix((np.ones(5, np.float32), ([40] * 5, range(5))), shape=(n, n))
    return n, 11, np.array(users), np.array(items), np.array(ratings, np.float32), trust


PARAMS = {"factors": 4, "epochs": 100, "batch_size": 128, "learning_rate": 0.03, "reg": 0.01}


def test_trust_reveals_the_side_of_a_user_with_no_telling_ratings():
    n_users, n_items, u, i, r, trust = planted()
    with_trust = TrustMF(**PARAMS, trust_reg=0.5).fit(n_users, n_items, u, i, r, trust=trust)
    without = TrustMF(**PARAMS, trust_reg=0.5).fit(n_users, n_items, u, i, r)
    t = np.full(10, 40)

    def gap(m):
        return m.predict(t[:5], np.arange(5)).mean() - m.predict(t[5:], np.arange(5, 10)).mean()

    assert gap(with_trust) > 1.0
    assert abs(gap(without)) < 0.5
    # the training ratings are fitted and predictions stay in range
    pred = with_trust.predict(u, i)
    assert rmse_mae(pred, r)[0] < 0.5
    assert pred.min() >= 1.0 and pred.max() <= 5.0


def test_valid_early_stopping_keeps_the_best_epoch():
    n_users, n_items, u, i, r, trust = planted()
    valid = (u[:20], i[:20], r[:20])
    model = TrustMF(**{**PARAMS, "epochs": 10}, patience=3).fit(
        n_users, n_items, u, i, r, trust=trust, valid=valid
    )
    assert model.best_valid_rmse_ == pytest.approx(min(model.curve_valid_rmse_))
    assert model.best_epoch_ == int(np.argmin(model.curve_valid_rmse_)) + 1


def test_rmse_mae_by_hand():
    assert rmse_mae(np.array([1.0, 3.0]), np.array([2.0, 3.0])) == (
        pytest.approx(np.sqrt(0.5)),
        0.5,
    )
