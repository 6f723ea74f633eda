import json
from datetime import UTC, datetime

import numpy as np
import pytest

from agora.models.artifacts import (
    list_artifacts,
    load_artifact,
    load_latest,
    prune_artifacts,
    save_artifact,
)
from agora.models.ease import EASEModel
from agora.models.itemknn import ItemKNNModel


def test_save_and_load_latest(tiny, tmp_path):
    t1 = datetime(2026, 11, 23, 16, 15, 2, tzinfo=UTC)
    t2 = datetime(2026, 11, 24, 9, 0, 0, tzinfo=UTC)
    old = EASEModel(reg=1.0).fit(tiny)
    new = EASEModel(reg=50.0).fit(tiny)
    p_new = save_artifact(new, tmp_path, tiny, metrics={"ndcg@10": np.float32(0.5)}, now=t2)
    p_old = save_artifact(old, tmp_path, tiny, now=t1)
    assert p_old.name == "20261123T161502Z" and p_new.name == "20261124T090000Z"
    loaded = load_latest(tmp_path, "ease")
    assert loaded.path == p_new
    assert loaded.model.reg == 50.0
    assert loaded.meta["metrics"]["ndcg@10"] == pytest.approx(0.5)
    assert loaded.meta["data_fingerprint"] == tiny.fingerprint()
    assert loaded.meta["n_users"] == tiny.n_users and loaded.meta["n_items"] == tiny.n_items
    assert loaded.meta["params"] == new.get_params()
    assert loaded.user_ids.tolist() == tiny.user_ids.tolist()
    assert loaded.item_index["b"] == tiny.item_index("b")
    assert loaded.user_index["u3"] == tiny.user_index("u3")
    np.testing.assert_array_equal(
        loaded.model.score(np.array([0]), tiny.matrix[[0]]),
        new.score(np.array([0]), tiny.matrix[[0]]),
    )
    for key in ("name", "params", "created", "agora_version", "metrics"):
        assert key in json.loads((p_new / "meta.json").read_text())
    with np.load(p_new / "ids.npz", allow_pickle=False) as ids:
        assert ids["item_ids"].dtype.kind == "U"


def test_same_second_gets_a_suffix_and_newest_wins(tiny, tmp_path):
    now = datetime(2026, 1, 1, tzinfo=UTC)
    paths = [
        save_artifact(ItemKNNModel(k=i + 1).fit(tiny), tmp_path, tiny, now=now) for i in range(11)
    ]
    assert paths[0].name == "20260101T000000Z"
    assert paths[1].name == "20260101T000000Z-2"
    assert paths[10].name == "20260101T000000Z-11"
    # "-11" sorts after "-2" (numeric suffix), so the last one saved is the newest
    assert load_latest(tmp_path, "itemknn").model.k == 11
    assert list_artifacts(tmp_path) == paths
    # a half-written folder (no meta.json) and a stray folder are ignored
    (tmp_path / "itemknn" / "20990101T000000Z").mkdir()
    (tmp_path / "itemknn" / "notes").mkdir()
    assert load_latest(tmp_path, "itemknn").path == paths[-1]
    assert load_artifact(paths[3]).model.k == 4


def test_missing_artifact(tmp_path):
    with pytest.raises(FileNotFoundError, match="ease"):
        load_latest(tmp_path, "ease")
    assert list_artifacts(tmp_path / "nothing") == []


def test_pruning_keeps_the_newest_versions_of_one_model(tiny, tmp_path):
    days = [datetime(2026, 1, d, tzinfo=UTC) for d in (1, 2, 3, 4)]
    knn = [save_artifact(ItemKNNModel(k=2).fit(tiny), tmp_path, tiny, now=d) for d in days]
    ease = save_artifact(EASEModel(reg=1.0).fit(tiny), tmp_path, tiny, now=days[0])
    removed = prune_artifacts(tmp_path, "itemknn", keep=2)
    assert removed == knn[:2] and not knn[0].exists()
    assert list_artifacts(tmp_path) == [ease, *knn[2:]]
    with pytest.raises(ValueError, match="at least 1"):
        prune_artifacts(tmp_path, "itemknn", keep=0)
