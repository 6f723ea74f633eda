"""Matrix factorisation for implicit feedback via the ``implicit`` library: ALS and BPR.

Only numpy arrays are kept (``user_factors_``, ``item_factors_``), converted from implicit's
CPU/GPU objects, so artefacts load without pickle or implicit. Scores are dot products.

Fold-in: ``score`` compares each user's ``history`` row with the row seen at ``fit`` (a
per-user checksum); for changed rows and unknown users (index -1) the user vector is
recomputed against the fixed item factors by the closed-form weighted least squares ALS uses
(Hu, Koren & Volinsky 2008)::

    x_u = (Y^T Y + reg I + sum_i (c_ui - 1) y_i y_i^T)^-1  sum_i c_ui y_i,   c_ui = 1 + alpha w_ui

where ``w_ui`` is the (binarised or raw, optionally BM25-weighted) interaction. For ALS this is
exactly the user step of training. For BPR it is an approximation: BPR's factors were learnt
for a pairwise ranking loss (and its last column is an item bias paired with a constant 1 in
the user vector), while the fold-in fits all columns of the user vector by the pointwise
least-squares objective above; the ranking it gives is close in practice but not what
further BPR epochs would give.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, ClassVar, Self

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from agora.features.interactions import Interactions, SideData
from agora.models.base import Recommender

_SIG_SEED = 20_240_601


def _as_numpy(factors: Any) -> np.ndarray:
    """implicit CPU arrays are numpy; GPU ones expose ``to_numpy``."""
    if hasattr(factors, "to_numpy"):
        factors = factors.to_numpy()
    return np.ascontiguousarray(np.asarray(factors, dtype=np.float32))


def _row_signature(x: sp.csr_matrix) -> np.ndarray:
    """A float checksum of each row's (column, value) content: O(the rows' entries)."""
    return np.asarray(sp.csr_matrix(x, dtype=np.float64) @ _probe(x.shape[1])).ravel()


@lru_cache(maxsize=4)
def _probe(columns: int) -> np.ndarray:
    """The checksum's weight per column, drawn once per width (drawing 200k of them took
    2.7 ms, more than the rest of a recommendation's signature, on every request)."""
    probe = np.random.default_rng(_SIG_SEED).random(columns) + 0.5
    probe.flags.writeable = False
    return probe


def fold_in_users(
    item_factors: np.ndarray,
    weights: sp.csr_matrix,
    alpha: float,
    reg: float,
    gram: np.ndarray | None = None,
) -> np.ndarray:
    """Least-squares user vectors for rows of ``weights`` against fixed ``item_factors``.

    Confidence ``c = 1 + alpha * w`` on the row's items, 1 elsewhere, preference 1 on the row's
    items and 0 elsewhere; one small dense solve per row. ``gram`` (``Y^T Y`` in float64) may
    be passed in when it is kept between calls: computing it dominates a one-user fold-in.
    """
    y = np.asarray(item_factors, dtype=np.float64)
    k = y.shape[1]
    base = (y.T @ y if gram is None else gram) + reg * np.eye(k)
    w = sp.csr_matrix(weights, dtype=np.float64)
    out = np.zeros((w.shape[0], k), dtype=np.float32)
    for r in range(w.shape[0]):
        lo, hi = w.indptr[r], w.indptr[r + 1]
        if lo == hi:
            continue
        idx = w.indices[lo:hi]
        extra = alpha * w.data[lo:hi]
        yi = y[idx]
        a = base + (yi.T * extra) @ yi
        b = yi.T @ (1.0 + extra)
        out[r] = np.linalg.solve(a, b)
    return out


class _FactorModel(Recommender):
    """Shared scoring, fold-in and neighbour search for factor models."""

    user_arrays: ClassVar[dict[str, int]] = {
        "user_factors_": 0,
        "user_signature_": 0,
        "user_nnz_": 0,
    }
    user_factors_: np.ndarray
    item_factors_: np.ndarray
    user_signature_: np.ndarray
    user_nnz_: np.ndarray

    binary: bool
    alpha: float
    weighting: str
    bm25_k1: float
    bm25_b: float
    num_threads: int

    # -- weighting ------------------------------------------------------------------------
    def _raw(self, x: sp.csr_matrix) -> sp.csr_matrix:
        x = sp.csr_matrix(x, dtype=np.float32, copy=True)
        x.data[x.data < 0] = 0
        if self.binary:
            x.data = (x.data > 0).astype(np.float32)
        x.eliminate_zeros()
        return x

    def _fit_weighting(self, x: sp.csr_matrix) -> None:
        if self.weighting == "bm25":
            n_users = x.shape[0]
            df = np.bincount(x.indices, minlength=x.shape[1])
            self.idf_ = (np.log(n_users) - np.log1p(df)).astype(np.float64)
            lengths = np.asarray(x.sum(axis=1)).ravel()
            self.avg_len_ = float(lengths.mean()) if len(lengths) else 1.0
        elif self.weighting != "none":
            raise ValueError(f"weighting must be 'none' or 'bm25', got {self.weighting!r}")

    def _weights(self, x: sp.csr_matrix) -> sp.csr_matrix:
        """The ``w`` of ``c = 1 + alpha * w`` (BM25 as in implicit's ``bm25_weight``)."""
        x = self._raw(x)
        if self.weighting == "bm25":
            lengths = np.asarray(x.sum(axis=1)).ravel()
            norm = (1.0 - self.bm25_b) + self.bm25_b * lengths / max(self.avg_len_, 1e-12)
            rows = np.repeat(np.arange(x.shape[0]), np.diff(x.indptr))
            k1 = self.bm25_k1
            x.data = (
                x.data * (k1 + 1.0) / (k1 * norm[rows] + x.data) * self.idf_[x.indices]
            ).astype(np.float32)
            x.data = np.maximum(x.data, 0)  # idf < 0 only for items nearly everyone has
        return x

    def _remember_rows(self, x: sp.csr_matrix) -> None:
        raw = self._raw(x)
        self.user_signature_ = _row_signature(raw)
        self.user_nnz_ = np.diff(raw.indptr).astype(np.int64)

    # -- scoring --------------------------------------------------------------------------
    def _fold_in_alpha(self) -> float:
        return float(self.alpha)

    def _fold_in_reg(self) -> float:
        return float(self.regularization)  # type: ignore[attr-defined]

    def user_vectors(self, users: np.ndarray, history: sp.csr_matrix) -> np.ndarray:
        """Fitted factors for unchanged known users, fold-in for the others."""
        users = np.asarray(users, dtype=np.int64).ravel()
        history = sp.csr_matrix(history)
        raw = self._raw(history)
        known = (users >= 0) & (users < len(self.user_factors_))
        safe = np.where(known, users, 0)
        sig = _row_signature(raw)
        nnz = np.diff(raw.indptr)
        same = (
            known
            & (nnz == self.user_nnz_[safe])
            & np.isclose(sig, self.user_signature_[safe], rtol=1e-9, atol=1e-9)
        )
        vecs = self.user_factors_[safe].copy()
        changed = np.flatnonzero(~same)
        if len(changed):
            w = self._weights(history[changed])
            y, gram = self._item_gram()
            vecs[changed] = fold_in_users(y, w, self._fold_in_alpha(), self._fold_in_reg(), gram)
        return vecs

    def _item_gram(self) -> tuple[np.ndarray, np.ndarray]:
        """Item factors in float64 and their ``Y^T Y``, computed once per fitted/loaded
        factors (not saved: recomputed from ``item_factors_`` after ``load``)."""
        cached = getattr(self, "_gram_cache", None)
        if cached is None or cached[0] is not self.item_factors_:
            y = np.asarray(self.item_factors_, dtype=np.float64)
            cached = (self.item_factors_, y, y.T @ y)
            self._gram_cache = cached
        return cached[1], cached[2]

    def score(
        self, users: np.ndarray, history: sp.csr_matrix, times: sp.csr_matrix | None = None
    ) -> np.ndarray:
        """Dot products of (possibly folded-in) user vectors with item factors."""
        return self.user_vectors(users, history) @ self.item_factors_.T

    def similar_items(self, item: int, n: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """Cosine similarity between item factor vectors."""
        return _cosine_neighbours(self.item_factors_, item, n)


def _cosine_neighbours(factors: np.ndarray, item: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    y = factors.astype(np.float64)
    norms = np.linalg.norm(y, axis=1)
    norms[norms == 0] = 1.0
    sims = (y @ y[item]) / (norms * norms[item])
    sims[item] = -np.inf
    n = min(n, len(sims) - 1)
    order = np.argsort(-sims, kind="stable")[:n]
    return order.astype(np.int64), sims[order]


class ALSModel(_FactorModel):
    """Weighted-regularised ALS (implicit ``AlternatingLeastSquares``), confidence
    ``1 + alpha * w`` with ``w`` binary/raw, optionally BM25-weighted.

    Defaults chosen on ml1m-general **valid** NDCG@10 (history = train, train items masked;
    bench/tune.py, rows in bench/results/tuning-ml1m-general-als.json), in stages:
    (1) 128 factors, no weighting, regularization {1, 10, 50, 200} x alpha {0, 1, 3, 10}:
    best reg 50, alpha 3 (0.2284); (2) factors {64, 128, 256} x reg {20, 50, 100} x alpha
    {2, 3, 5}: best 256 / 50 / 2 (0.2331), 128 / 50 / 2 0.2325; (3) BM25 weighting, 128
    factors, bm25_b {0, 0.3, 0.6} x alpha {0.7, 1, 1.5} x reg {30, 50, 80}: best b 0.3,
    alpha 1, reg 50 (0.2369); (4) the same with 256 factors: 15 iterations 0.2379 (9.7 s),
    25 iterations 0.2381 (17.7 s) -> 256 factors, 15 iterations (0.0002 below, half the time).
    """

    name: ClassVar[str] = "als"

    def __init__(
        self,
        factors: int = 256,
        regularization: float = 50.0,
        alpha: float = 1.0,
        iterations: int = 15,
        weighting: str = "bm25",
        bm25_k1: float = 100.0,
        bm25_b: float = 0.3,
        binary: bool = True,
        random_state: int = 42,
        num_threads: int = 0,
        use_gpu: bool = False,
    ) -> None:
        self.factors = factors
        self.regularization = regularization
        self.alpha = alpha
        self.iterations = iterations
        self.weighting = weighting
        self.bm25_k1 = bm25_k1
        self.bm25_b = bm25_b
        self.binary = binary
        self.random_state = random_state
        self.num_threads = num_threads
        self.use_gpu = use_gpu

    def fit(
        self,
        interactions: Interactions,
        side: SideData | None = None,
        valid: sp.csr_matrix | None = None,
    ) -> Self:
        """Factorise the confidence matrix ``1 + alpha * w`` (users x items csr)."""
        from implicit.als import AlternatingLeastSquares

        raw = self._raw(interactions.matrix)
        self._fit_weighting(raw)
        conf = self._weights(raw)
        conf.data = 1.0 + float(self.alpha) * conf.data
        with threadpool_limits(1, "blas"):
            model = AlternatingLeastSquares(
                factors=self.factors,
                regularization=self.regularization,
                alpha=1.0,
                iterations=self.iterations,
                random_state=self.random_state,
                num_threads=self.num_threads,
                use_gpu=self.use_gpu,
            )
            model.fit(conf, show_progress=False)
        self.user_factors_ = _as_numpy(model.user_factors)
        self.item_factors_ = _as_numpy(model.item_factors)
        self._remember_rows(raw)
        return self


class BPRModel(_FactorModel):
    """Bayesian personalised ranking (implicit ``BayesianPersonalizedRanking``, SGD with
    sampled negatives). The factors carry an item-bias column (user side fixed to 1).

    implicit draws each negative as the item of a random non-zero entry, i.e. proportionally to
    item popularity, so the learnt scores are pushed down by ``log q(i)`` for popular items.
    ``pop_correction`` (beta) adds ``beta * log(1 + count_i)`` to the item-bias column after
    fitting (the logQ correction of sampled-softmax training; beta = 1 is the theory): on
    ml1m-general valid this lifted NDCG@10 from 0.1435 to 0.2004 (64 factors, lr 0.01,
    reg 0.01, 50 epochs; beta 0 / 0.5 / 1 / 1.5: 0.1435 / 0.1916 / 0.2004 / 0.1953).

    Fold-in is the least-squares approximation described in the module docstring, with
    confidence ``1 + fold_in_alpha * w`` and ridge ``fold_in_reg``.

    Defaults chosen on ml1m-general **valid** NDCG@10 (bench/tune.py, rows in
    bench/results/tuning-ml1m-general-bpr.json), all with pop_correction 1 and reg 0.01:
    factors {64, 128} x learning_rate {0.01, 0.03} x iterations {30, 60}: best 128 / 0.03 / 30
    (0.2068; 64 / 0.01 / 60 0.2064; more epochs at 0.03 overfit: 60 -> 0.1995); then at
    128 / 0.03 / 30, regularization 0.003 0.1728, 0.03 0.1857 (256 factors: 0.1748 / 0.1846),
    so reg 0.01 stays. Fold-in (all 1,500 first valid users folded in, vs 0.2151 with their
    fitted vectors): fold_in_alpha {0, 1} x fold_in_reg {100, 300, 1000, 3000, 10000} ->
    best alpha 1, reg 3000 (0.2191; reg 100: 0.1959, reg 10000: 0.1732; the ridge is absolute,
    so it may need re-tuning for catalogues of a very different size). Training is hogwild
    SGD on ``num_threads`` threads: repeated fits vary by about +-0.001.
    """

    name: ClassVar[str] = "bpr"

    def __init__(
        self,
        factors: int = 128,
        learning_rate: float = 0.03,
        regularization: float = 0.01,
        iterations: int = 30,
        binary: bool = True,
        fold_in_alpha: float = 1.0,
        fold_in_reg: float = 3000.0,
        pop_correction: float = 1.0,
        random_state: int = 42,
        num_threads: int = 0,
        use_gpu: bool = False,
    ) -> None:
        self.factors = factors
        self.learning_rate = learning_rate
        self.regularization = regularization
        self.iterations = iterations
        self.binary = binary
        self.fold_in_alpha = fold_in_alpha
        self.fold_in_reg = fold_in_reg
        self.pop_correction = pop_correction
        self.random_state = random_state
        self.num_threads = num_threads
        self.use_gpu = use_gpu
        self.weighting = "none"
        self.alpha = fold_in_alpha

    def _fold_in_alpha(self) -> float:
        return float(self.fold_in_alpha)

    def _fold_in_reg(self) -> float:
        return float(self.fold_in_reg)

    def fit(
        self,
        interactions: Interactions,
        side: SideData | None = None,
        valid: sp.csr_matrix | None = None,
    ) -> Self:
        """Run BPR epochs on the binarised (or raw) users x items matrix."""
        from implicit.bpr import BayesianPersonalizedRanking

        raw = self._raw(interactions.matrix)
        with threadpool_limits(1, "blas"):
            model = BayesianPersonalizedRanking(
                factors=self.factors,
                learning_rate=self.learning_rate,
                regularization=self.regularization,
                iterations=self.iterations,
                random_state=self.random_state,
                num_threads=self.num_threads,
                use_gpu=self.use_gpu,
            )
            model.fit(raw, show_progress=False)
        self.user_factors_ = _as_numpy(model.user_factors)
        item_factors = _as_numpy(model.item_factors)
        if self.pop_correction:
            counts = np.bincount(raw.indices, minlength=raw.shape[1])
            item_factors[:, -1] += np.float32(self.pop_correction) * np.log1p(counts)
        self.item_factors_ = item_factors
        self._remember_rows(raw)
        return self

    def similar_items(self, item: int, n: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """Cosine similarity between item factor vectors, the bias column left out."""
        return _cosine_neighbours(self.item_factors_[:, :-1], item, n)
