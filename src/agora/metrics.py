"""Top-K ranking metrics with RecBole's definitions, plus coverage and novelty (a kit: plain
numpy, known to no layer, so models validate with the very metrics evaluation reports).

All accuracy metrics start from a boolean ``hits`` matrix (users x K: is the item at rank r
relevant?) and ``n_relevant`` (each user's number of test items). Users with no test item are
left out of every average. For a user with hits h_1..h_K and T test items:

* Recall@K    = sum(h) / T
* Precision@K = sum(h) / K                (K, even when fewer than K items were ranked)
* Hit@K       = 1 if any h else 0
* MRR@K       = 1 / (rank of the first hit), 0 without a hit
* NDCG@K      = DCG / IDCG, DCG = sum_r h_r / log2(r + 1),
                IDCG = sum_{r <= min(T, K)} 1 / log2(r + 1)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def hits_matrix(
    recommended: Sequence[np.ndarray], relevant: Sequence[np.ndarray], k: int
) -> tuple[np.ndarray, np.ndarray]:
    """``hits`` (n_users x k bool) and ``n_relevant`` (n_users int) from per-user item lists.

    ``recommended[u]`` is user u's ranked list (only the first ``k`` count; shorter lists pad
    with misses), ``relevant[u]`` its test items.
    """
    n = len(recommended)
    if len(relevant) != n:
        raise ValueError("recommended and relevant must have one entry per user")
    hits = np.zeros((n, k), dtype=bool)
    n_rel = np.zeros(n, dtype=np.int64)
    for u, (rec, rel) in enumerate(zip(recommended, relevant, strict=True)):
        rel_arr = np.unique(np.asarray(rel))
        n_rel[u] = len(rel_arr)
        rec_arr = np.asarray(rec)[:k]
        if len(rec_arr) and len(rel_arr):
            hits[u, : len(rec_arr)] = np.isin(rec_arr, rel_arr)
    return hits, n_rel


def _valid(hits: np.ndarray, n_relevant: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    hits = np.asarray(hits, dtype=bool)
    n_relevant = np.asarray(n_relevant)
    keep = n_relevant > 0
    return hits[keep], n_relevant[keep]


def recall_at_k(hits: np.ndarray, n_relevant: np.ndarray) -> float:
    """Mean of hits / |test items|."""
    h, n = _valid(hits, n_relevant)
    return float(np.mean(h.sum(axis=1) / n)) if len(n) else 0.0


def precision_at_k(hits: np.ndarray, n_relevant: np.ndarray) -> float:
    """Mean of hits / K (K = number of columns of ``hits``)."""
    h, n = _valid(hits, n_relevant)
    return float(np.mean(h.sum(axis=1) / h.shape[1])) if len(n) and h.shape[1] else 0.0


def hit_at_k(hits: np.ndarray, n_relevant: np.ndarray) -> float:
    """Share of users with at least one hit."""
    h, n = _valid(hits, n_relevant)
    return float(np.mean(h.any(axis=1))) if len(n) else 0.0


def mrr_at_k(hits: np.ndarray, n_relevant: np.ndarray) -> float:
    """Mean reciprocal rank of the first hit (0 without a hit)."""
    h, n = _valid(hits, n_relevant)
    if not len(n):
        return 0.0
    first = np.argmax(h, axis=1)
    rr = np.where(h.any(axis=1), 1.0 / (first + 1.0), 0.0)
    return float(np.mean(rr))


def ndcg_at_k(hits: np.ndarray, n_relevant: np.ndarray) -> float:
    """Mean NDCG with binary gains and ideal DCG over min(|test|, K) positions."""
    h, n = _valid(hits, n_relevant)
    if not len(n):
        return 0.0
    k = h.shape[1]
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = (h * discounts).sum(axis=1)
    ideal_cum = np.concatenate([[0.0], np.cumsum(discounts)])
    idcg = ideal_cum[np.minimum(n, k)]
    return float(np.mean(dcg / idcg))


def item_coverage(recommended: Sequence[np.ndarray], n_items: int) -> float:
    """Distinct recommended items / catalogue size."""
    if n_items <= 0:
        return 0.0
    lists = [np.asarray(r) for r in recommended if len(r)]
    if not lists:
        return 0.0
    return float(len(np.unique(np.concatenate(lists))) / n_items)


def novelty(recommended: Sequence[np.ndarray], train_counts: np.ndarray) -> float:
    """Mean self-information ``-log2 share_i`` over all recommended slots.

    ``share_i = (count_i + 1) / (sum(count) + n_items)``: item i's share of the training
    interactions, add-one smoothed so items never seen in training stay finite.
    """
    counts = np.asarray(train_counts, dtype=np.float64)
    lists = [np.asarray(r, dtype=np.int64) for r in recommended if len(r)]
    if not lists:
        return 0.0
    items = np.concatenate(lists)
    share = (counts[items] + 1.0) / (counts.sum() + len(counts))
    return float(np.mean(-np.log2(share)))


def ndcg_recall_curve(hits: np.ndarray, n_relevant: np.ndarray) -> dict[str, list[float]]:
    """NDCG@k and Recall@k for k = 1..K (for plots)."""
    k = hits.shape[1]
    return {
        "k": list(range(1, k + 1)),
        "ndcg": [ndcg_at_k(hits[:, :j], n_relevant) for j in range(1, k + 1)],
        "recall": [recall_at_k(hits[:, :j], n_relevant) for j in range(1, k + 1)],
    }


def ranking_metrics(hits: np.ndarray, n_relevant: np.ndarray) -> dict[str, float]:
    """recall/mrr/ndcg/hit/precision @K (K = hits.shape[1]) keyed like ``ndcg@10``."""
    k = hits.shape[1]
    return {
        f"recall@{k}": recall_at_k(hits, n_relevant),
        f"mrr@{k}": mrr_at_k(hits, n_relevant),
        f"ndcg@{k}": ndcg_at_k(hits, n_relevant),
        f"hit@{k}": hit_at_k(hits, n_relevant),
        f"precision@{k}": precision_at_k(hits, n_relevant),
    }
