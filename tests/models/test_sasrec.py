import time

import numpy as np
import pytest
import scipy.sparse as sp

from agora.features.interactions import Interactions
from agora.models.sasrec import SASRecModel, order_sequences

N_ITEMS = 12
FAST = {
    "hidden": 32,
    "layers": 1,
    "heads": 2,
    "dropout": 0.0,
    "max_len": 8,
    "learning_rate": 0.01,
    "batch_size": 64,
    "epochs": 30,
    "num_threads": 1,
    "verbose": False,
}


@pytest.fixture(scope="module")
def chains() -> Interactions:
    """Every user walks i -> i+1 (mod 12) from a random start, 4 to 8 steps, one per hour."""
    rng = np.random.default_rng(0)
    users, items, stamps = [], [], []
    for u in range(150):
        start, length = int(rng.integers(N_ITEMS)), int(rng.integers(4, 9))
        for step in range(length):
            users.append(f"u{u}")
            items.append(f"i{(start + step) % N_ITEMS}")
            stamps.append(1_700_000_000 + 3600.0 * step)
    ids = [f"i{i}" for i in range(N_ITEMS)]
    return Interactions.from_triples(users, items, timestamps=stamps, item_ids=ids)


@pytest.fixture(scope="module")
def model(chains) -> SASRecModel:
    return SASRecModel(**FAST).fit(chains)


def _row(items: list[int], times: list[float] | None = None) -> tuple[sp.csr_matrix, ...]:
    cols = np.asarray(items)
    hist = sp.csr_matrix((np.ones(len(cols)), ([0] * len(cols), cols)), shape=(1, N_ITEMS))
    if times is None:
        return hist, None
    t = sp.csr_matrix((np.asarray(times), ([0] * len(cols), cols)), shape=(1, N_ITEMS))
    return hist, t


def test_order_sequences_sorts_by_time_with_stable_ties():
    m = sp.csr_matrix(np.ones((2, 4)))
    t = sp.csr_matrix(np.array([[5.0, 1.0, 5.0, 3.0], [2.0, 2.0, 2.0, 1.0]]))
    indptr, items = order_sequences(m, t)
    assert indptr.tolist() == [0, 4, 8]
    assert items.tolist() == [1, 3, 0, 2, 3, 0, 1, 2]


def test_learns_the_next_item_of_a_planted_chain(model):
    for last in (3, 7, 11):
        hist, times = _row([last - 2, last - 1, last], [1.0, 2.0, 3.0])
        items, _ = model.recommend(-1, hist, n=1, times=times)
        assert items[0] == (last + 1) % N_ITEMS
    # the loss went down over training
    assert model.loss_curve_[-1] < 0.5 * model.loss_curve_[0]


def test_times_order_changes_the_answer(model):
    hist, early_5 = _row([3, 5], [2.0, 1.0])  # 5 then 3: next is 4
    _, early_3 = _row([3, 5], [1.0, 2.0])  # 3 then 5: next is 6
    assert model.recommend(-1, hist, n=1, times=early_5)[0][0] == 4
    assert model.recommend(-1, hist, n=1, times=early_3)[0][0] == 6


def test_a_new_event_changes_a_known_users_answer(model, chains):
    seq = model.sequences(np.array([0]), chains.matrix[[0]], chains.last_seen[[0]])[0]
    last = int(seq[-1])
    new = (last + 3) % N_ITEMS
    hist = chains.matrix[[0]].tolil()
    hist[0, new] = 1.0
    times = chains.last_seen[[0]].tolil()
    times[0, new] = 1_800_000_000.0
    before = model.recommend(0, chains.matrix[[0]], n=1, times=chains.last_seen[[0]])[0][0]
    after = model.recommend(0, hist.tocsr(), n=1, times=times.tocsr())[0][0]
    assert before == (last + 1) % N_ITEMS
    assert after == (new + 1) % N_ITEMS
    # without times the fitted sequence is used and the extra item appended
    assert model.sequences(np.array([0]), hist.tocsr())[0][-1] == new


def test_early_stopping_on_valid_keeps_the_best_epoch(chains):
    # valid = the true next item after each user's last one
    indptr, flat = order_sequences(chains.matrix, chains.last_seen)
    nxt = [(flat[indptr[u + 1] - 1] + 1) % N_ITEMS for u in range(chains.n_users)]
    valid = sp.csr_matrix(
        (np.ones(chains.n_users), (np.arange(chains.n_users), nxt)), shape=chains.shape
    )
    m = SASRecModel(**{**FAST, "epochs": 12, "patience": 2}).fit(chains, valid=valid)
    assert np.isfinite(m.valid_curve_).all()
    assert m.best_valid_ndcg_ == pytest.approx(np.nanmax(m.valid_curve_))
    assert m.best_valid_ndcg_ > 0.9


def test_save_load_round_trip_and_training_curve(model, chains, tmp_path):
    users = np.array([0, 5, -1])
    hist = chains.matrix[[0, 5, 9]]
    times = chains.last_seen[[0, 5, 9]]
    before = model.score(users, hist, times)
    model.save(tmp_path / "m")
    assert (tmp_path / "m" / "training_curve.png").stat().st_size > 1000
    assert not list((tmp_path / "m").glob("*.pkl"))
    loaded = SASRecModel.load(tmp_path / "m")
    assert loaded._net is None  # rebuilt lazily
    np.testing.assert_array_equal(before, loaded.score(users, hist, times))
    np.testing.assert_array_equal(model.score(users, hist), loaded.score(users, hist))
    i1, s1 = model.similar_items(2, 3)
    i2, s2 = loaded.similar_items(2, 3)
    np.testing.assert_array_equal(i1, i2)
    np.testing.assert_array_equal(s1, s2)


def test_empty_history_gets_popularity(model):
    empty = sp.csr_matrix((1, N_ITEMS))
    np.testing.assert_array_equal(model.score(np.array([-1]), empty)[0], model.popularity_)


def test_protocol_gives_sequential_models_train_plus_valid_with_times(tmp_path):
    from agora.evaluation.protocol import eval_history, evaluate
    from agora.evaluation.splits import load_split

    header = "user_id\titem_id\trating\ttimestamp\n"
    rows = {
        "train": [("u1", "a", 10), ("u1", "b", 20), ("u2", "b", 10), ("u2", "c", 30)],
        "valid": [("u1", "c", 30), ("u2", "a", 40)],
        "test": [("u1", "a", 50), ("u2", "d", 50)],
    }
    root = tmp_path / "split"
    root.mkdir()
    for name, part in rows.items():
        body = "".join(f"{u}\t{i}\t1\t{t}\n" for u, i, t in part)
        (root / f"{name}.tsv").write_text(header + body)
    split = load_split(root)
    assert split.valid_times is not None and split.test_times is not None
    hist, times = eval_history(split, sequential=False)
    assert times is None and (hist != split.train.matrix).nnz == 0
    hist, times = eval_history(split, sequential=True)
    _, order = order_sequences(hist, times)
    assert split.item_ids[order].tolist() == ["a", "b", "c", "b", "c", "a"]
    params = {**FAST, "epochs": 2, "max_len": 4}
    result = evaluate(root, "sasrec", params, out_dir=tmp_path / "out", progress=False)
    assert result["n_test_users"] == 2 and result["peak_rss_mb"] > 0
    assert (tmp_path / "out" / "recommendations.tsv").is_file()


def test_train_models_from_the_store_path_without_valid(chains, tmp_path):
    from agora.features.interactions import SideData
    from agora.models.artifacts import load_latest
    from agora.models.training import train_models

    params = {"sasrec": {**FAST, "epochs": 5}}
    [trained] = train_models(chains, SideData(), ["sasrec"], tmp_path, params=params)
    assert "holdout_ndcg@10" in trained.metrics
    assert (trained.path / "training_curve.png").is_file()
    loaded = load_latest(tmp_path, "sasrec")
    assert isinstance(loaded.model, SASRecModel) and len(loaded.model.loss_curve_) == 5
    hist, times = _row([4, 5], [1.0, 2.0])
    items, _ = loaded.model.recommend(-1, hist, n=3, times=times)
    assert len(items) == 3 and not set(items) & {4, 5}


def test_epoch_cost_foretells_the_fit_time_and_leaves_the_model_unfitted(chains):
    params = {**FAST, "batch_size": 2, "epochs": 3}
    cost = SASRecModel(**params).epoch_cost(chains, seconds=0.3)
    assert cost.trainings == 1 and cost.valid_seconds < 0.05  # no valid: nothing scored
    started = time.perf_counter()
    fitted = SASRecModel(**params).fit(chains)
    took = time.perf_counter() - started
    assert len(fitted.loss_curve_) == 3
    assert cost.seconds(3) / 2 < took < cost.seconds(3) * 2
    probed = SASRecModel(**params)
    probed.epoch_cost(chains, seconds=0.1)
    with pytest.raises(RuntimeError, match="not fitted"):
        probed.score(np.array([0]), chains.matrix[[0]])
