"""GSP prices on hand-computed cases: quality-weighted ranks, reserve, ties, one slot per ad."""

from __future__ import annotations

import numpy as np
import pytest

from agora.market.auction import gsp


def test_hand_computed_two_slots() -> None:
    # ranks: A 2.0*0.10 = 0.20, B 3.0*0.05 = 0.15, C 1.0*0.10 = 0.10
    wins = gsp([2.0, 3.0, 1.0], [0.10, 0.05, 0.10], slots=2, reserve=0.1, epsilon=0.01)
    assert [(w.index, w.slot) for w in wins] == [(0, 0), (1, 1)]
    assert wins[0].price == pytest.approx(0.15 / 0.10 + 0.01)  # 1.51 < bid 2.0
    assert wins[1].price == pytest.approx(0.10 / 0.05 + 0.01)  # 2.01 < bid 3.0
    assert [w.rank_score for w in wins] == pytest.approx([0.20, 0.15])


def test_price_never_exceeds_bid_and_respects_reserve() -> None:
    rng = np.random.default_rng(3)
    for _ in range(200):
        bids = rng.uniform(0, 3, size=6)
        ctrs = rng.uniform(0.001, 0.2, size=6)
        reserve = float(rng.uniform(0, 1))
        for w in gsp(bids, ctrs, slots=3, reserve=reserve, epsilon=0.01):
            assert reserve <= w.price <= bids[w.index] + 1e-12
            assert bids[w.index] >= reserve


def test_bids_below_the_reserve_do_not_enter_and_the_last_pays_the_reserve() -> None:
    # B (0.04) is under the 0.05 reserve: A is alone and pays the reserve
    wins = gsp([1.0, 0.04], [0.01, 0.9], slots=2, reserve=0.05, epsilon=0.01)
    assert [(w.index, w.price) for w in wins] == [(0, 0.05)]


def test_second_price_below_reserve_is_lifted_to_it() -> None:
    # A 1.0*0.5 = 0.5, B 0.2*0.1 = 0.02 -> A's GSP price 0.02/0.5 + 0 = 0.04 -> reserve 0.1
    wins = gsp([1.0, 0.2], [0.5, 0.1], slots=1, reserve=0.1, epsilon=0.0)
    assert wins[0].index == 0 and wins[0].price == pytest.approx(0.1)


def test_equal_ranks_pay_their_bid_and_ties_go_to_the_lower_index() -> None:
    wins = gsp([1.0, 1.0], [0.1, 0.1], slots=1, reserve=0.0, epsilon=0.01)
    assert wins[0].index == 0 and wins[0].price == pytest.approx(1.0)  # capped at the bid


def test_ctr_as_a_callable_is_asked_only_for_entered_bids() -> None:
    asked = []

    def predict(indices: np.ndarray) -> np.ndarray:
        asked.append(indices.tolist())
        return np.full(indices.size, 0.1)

    wins = gsp([0.01, 2.0, 1.0], predict, slots=3, reserve=0.5, epsilon=0.0)
    assert asked == [[1, 2]]
    assert [w.index for w in wins] == [1, 2]


def test_no_slots_no_bidders_zero_ctr_and_bad_shapes() -> None:
    assert gsp([1.0], [0.1], slots=0, reserve=0, epsilon=0) == []
    assert gsp([], [], slots=2, reserve=0, epsilon=0) == []
    assert gsp([1.0], [0.0], slots=1, reserve=0, epsilon=0) == []
    with pytest.raises(ValueError, match="expected 2 predicted CTRs"):
        gsp([1.0, 2.0], lambda idx: np.ones(3), slots=1, reserve=0, epsilon=0)
