"""Turning scored candidates into a page: diversity, author decay, exploration, new creators.

Pure numpy over candidate arrays, so the live feed and the offline evaluation
(``bench/feed_offline.py``) apply exactly the same re-ranking.

* Greedy MMR: each slot takes the candidate with the best
  ``relevance x author_decay^k - diversity x max Jaccard(tags, tags of the items placed)``, where
  relevance is scaled to [0, 1] over the candidates and ``k`` counts the items of the same
  author already placed. The running maximum similarity is updated with one sparse product per
  slot, so a page costs O(n x candidates).
* Exploration: every ``round(1 / exploration)``-th slot goes to the explorable candidate with
  the best draw (Thompson sampling in the feed).
* New creators: if fewer than ``ceil(new_creator_share x page)`` items of a page come from new
  creators, its lowest placed non-exploration items are swapped for the best remaining ones.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

DENSE_CELLS = 4_000_000  # candidates x tags below which tags are handled as a dense array


@dataclass
class Placement:
    """Chosen candidate positions in page order, and which of them fill exploration slots."""

    order: np.ndarray
    explored: np.ndarray


def jaccard_to(tags: sp.csr_matrix | np.ndarray, sizes: np.ndarray, row: int) -> np.ndarray:
    """Jaccard similarity of every candidate's tag set to candidate ``row``'s."""
    if sp.issparse(tags):
        inter = np.asarray((tags @ tags[row].T).todense()).ravel()
    else:
        inter = tags @ tags[row]
    union = sizes + sizes[row] - inter
    return np.divide(inter, union, out=np.zeros_like(inter, dtype=np.float64), where=union > 0)


def rerank(
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
) -> Placement:
    """Choose and order ``n`` of the candidates (rows of ``relevance`` and ``tags``).

    ``authors``: integer author codes (-1 = unknown, never decayed); ``explore``: the draw of
    each explorable candidate, NaN for the others; ``new_creator``: boolean per candidate;
    ``page_size``: the new-creator share holds for every page of that size (default: all ``n``).
    """
    rel = np.asarray(relevance, dtype=np.float64)
    m = len(rel)
    n = min(n, m)
    tags = sp.csr_matrix(tags, dtype=np.float64)
    sizes = np.asarray(tags.sum(axis=1)).ravel()
    if tags.shape[0] * tags.shape[1] <= DENSE_CELLS:
        tags = tags.toarray()  # a dense product per slot is far cheaper at feed sizes
    span = max(float(rel.max() - rel.min()), 1e-9) if m else 1.0
    scaled = (rel - (rel.min() if m else 0.0)) / span
    authors = np.full(m, -1) if authors is None else np.asarray(authors)
    draws = np.full(m, np.nan) if explore is None else np.asarray(explore, dtype=np.float64)
    spacing = round(1.0 / exploration) if exploration > 0 else 0

    available = np.ones(m, dtype=bool)
    max_sim = np.zeros(m)
    decay = np.ones(m)
    order: list[int] = []
    explored: list[bool] = []
    for slot in range(1, n + 1):
        pick = -1
        if spacing and slot % spacing == 0:
            open_draws = np.where(available & np.isfinite(draws), draws, -np.inf)
            if np.isfinite(open_draws.max()):
                pick = int(np.argmax(open_draws))
        took_exploration = pick >= 0
        if not took_exploration:
            gain = scaled * decay - diversity * max_sim
            gain[~available] = -np.inf
            pick = int(np.argmax(gain))
        order.append(pick)
        explored.append(took_exploration)
        available[pick] = False
        if diversity > 0 and sizes[pick] > 0:
            np.maximum(max_sim, jaccard_to(tags, sizes, pick), out=max_sim)
        if authors[pick] >= 0 and author_decay < 1.0:
            decay[authors == authors[pick]] *= author_decay

    if new_creator is not None and new_creator_share > 0 and order:
        fresh_faces = np.asarray(new_creator, dtype=bool)
        spare = [int(i) for i in np.argsort(-rel, kind="stable") if available[i] and fresh_faces[i]]
        size = page_size or n
        want = math.ceil(new_creator_share * size)
        for start in range(0, len(order), size):  # every page gets its share
            end = min(start + size, len(order))
            have = int(fresh_faces[order[start:end]].sum())
            for pos in range(end - 1, start - 1, -1):
                if have >= want or not spare:
                    break
                if fresh_faces[order[pos]] or explored[pos]:
                    continue
                order[pos] = spare.pop(0)
                have += 1
    return Placement(np.array(order, dtype=np.int64), np.array(explored, dtype=bool))
