"""Why an item was recommended: which past items carried its score.

Model-agnostic and faithful: the contribution of history item j to the score of item i is how much
the model's score for i drops when j is left out of the history (one batched ``score`` call with
one row per left-out item). For item-KNN and EASE this is exactly the learned item-item weight,
for the attention models it is the part of the score that flowed through j's attention weight,
for ALS/BPR it follows the fold-in. Popularity models get no item explanation.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from agora.models.base import Recommender

#: History items considered (the strongest, or the latest when event times are known).
MAX_HISTORY = 50


def _recent(history: sp.csr_matrix, times: sp.csr_matrix | None) -> np.ndarray:
    items = history.indices
    if len(items) <= MAX_HISTORY:
        return items
    key = times.toarray().ravel()[items] if times is not None else history.data
    return items[np.argsort(-key, kind="stable")[:MAX_HISTORY]]


def contributions(
    model: Recommender,
    history: sp.csr_matrix,
    items: np.ndarray,
    times: sp.csr_matrix | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(history item indices, matrix len(items) x len(history) of score drops)."""
    history = sp.csr_matrix(history)
    items = np.asarray(items, dtype=np.int64)
    kept = _recent(history, times)
    if len(kept) == 0 or len(items) == 0:
        return kept, np.zeros((len(items), len(kept)))
    full = model.score(np.array([-1]), history, times)[0, items]
    rows = sp.vstack([history] * len(kept)).tolil()
    for row, item in enumerate(kept):
        rows[row, item] = 0
    without = sp.csr_matrix(rows)
    without.eliminate_zeros()
    stacked_times = sp.vstack([times] * len(kept)).tocsr() if times is not None else None
    if stacked_times is not None:
        stacked_times = stacked_times.multiply(without > 0).tocsr()
    reduced = model.score(np.full(len(kept), -1), without, stacked_times)[:, items]
    return kept, (full[None, :] - reduced).T


def top_reasons(
    model: Recommender,
    history: sp.csr_matrix,
    items: np.ndarray,
    n: int = 3,
    times: sp.csr_matrix | None = None,
) -> list[list[tuple[int, float]]]:
    """For each item, up to ``n`` (history item, share of the positive contributions) pairs."""
    kept, drops = contributions(model, history, items, times)
    reasons = []
    for row in drops:
        positive = np.clip(row, 0, None)
        total = positive.sum()
        if total <= 0:
            reasons.append([])
            continue
        order = np.argsort(-positive, kind="stable")[:n]
        reasons.append([(int(kept[j]), float(positive[j] / total)) for j in order if positive[j]])
    return reasons
