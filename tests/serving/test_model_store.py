"""ModelStore: finds the newest artefacts at once, loads a model's arrays only when used."""

from __future__ import annotations

from pathlib import Path

import pytest

from agora.features.interactions import Interactions
from agora.models.artifacts import save_artifact
from agora.models.ease import EASEModel
from agora.models.itemknn import ItemKNNModel
from agora.serving.service import ModelStore, ModelUnavailable

HISTORY = [("u0", "a"), ("u0", "b"), ("u1", "a"), ("u1", "b"), ("u2", "c"), ("u2", "d")]


@pytest.fixture
def data() -> Interactions:
    users, items = zip(*HISTORY, strict=True)
    return Interactions.from_triples(list(users), list(items))


def test_reload_reads_meta_only_and_get_loads_on_first_use(data: Interactions, tmp_path: Path):
    ease = save_artifact(EASEModel(reg=1.0).fit(data), tmp_path, data, {"holdout_ndcg@10": 0.4})
    knn = save_artifact(ItemKNNModel().fit(data), tmp_path, data, {"holdout_ndcg@10": 0.2})
    for array_file in knn.glob("*.np*"):  # break itemknn's arrays, keep its meta.json
        array_file.unlink()

    store = ModelStore(tmp_path)
    assert store.reload() == {"ease": ease.name, "itemknn": knn.name}
    assert store.best() == "ease"
    assert store.meta("itemknn")["metrics"] == {"holdout_ndcg@10": 0.2}

    loaded = store.get("ease")
    assert loaded.model.reg == 1.0 and loaded.item_index["b"] == data.item_index("b")
    assert store.get("ease") is loaded  # read once, then served from memory
    with pytest.raises(FileNotFoundError):
        store.get("itemknn")  # the broken artefact fails when used, not at reload
    assert set(store.warm()) == {"ease"}  # warm loads what it can and logs the rest
    with pytest.raises(ModelUnavailable, match="not trained"):
        store.get("als")


def test_reload_swaps_to_a_newer_version(data: Interactions, tmp_path: Path) -> None:
    save_artifact(EASEModel(reg=1.0).fit(data), tmp_path, data)
    store = ModelStore(tmp_path)
    store.reload()
    assert store.get("ease").model.reg == 1.0
    newer = save_artifact(EASEModel(reg=9.0).fit(data), tmp_path, data)
    assert store.get("ease").model.reg == 1.0  # until reload, the served version stays
    assert store.reload() == {"ease": newer.name}
    assert store.get("ease").model.reg == 9.0
