"""The ad auction: generalised second price (GSP) with quality and a reserve price.

Pure functions over arrays, so prices can be checked by hand. Ads are ranked by
``bid x predicted CTR`` (the expected value of a view); bids under the reserve never enter.
The ad in slot k pays, per click, the least bid that would still keep its place:
``rank(k+1) / ctr(k) + epsilon``, never less than the reserve and never more than its own bid.
The last ranked ad (no one below it) pays the reserve.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

#: Predicted CTRs: an array aligned with the bids, or a callable that gets the indices of the
#: bids at or above the reserve and returns their CTRs (so only those are predicted).
CTRs = Sequence[float] | np.ndarray | Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Win:
    """One auction winner: which bidder, which slot (0 = first), its price per click."""

    index: int
    slot: int
    price: float
    rank_score: float
    ctr: float


def gsp(bids: Sequence[float], ctrs: CTRs, slots: int, reserve: float, epsilon: float) -> list[Win]:
    """Winners of ``slots`` ordered slots and their prices (at most one slot per bidder).

    Ties in ``bid x ctr`` go to the lower index, so a run is reproducible."""
    bid = np.asarray(bids, dtype=float)
    entered = np.flatnonzero(bid >= reserve)
    if slots <= 0 or entered.size == 0:
        return []
    if callable(ctrs):
        ctr = np.asarray(ctrs(entered), dtype=float)
    else:
        ctr = np.asarray(ctrs, dtype=float)[entered]
    if ctr.shape != entered.shape:
        raise ValueError(f"expected {entered.size} predicted CTRs, got shape {ctr.shape}")
    keep = ctr > 0
    entered, ctr = entered[keep], ctr[keep]
    score = bid[entered] * ctr
    order = np.lexsort((entered, -score))  # by score descending, then index ascending
    wins: list[Win] = []
    for k, pos in enumerate(order[:slots]):
        own_bid = float(bid[entered[pos]])
        next_score = float(score[order[k + 1]]) if k + 1 < order.size else None
        price = reserve if next_score is None else next_score / float(ctr[pos]) + epsilon
        price = min(own_bid, max(reserve, price))
        wins.append(Win(int(entered[pos]), k, price, float(score[pos]), float(ctr[pos])))
    return wins
