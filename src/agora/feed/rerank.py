"""Turning scored candidates into a page: diversity, author decay, exploration, new creators.

Pure numpy over candidate arrays, so the live feed and the offline evaluation
(``bench/feed_offline.py``) apply exactly the same re-ranking.

* Greedy MMR: each slot takes the candidate with the best
  ``relevance x author_decay^k - diversity x max Jaccard(tags, tags of the items placed)``, where
  relevance is scaled to [0, 1] over the candidates and ``k`` counts the items of the same
  author already placed. Each placed item updates the running maximum similarity with its
  Jaccard to every candidate (the candidates carrying each of its tags are one column of a
  dense candidates x tags array), so a page costs O(n x candidates) in a few array operations
  per slot.
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

DENSE_CELLS = 4_000_000  # candidates x tags carried up to which tags are a dense array


@dataclass
class Placement:
    """Chosen candidate positions in page order, and which of them fill exploration slots."""

    order: np.ndarray
    explored: np.ndarray


class TagSets:
    """The candidates' tag sets, for the Jaccard of one candidate's set to every candidate's:
    a dense candidates x tags array (only the tags some candidate carries, each a contiguous
    column) up to :data:`DENSE_CELLS` cells, else a sparse one."""

    def __init__(self, tags: sp.csr_matrix):
        tags = sp.csr_matrix(tags)
        m = tags.shape[0]
        self.starts, self.sizes = tags.indptr, np.diff(tags.indptr).astype(np.float64)
        carried = np.bincount(tags.indices, minlength=tags.shape[1]) > 0
        self.codes = (np.cumsum(carried) - 1)[tags.indices]  # numbered among the carried
        width = int(carried.sum())
        self.carriers: np.ndarray | sp.csr_matrix
        if m * width <= DENSE_CELLS:
            self.carriers = np.zeros((m, width), order="F")
            self.carriers[np.repeat(np.arange(m), np.diff(tags.indptr)), self.codes] = 1.0
        else:
            ones = np.ones(len(self.codes))
            self.carriers = sp.csr_matrix((ones, self.codes, tags.indptr), shape=(m, width))

    def jaccard_to(self, row: int) -> np.ndarray:
        """Jaccard of every candidate's tag set to that of ``row``, which carries a tag."""
        if isinstance(self.carriers, np.ndarray):  # the sum of its tags' columns
            own = self.codes[self.starts[row] : self.starts[row + 1]].tolist()
            shared = self.carriers[:, own[0]]
            for tag in own[1:]:
                shared = shared + self.carriers[:, tag]
        else:
            shared = (self.carriers @ self.carriers[row].T).toarray().ravel()
        return shared / (self.sizes + self.sizes[row] - shared)


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

    ``tags``: 0/1, the tags each candidate carries; ``authors``: integer author codes (-1 =
    unknown, never decayed); ``explore``: the draw of each explorable candidate, NaN for the
    others; ``new_creator``: boolean per candidate; ``page_size``: the new-creator share holds
    for every page of that size (default: all ``n``).
    """
    rel = np.asarray(relevance, dtype=np.float64)
    m = len(rel)
    n = min(n, m)
    span = max(float(rel.max() - rel.min()), 1e-9) if m else 1.0
    scaled = (rel - (rel.min() if m else 0.0)) / span
    authors = np.full(m, -1) if authors is None else np.asarray(authors)
    draws = np.full(m, np.nan) if explore is None else np.asarray(explore, dtype=np.float64)
    spacing = round(1.0 / exploration) if exploration > 0 else 0
    tag_sets = TagSets(tags) if diversity > 0 else None
    # author_decay^k per author, k = their items placed (the same products, in the same order,
    # as a factor per candidate)
    decays = author_decay < 1.0 and bool((authors >= 0).any())
    if decays:
        author_codes, author_of = np.unique(authors, return_inverse=True)
        factor = np.ones(len(author_codes))

    placed = np.zeros(m, dtype=bool)
    open_draws = np.where(np.isfinite(draws), draws, -np.inf)  # -inf: not explorable or placed
    # diversity x the highest Jaccard to an item placed, per candidate (rounding keeps order,
    # so scaling the highest similarity or taking the highest scaled one is the same number)
    penalty = np.zeros(m)
    gain = np.empty(m)
    order: list[int] = []
    explored: list[bool] = []
    for slot in range(1, n + 1):
        pick = -1
        if spacing and slot % spacing == 0:
            best = int(open_draws.argmax())
            if open_draws[best] > -np.inf:
                pick = best
        took_exploration = pick >= 0
        if not took_exploration:
            if decays:
                np.multiply(scaled, factor[author_of], out=gain)
            else:
                gain[:] = scaled
            np.subtract(gain, penalty, out=gain)
            np.copyto(gain, -np.inf, where=placed)
            pick = int(gain.argmax())
        order.append(pick)
        explored.append(took_exploration)
        placed[pick] = True
        open_draws[pick] = -np.inf
        if tag_sets is not None and tag_sets.sizes[pick] > 0:
            np.maximum(penalty, diversity * tag_sets.jaccard_to(pick), out=penalty)
        if decays and authors[pick] >= 0:
            factor[author_of[pick]] *= author_decay

    if new_creator is not None and new_creator_share > 0 and order:
        _share_for_new_creators(
            order, explored, placed, rel, np.asarray(new_creator, dtype=bool),
            new_creator_share, page_size or n,
        )  # fmt: skip
    return Placement(np.array(order, dtype=np.int64), np.array(explored, dtype=bool))


def _share_for_new_creators(
    order: list[int],
    explored: list[bool],
    placed: np.ndarray,
    rel: np.ndarray,
    fresh_faces: np.ndarray,
    share: float,
    size: int,
) -> None:
    """Give every page of ``size`` in ``order`` its ``share`` of new creators: the most relevant
    unplaced ones replace the page's last non-exploration picks (in place)."""
    by_relevance = np.argsort(-rel, kind="stable")
    spare = by_relevance[fresh_faces[by_relevance] & ~placed[by_relevance]].tolist()
    want = math.ceil(share * size)
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
