"""The page re-ranker on its own: each heuristic moves the page the way it promises."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp

from agora.feed import rerank as reranking
from agora.feed.rerank import DENSE_CELLS, rerank

#: six candidates, best first; 0-2 share tag 0, 3-4 tag 1, 5 tag 2
RELEVANCE = np.array([1.0, 0.95, 0.9, 0.5, 0.45, 0.1])
TAGS = sp.csr_matrix(np.array([[1, 0, 0]] * 3 + [[0, 1, 0]] * 2 + [[0, 0, 1]]))


def test_without_heuristics_the_page_is_the_relevance_order() -> None:
    placed = rerank(RELEVANCE, TAGS, 4)
    assert placed.order.tolist() == [0, 1, 2, 3] and not placed.explored.any()


def test_diversity_brings_other_topics_up() -> None:
    assert rerank(RELEVANCE, TAGS, 3, diversity=0.0).order.tolist() == [0, 1, 2]
    assert rerank(RELEVANCE, TAGS, 3, diversity=0.6).order.tolist() == [0, 3, 1]
    assert rerank(RELEVANCE, TAGS, 3, diversity=1.0).order.tolist() == [0, 3, 5]


def test_author_decay_spreads_one_authors_items() -> None:
    authors = np.array([7, 7, 8, 9, 9, -1])
    placed = rerank(RELEVANCE, TAGS, 3, authors=authors, author_decay=0.5)
    assert placed.order.tolist() == [0, 2, 1]  # the second item of author 7 waits a slot


def test_exploration_slots_take_the_best_draw_among_explorable() -> None:
    draws = np.array([np.nan, np.nan, np.nan, np.nan, 0.2, 0.9])
    placed = rerank(RELEVANCE, TAGS, 4, explore=draws, exploration=0.5)
    assert placed.order.tolist() == [0, 5, 1, 4]
    assert placed.explored.tolist() == [False, True, False, True]


def test_new_creators_get_their_share() -> None:
    new = np.array([False, False, False, False, True, True])
    placed = rerank(RELEVANCE, TAGS, 4, new_creator=new, new_creator_share=0.5)
    assert placed.order.tolist() == [0, 1, 5, 4]  # the lowest placed give way to the best new
    none_left = rerank(RELEVANCE, TAGS, 4, new_creator=np.zeros(6, bool), new_creator_share=0.5)
    assert none_left.order.tolist() == [0, 1, 2, 3]


# -- the same pages as the plain greedy loop, on random inputs ---------------------------------
def reference_rerank(
    relevance: np.ndarray,
    tags: sp.csr_matrix,
    n: int,
    diversity: float = 0.0,
    authors: np.ndarray | None = None,
    author_decay: float = 1.0,
    explore: np.ndarray | None = None,
    exploration: float = 0.0,
    new_creator: np.ndarray | None = None,
    new_creator_share: float = 0.0,
    page_size: int | None = None,
) -> tuple[list[int], list[bool]]:
    """The specification :func:`rerank` is held to: every slot recomputes every candidate's
    gain from scratch and the Jaccard to the item placed from its tag row (the re-ranker as it
    was before it was made cheaper)."""
    rel = np.asarray(relevance, dtype=np.float64)
    m = len(rel)
    n = min(n, m)
    dense = sp.csr_matrix(tags, dtype=np.float64).toarray()
    sizes = dense.sum(axis=1)
    span = max(float(rel.max() - rel.min()), 1e-9) if m else 1.0
    scaled = (rel - (rel.min() if m else 0.0)) / span
    authors = np.full(m, -1) if authors is None else np.asarray(authors)
    draws = np.full(m, np.nan) if explore is None else np.asarray(explore, dtype=np.float64)
    spacing = round(1.0 / exploration) if exploration > 0 else 0
    available = np.ones(m, dtype=bool)
    max_sim, decay = np.zeros(m), np.ones(m)
    order: list[int] = []
    explored: list[bool] = []
    for slot in range(1, n + 1):
        pick = -1
        if spacing and slot % spacing == 0:
            open_draws = np.where(available & np.isfinite(draws), draws, -np.inf)
            if np.isfinite(open_draws.max()):
                pick = int(np.argmax(open_draws))
        explored.append(pick >= 0)
        if pick < 0:
            gain = scaled * decay - diversity * max_sim
            gain[~available] = -np.inf
            pick = int(np.argmax(gain))
        order.append(pick)
        available[pick] = False
        if diversity > 0 and sizes[pick] > 0:
            inter = dense @ dense[pick]
            union = sizes + sizes[pick] - inter
            jaccard = np.divide(inter, union, out=np.zeros(m), where=union > 0)
            np.maximum(max_sim, jaccard, out=max_sim)
        if authors[pick] >= 0 and author_decay < 1.0:
            decay[authors == authors[pick]] *= author_decay
    if new_creator is not None and new_creator_share > 0 and order:
        fresh_faces = np.asarray(new_creator, dtype=bool)
        spare = [int(i) for i in np.argsort(-rel, kind="stable") if available[i] and fresh_faces[i]]
        size = page_size or n
        want = math.ceil(new_creator_share * size)
        for start in range(0, len(order), size):
            end = min(start + size, len(order))
            have = int(fresh_faces[order[start:end]].sum())
            for pos in range(end - 1, start - 1, -1):
                if have >= want or not spare:
                    break
                if fresh_faces[order[pos]] or explored[pos]:
                    continue
                order[pos] = spare.pop(0)
                have += 1
    return order, explored


def random_case(rng: np.random.Generator) -> tuple[tuple, dict]:
    """Candidates as the feed and the offline evaluation hand them over, with many ties."""
    m = int(rng.choice([0, 1, 2, 5, 30, 120]))
    author_decay = float(rng.choice([1.0, 0.6, 0.3]))
    levels = int(rng.choice([2, 5, 1000]))  # few levels: many ties in relevance
    relevance = rng.integers(0, levels, m) / levels * rng.choice([1.0, 3.0])
    if m > 2 and rng.random() < 0.3:  # gains that tie only if decays are the same products
        products = [1.0, author_decay, author_decay * author_decay, author_decay**2, 0.5, 0.25]
        relevance = rng.choice(products, m)
        relevance[:2] = 0.0, 1.0  # scaled to [0, 1]: unchanged
    vocabulary = int(rng.integers(1, 15))
    carried = rng.random((m, vocabulary)) < rng.choice([0.0, 0.1, 0.3, 0.7])
    tags = sp.csr_matrix(carried.astype(np.float64))
    kwargs: dict = {
        "diversity": float(rng.choice([0.0, 0.2, 0.5, 1.0, rng.random()])),
        "author_decay": author_decay,
        "exploration": float(rng.choice([0.0, 0.1, 0.25, 0.5])),
        "new_creator_share": float(rng.choice([0.0, 0.1, 0.5])),
        "page_size": rng.choice([None, 3, 20]),
    }
    if rng.random() < 0.8:
        kwargs["authors"] = rng.integers(-1, max(m // 4, 1), m)
    if rng.random() < 0.8:
        draws = np.round(rng.random(m), int(rng.choice([1, 6])))  # ties in draws too
        draws[rng.random(m) < rng.choice([0.3, 0.9])] = np.nan
        kwargs["explore"] = draws
    if rng.random() < 0.8:
        kwargs["new_creator"] = rng.random(m) < rng.choice([0.1, 0.5])
    n = int(rng.choice([1, 3, 20, 60, m + 5])) if m else 3
    return (relevance, tags, n), kwargs


@pytest.mark.parametrize("cases, dense_cells", [(1500, DENSE_CELLS), (300, 0)])
def test_the_pages_are_those_of_the_plain_greedy_loop(
    cases: int, dense_cells: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reranking, "DENSE_CELLS", dense_cells)  # 0: tags as a sparse matrix
    rng = np.random.default_rng(20240611)
    for case in range(cases):
        args, kwargs = random_case(rng)
        placed = rerank(*args, **kwargs)
        order, explored = reference_rerank(*args, **kwargs)
        assert placed.order.tolist() == order, f"case {case}"
        assert placed.explored.tolist() == explored, f"case {case}"
