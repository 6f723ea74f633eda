"""Non-personalised baselines: time-decayed popularity ("trending") and newest-first ("latest").

Both give every user the same scores (the history only serves to mask already-seen items in
``recommend``). They have no item-item co-occurrence, so ``similar_items`` falls back to the
model's global ranking (the top items other than the query item), documented per method.
"""

from __future__ import annotations

from typing import ClassVar, Self

import numpy as np
import scipy.sparse as sp

from agora.features.interactions import Interactions, SideData
from agora.models.base import Recommender

_DAY = 86_400.0


def item_popularity(interactions: Interactions) -> np.ndarray:
    """Number of distinct users who interacted with each item (float64)."""
    m = interactions.matrix
    return np.bincount(m.indices[m.data > 0], minlength=m.shape[1]).astype(np.float64)


class _GlobalScoreModel(Recommender):
    """Shared part: one fitted score per item, the same for every user."""

    item_scores_: np.ndarray

    def score(
        self, users: np.ndarray, history: sp.csr_matrix, times: sp.csr_matrix | None = None
    ) -> np.ndarray:
        """The fitted global item scores, repeated for each user."""
        return np.tile(self.item_scores_, (len(np.atleast_1d(users)), 1))

    def similar_items(self, item: int, n: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """Fallback without co-occurrence: the globally best-ranked items other than ``item``,
        with their global scores (not similarities)."""
        scores = self.item_scores_.astype(np.float64).copy()
        scores[item] = -np.inf
        n = min(n, len(scores) - 1)
        order = np.argsort(-scores, kind="stable")[:n]
        return order.astype(np.int64), scores[order]


class TrendingModel(_GlobalScoreModel):
    """Time-decayed popularity: each (user, item) pair counts ``0.5 ** (age / half_life)``.

    The age of a pair is measured from the newest timestamp in the data (``Interactions.last_seen``,
    not the wall clock), so a model fitted on old data still ranks its most recent hits first.
    Pairs without a positive timestamp count as old as the oldest known one. Without any
    timestamps, or with ``half_life_days <= 0`` (no decay), it is plain popularity: the number
    of distinct users per item.
    """

    name: ClassVar[str] = "trending"

    def __init__(self, half_life_days: float = 7.0) -> None:
        self.half_life_days = half_life_days

    def fit(
        self,
        interactions: Interactions,
        side: SideData | None = None,
        valid: sp.csr_matrix | None = None,
    ) -> Self:
        """Sum decayed weights per item; ties broken by plain popularity."""
        pop = item_popularity(interactions)
        scores = pop.copy()
        ls = interactions.last_seen
        if ls is not None and ls.nnz and self.half_life_days > 0:
            ls = sp.csr_matrix(ls)
            ts = np.asarray(ls.data, dtype=np.float64)
            known = np.isfinite(ts) & (ts > 0)
            if known.any():
                newest = float(ts[known].max())
                ts = np.where(known, ts, ts[known].min())
                weights = 0.5 ** ((newest - ts) / (self.half_life_days * _DAY))
                scores = np.bincount(ls.indices, weights=weights, minlength=interactions.n_items)
                # tiny tie-breaker so equal decayed mass falls back to overall popularity
                scores = scores + 1e-9 * pop / max(pop.max(), 1.0)
        self.item_scores_ = scores.astype(np.float64)
        return self


class LatestModel(_GlobalScoreModel):
    """Newest items first by ``SideData.created``; items with unknown creation time follow,
    ranked by popularity (all by popularity when nothing has a creation time).

    Scores are ranks scaled to ``[0, 1]``: items with a known date occupy the top of the range.
    """

    name: ClassVar[str] = "latest"

    def __init__(self) -> None:
        """No hyper-parameters."""

    def fit(
        self,
        interactions: Interactions,
        side: SideData | None = None,
        valid: sp.csr_matrix | None = None,
    ) -> Self:
        """Order items by (has a date, created, popularity) and store the scaled rank."""
        n = interactions.n_items
        pop = item_popularity(interactions)
        created = np.full(n, np.nan)
        if side is not None and side.created is not None:
            created = np.asarray(side.created, dtype=np.float64)
            if created.shape != (n,):
                raise ValueError(f"SideData.created has {created.shape[0]} rows, expected {n}")
        known = np.isfinite(created)
        order = np.lexsort((pop, np.where(known, created, -np.inf), known))  # ascending
        scores = np.empty(n, dtype=np.float64)
        scores[order] = (np.arange(n) + 1.0) / max(n, 1)
        self.item_scores_ = scores
        return self
