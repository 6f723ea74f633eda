import math

import numpy as np
import pytest

from agora import metrics as M


def test_two_user_example_by_hand():
    # K = 3.
    # user A: ranked [1, 2, 3], test {2, 5}: hits [0, 1, 0]
    #   recall 1/2, precision 1/3, hit 1, MRR 1/2,
    #   DCG = 1/log2(3) = 0.6309, IDCG over min(2, 3) = 2 slots = 1 + 1/log2(3) = 1.6309,
    #   NDCG = 0.6309 / 1.6309 = 0.3869
    # user B: ranked [4, 6, 7], test {4}: hits [1, 0, 0]
    #   recall 1, precision 1/3, hit 1, MRR 1, NDCG 1
    # user C: ranked [1, 2, 3], no test item -> left out of every average
    recs = [np.array([1, 2, 3]), np.array([4, 6, 7]), np.array([1, 2, 3])]
    truth = [np.array([2, 5]), np.array([4]), np.array([], dtype=int)]
    hits, n_rel = M.hits_matrix(recs, truth, 3)
    assert hits.tolist() == [[False, True, False], [True, False, False], [False, False, False]]
    assert n_rel.tolist() == [2, 1, 0]
    ndcg_a = (1 / math.log2(3)) / (1 + 1 / math.log2(3))
    assert ndcg_a == pytest.approx(0.386853, abs=1e-6)
    assert M.ndcg_at_k(hits, n_rel) == pytest.approx((ndcg_a + 1) / 2)
    assert M.recall_at_k(hits, n_rel) == pytest.approx(0.75)
    assert M.precision_at_k(hits, n_rel) == pytest.approx(1 / 3)
    assert M.hit_at_k(hits, n_rel) == pytest.approx(1.0)
    assert M.mrr_at_k(hits, n_rel) == pytest.approx(0.75)
    table = M.ranking_metrics(hits, n_rel)
    assert set(table) == {"recall@3", "mrr@3", "ndcg@3", "hit@3", "precision@3"}


def test_ideal_dcg_is_capped_at_k():
    # 5 test items, K = 2, both slots hit -> NDCG 1 (ideal over min(5, 2) = 2 slots);
    # recall 2/5, precision 2/2.
    hits, n_rel = M.hits_matrix([np.array([0, 1])], [np.arange(5)], 2)
    assert M.ndcg_at_k(hits, n_rel) == pytest.approx(1.0)
    assert M.recall_at_k(hits, n_rel) == pytest.approx(0.4)
    assert M.precision_at_k(hits, n_rel) == pytest.approx(1.0)


def test_short_list_and_late_hit():
    # only 2 items ranked for K = 4, hit at rank 2: precision still divides by K;
    # MRR 1/2, NDCG = (1/log2 3) / 1 with one test item
    hits, n_rel = M.hits_matrix([np.array([7, 8])], [np.array([8])], 4)
    assert M.precision_at_k(hits, n_rel) == pytest.approx(0.25)
    assert M.mrr_at_k(hits, n_rel) == pytest.approx(0.5)
    assert M.ndcg_at_k(hits, n_rel) == pytest.approx(1 / math.log2(3))


def test_no_hits_and_no_users():
    hits, n_rel = M.hits_matrix([np.array([1, 2])], [np.array([3])], 2)
    assert M.ndcg_at_k(hits, n_rel) == 0.0
    assert M.mrr_at_k(hits, n_rel) == 0.0
    empty_hits, empty_rel = M.hits_matrix([], [], 2)
    assert M.ndcg_at_k(empty_hits, empty_rel) == 0.0


def test_coverage_and_novelty():
    recs = [np.array([0, 1]), np.array([1, 2])]
    assert M.item_coverage(recs, 6) == pytest.approx(3 / 6)
    counts = np.array([6, 2, 0, 0])  # total 8, n_items 4 -> shares (c + 1) / 12
    expected = np.mean(
        [-math.log2(7 / 12), -math.log2(3 / 12), -math.log2(3 / 12), -math.log2(1 / 12)]
    )
    assert M.novelty(recs, counts) == pytest.approx(expected)


def test_curve_matches_pointwise():
    hits, n_rel = M.hits_matrix([np.array([1, 2, 3])], [np.array([2])], 3)
    curve = M.ndcg_recall_curve(hits, n_rel)
    assert curve["k"] == [1, 2, 3]
    assert curve["recall"] == [0.0, 1.0, 1.0]
    assert curve["ndcg"][1] == pytest.approx(1 / math.log2(3))
