"""Exact top-k items by inner product with a user vector, without scoring every item.

Factor models (ALS, BPR) score ``user_vector . item_vector``. An item's score is at most
``|user| |item|`` (Cauchy-Schwarz), and the norms of trained item vectors are very unequal:
popular items carry large vectors, the long tail small ones (at 200k items and 64 factors the
median norm was 0.04, the largest 4.1). :class:`ItemIndex` keeps the vectors ordered by norm,
scores the largest first, and reads further only while an unread item's bound can still beat
the k-th best score found. The answer is the exact top k. At 200k items it read about 3,700
items for a top 50 (0.07 ms against 3.7 ms for all of them: bench/results/item_index.json);
where norms are equal it reads everything, as scoring every item does.

A faiss inverted-file index (``IndexIVFFlat``, inner product, nprobe 16) did this job before:
on the same vectors it found 19% of the exact top 10 (bench/results/ann_recall_ivf_20m.json).
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: How many of the largest vectors the first read scores (at least 4 k).
FIRST_READ = 2048
#: Slack on the bound for float32 rounding of the scores.
_ROUNDING = 1.0 + 1e-5


def is_factor_model(model: Any) -> bool:
    """Whether ``model`` scores by user vector . item vector (ALS, BPR), so that an
    :class:`ItemIndex` over its item factors finds its best items."""
    return hasattr(model, "user_vectors") and hasattr(model, "item_factors_")


class ItemIndex:
    """Exact inner-product top-k over fixed item vectors, reading the largest vectors first
    and stopping where no unread item can reach the k-th best score. Read-only once built,
    so threads may search it at once."""

    def __init__(self, item_vectors: np.ndarray) -> None:
        vectors = np.ascontiguousarray(item_vectors, dtype=np.float32)
        norms = np.linalg.norm(vectors, axis=1)
        self.order = np.argsort(-norms, kind="stable")  # position -> item index
        self.vectors = np.ascontiguousarray(vectors[self.order])
        self._descending = -norms[self.order].astype(np.float64)  # ascending, for searchsorted

    def __len__(self) -> int:
        return len(self.vectors)

    def search(self, vector: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` items with the largest inner product (indices, scores), best first; equal
        scores by item index."""
        return self.search_many(np.asarray(vector).reshape(1, -1), k)[0]

    def search_many(self, vectors: np.ndarray, k: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """:meth:`search` for each row of ``vectors``; the first read is one product for all
        rows (the refresher searches for a chunk of users at once)."""
        queries = np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1, self.vectors.shape[1])
        k = min(k, len(self))
        if not k or not len(queries):
            return [(np.empty(0, np.int64), np.empty(0)) for _ in range(len(queries))]
        first = min(len(self), max(FIRST_READ, 4 * k))
        heads = queries @ self.vectors[:first].T
        return [self._top(query, head, k) for query, head in zip(queries, heads, strict=True)]

    def _top(self, query: np.ndarray, scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The exact top ``k`` of ``query`` given the ``scores`` of the first vectors."""
        read = len(scores)
        top = np.argpartition(-scores, k - 1)[:k]
        if read < len(self):
            kth = float(scores[top].min())
            size = float(np.linalg.norm(query)) * _ROUNDING
            # every unread item whose bound size * norm exceeds kth could still enter
            if size == 0:  # every score is 0
                reach = read
            elif kth <= 0:
                reach = len(self)
            else:
                reach = int(np.searchsorted(self._descending, -kth / size, side="left"))
            if reach > read:
                scores = np.concatenate([scores, self.vectors[read:reach] @ query])
                top = np.argpartition(-scores, k - 1)[:k]
        items = self.order[top]
        best = np.lexsort((items, -scores[top]))
        return items[best].astype(np.int64), scores[top][best].astype(np.float64)
