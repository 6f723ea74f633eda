"""The online ranking's array helpers answer what their plain numpy and scipy equivalents do."""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata

from agora.feed.online import ATTRIBUTION, among, best_k, nominate, percentiles


def reference_nominate(by_source: dict) -> tuple[np.ndarray, ...]:
    """:func:`nominate` as it was written first: first nominations from a table as long as the
    largest position."""
    parts = [
        (pair[0], np.asarray(pair[1], dtype=np.float64), np.full(len(pair[0]), rank))
        for rank, name in enumerate(ATTRIBUTION)
        if (pair := by_source.get(name)) is not None and len(pair[0])
    ]
    if not parts:
        empty = np.empty(0, np.int64)
        return empty, empty, np.empty(0), empty
    pos, strength, rank = (np.concatenate(column) for column in zip(*parts, strict=True))
    order = np.lexsort((rank, -strength, pos))
    first = np.ones(len(order), dtype=bool)
    first[1:] = pos[order][1:] != pos[order][:-1]
    chosen = order[first]
    entered = np.full(int(pos.max()) + 1, len(pos), dtype=np.int64)
    np.minimum.at(entered, pos, np.arange(len(pos)))
    chosen = chosen[np.argsort(entered[pos[chosen]], kind="stable")]
    return pos[chosen], rank[chosen], strength[chosen], entered[pos[chosen]]


def test_nominate_is_the_reference_on_random_sources() -> None:
    rng = np.random.default_rng(3)
    for case in range(500):
        by_source = {}
        for name in ATTRIBUTION:
            if rng.random() < 0.6:  # items named by several sources, strengths tied
                size = int(rng.integers(0, 25))
                by_source[name] = (rng.integers(0, 40, size), rng.integers(0, 4, size) / 4)
        got, want = nominate(by_source), reference_nominate(by_source)
        for mine, theirs in zip(got, want, strict=True):
            assert mine.tolist() == theirs.tolist(), f"case {case}"


def test_percentiles_are_scipys_average_ranks() -> None:
    rng = np.random.default_rng(5)
    for size in (0, 1, 2, 7, 100, 1000):
        for levels in (1, 3, 50, 10**9):
            values = rng.integers(0, levels, size) * 0.1 - 2.0
            values[rng.random(size) < 0.05] = -np.inf
            want = rankdata(values, method="average") / size if size else values
            assert percentiles(values).tolist() == want.tolist()


def test_among_is_isin() -> None:
    rng = np.random.default_rng(7)
    for size, others in ((0, 0), (5, 0), (0, 5), (50, 3), (1000, 200), (200, 1000)):
        values = rng.integers(-1, 300, size)
        other = rng.integers(-1, 300, others)
        assert among(values, other).tolist() == np.isin(values, other).tolist()
        ordered = np.sort(other)
        assert among(values, ordered, ordered=True).tolist() == np.isin(values, other).tolist()


def test_best_k_is_a_stable_sort_cut_at_k() -> None:
    rng = np.random.default_rng(9)
    for case in range(2000):
        size, k = int(rng.integers(0, 300)), int(rng.integers(-1, 320))
        tied = rng.random() < 0.5  # few distinct values: ties at the cut, in any order
        values = rng.integers(0, 6, size) / 5 if tied else rng.random(size)
        want = np.argsort(-values, kind="stable")[: max(k, 0)]
        assert best_k(values, k).tolist() == want.tolist(), f"case {case}"
