"""Content attention: learns which past content matters, ranks brand-new items, explains itself."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from agora.features.interactions import Interactions, SideData
from agora.models.content_attention import ContentAttentionModel

CHAIN = ["区块链 质押 奖励 节点", "staking pool rewards and delegation", "智能合约 Plutus 编程"]
FOOD = ["红烧肉 做法 菜谱", "pizza dough recipe with tomato", "how to bake sourdough bread"]
NEW_CHAIN = "如何 委托 质押 到 节点 获得 奖励"  # a new post nobody has seen yet
NEW_FOOD = "easy pasta recipe with garlic"


@pytest.fixture(autouse=True)
def embedding_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch) -> None:
    cache = tmp_path_factory.getbasetemp() / "embeddings.npz"
    monkeypatch.setenv("AGORA_EMBEDDING_CACHE", str(cache))


def _community() -> tuple[Interactions, SideData]:
    texts = CHAIN + FOOD + [NEW_CHAIN, NEW_FOOD]
    items = [f"p{i}" for i in range(len(texts))]
    users, liked = [], []
    for u in range(12):  # half the users read about blockchains, half about food
        topic = CHAIN if u % 2 == 0 else FOOD
        for text in topic:
            users.append(f"u{u}")
            liked.append(items[texts.index(text)])
    inter = Interactions.from_triples(users, liked, item_ids=items)
    return inter, SideData(texts=texts, tags=[[] for _ in texts])


def _fit() -> tuple[ContentAttentionModel, Interactions]:
    inter, side = _community()
    model = ContentAttentionModel(epochs=30, dim=16, progress=False, num_threads=1)
    return model.fit(inter, side), inter


def test_new_items_without_interactions_reach_the_right_users() -> None:
    model, inter = _fit()
    new_chain, new_food = inter.item_index("p6"), inter.item_index("p7")
    assert inter.matrix[:, [new_chain, new_food]].nnz == 0
    chain_reader = inter.matrix[[inter.user_index("u0")]]
    food_reader = inter.matrix[[inter.user_index("u1")]]
    top_chain, _ = model.recommend(0, chain_reader, n=1)
    top_food, _ = model.recommend(1, food_reader, n=1)
    assert top_chain[0] == new_chain and top_food[0] == new_food


def test_attention_weights_explain_and_save_load_keeps_scores(tmp_path: Path) -> None:
    model, inter = _fit()
    history = inter.matrix[[inter.user_index("u0")]]
    _, weights = model.attention(history.indices)
    assert weights.shape == (3,) and np.isclose(weights.sum(), 1.0)
    model.save(tmp_path / "m")
    assert (tmp_path / "m" / "training_curve.png").is_file()
    loaded = ContentAttentionModel.load(tmp_path / "m")
    np.testing.assert_allclose(
        loaded.score(np.array([0]), history), model.score(np.array([0]), history), rtol=1e-5
    )
    similar, _ = loaded.similar_items(inter.item_index("p1"), n=2)
    assert inter.item_index("p6") in similar or inter.item_index("p0") in similar
