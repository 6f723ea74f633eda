"""The page re-ranker on its own: each heuristic moves the page the way it promises."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from agora.feed.rerank import rerank

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
