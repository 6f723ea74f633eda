"""Item retrieval for factor models: the item index finds exactly what scoring every item finds."""

from __future__ import annotations

import numpy as np
import pytest

from agora.models.base import top_n
from agora.models.retrieval import ItemIndex


def popular_and_tail(n: int, dim: int = 16, seed: int = 0) -> np.ndarray:
    """Item vectors whose lengths fall off like trained factors' do (a few long, most short)."""
    rng = np.random.default_rng(seed)
    lengths = 1.0 / (1.0 + np.arange(n)) ** 0.7
    vectors = rng.normal(size=(n, dim)) * lengths[rng.permutation(n), None]
    return vectors.astype(np.float32)


def exact(vectors: np.ndarray, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    scores = (vectors @ query.astype(np.float32)).astype(np.float64)[None, :]
    items, values = top_n(scores, k)
    return items[0], values[0]


@pytest.mark.parametrize("k", [1, 10, 60, 1000])
def test_the_index_finds_the_exact_top_k(k: int) -> None:
    vectors = popular_and_tail(30_000)
    index = ItemIndex(vectors)
    rng = np.random.default_rng(1)
    queries = rng.normal(size=(25, vectors.shape[1])).astype(np.float32)
    queries[0] = 0.0  # a user with no signal: every score 0
    queries[1] *= -1e-3  # tiny, and mostly negative scores
    for query, (items, scores) in zip(queries, index.search_many(queries, k), strict=True):
        _, want_scores = exact(vectors, query, k)
        assert len(set(items.tolist())) == k
        np.testing.assert_allclose(scores, want_scores, rtol=1e-5, atol=1e-6)
        # each item's own score is the exact k-th best's, rank by rank (items whose scores
        # differ in the last float bits may swap: the products are summed in other orders)
        own = (vectors[items] @ query).astype(np.float64)
        np.testing.assert_allclose(own, want_scores, rtol=1e-5, atol=1e-6)


def test_equal_lengths_and_ties() -> None:
    """Where every vector is as long as the others nothing can be skipped, and equal scores
    come by item index, as the models' own ranking gives them."""
    angles = np.linspace(0, 2 * np.pi, 5000, endpoint=False)
    circle = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    index = ItemIndex(circle)
    items, scores = index.search(np.array([1.0, 0.0]), 5)
    assert items.tolist() == exact(circle, np.array([1.0, 0.0]), 5)[0].tolist()
    twins = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [2.0, 0.0], [1.0, 0.0]])
    items, scores = ItemIndex(twins).search(np.array([1.0, 0.1]), 4)
    assert items.tolist() == [3, 0, 2, 4] and scores[0] > scores[1] == scores[2] == scores[3]


def test_more_than_the_catalogue_and_no_queries() -> None:
    vectors = popular_and_tail(7)
    items, scores = ItemIndex(vectors).search(np.ones(16), 50)
    assert sorted(items.tolist()) == list(range(7)) and np.all(np.diff(scores) <= 0)
    assert ItemIndex(vectors).search_many(np.empty((0, 16)), 5) == []
