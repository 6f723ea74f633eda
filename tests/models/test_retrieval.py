"""Item retrieval for factor models: the ANN index finds what exact search finds."""

from __future__ import annotations

import numpy as np

from agora.models.retrieval import ItemIndex


def clustered_vectors(n: int, dim: int = 32, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(40, dim)).astype(np.float32)
    vectors = centers[rng.integers(0, 40, n)] + 0.3 * rng.normal(size=(n, dim))
    return vectors.astype(np.float32), centers


def test_exact_search_ranks_by_inner_product() -> None:
    vectors = np.array([[1.0, 0.0], [0.0, 1.0], [2.0, 0.0], [-1.0, 0.0]])
    index = ItemIndex(vectors)
    assert index.exact
    items, scores = index.search(np.array([1.0, 0.1]), 3)
    assert items.tolist() == [2, 0, 1] and scores[0] > scores[1] > scores[2]


def test_ann_index_recovers_the_exact_top_items() -> None:
    vectors, centers = clustered_vectors(20_000)
    ann = ItemIndex(vectors, min_items=10_000)
    exact = ItemIndex(vectors, min_items=10**9)
    assert not ann.exact and exact.exact
    overlaps = []
    for center in centers[:20]:
        a, _ = ann.search(center, 200)
        b, _ = exact.search(center, 200)
        overlaps.append(len(set(a[:50].tolist()) & set(b[:50].tolist())) / 50)
    assert np.mean(overlaps) >= 0.95
