"""Explanations name the past items that really carried a recommendation."""

from __future__ import annotations

import numpy as np
import pytest

from agora.features.interactions import Interactions
from agora.models.ease import EASEModel
from agora.models.explain import top_reasons
from agora.models.itemknn import ItemKNNModel
from agora.models.popularity import TrendingModel


def _data() -> Interactions:
    # "jazz" readers also read "blues"; "chess" readers also read "go"; nobody mixes them
    pairs = []
    for u in range(6):
        pairs += [(f"j{u}", "jazz"), (f"j{u}", "blues")]
        pairs += [(f"c{u}", "chess"), (f"c{u}", "go")]
    pairs += [("me", "jazz"), ("me", "chess")]
    users, items = zip(*pairs, strict=True)
    return Interactions.from_triples(list(users), list(items))


@pytest.mark.parametrize("model", [ItemKNNModel(k=10), EASEModel(reg=1.0)])
def test_each_recommendation_is_explained_by_the_item_that_implies_it(model) -> None:
    data = _data()
    model.fit(data)
    me = data.matrix[[data.user_index("me")]]
    targets = np.array([data.item_index("blues"), data.item_index("go")])
    reasons = top_reasons(model, me, targets, n=2)
    assert reasons[0][0][0] == data.item_index("jazz")
    assert reasons[1][0][0] == data.item_index("chess")
    assert all(0 < share <= 1 for item in reasons for _, share in item)


def test_popularity_has_no_item_explanation() -> None:
    data = _data()
    model = TrendingModel().fit(data)
    me = data.matrix[[data.user_index("me")]]
    assert top_reasons(model, me, np.array([data.item_index("blues")])) == [[]]
