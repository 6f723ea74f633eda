"""EASE: embarrassingly shallow autoencoder (Steck, WWW 2019), closed form.

``P = (X^T X + reg * I)^-1``, ``B = I - P / diag(P)`` (column-wise), diagonal of ``B`` zero;
``scores = history @ B``. Items nobody interacted with in training get all-zero rows/columns
in ``B`` exactly, so the Gram matrix is built only over ``active_items_`` (the items with at
least one training interaction): exact, and much cheaper on long-tail catalogues.
Float64 below ``float32_above`` active items, float32 above (memory and time dominate there).

Default ``reg`` chosen on ml1m-general **valid** NDCG@10 (history = train, train items masked;
bench/tune.py, rows in bench/results/tuning-ml1m-general-ease.json): reg in {200, 400, 600,
800, 1000, 1500, 2000, 3000} -> 0.2288 / 0.2344 / 0.2348 / 0.2351 / 0.2344 / 0.2323 / 0.2294 /
0.2248, so reg=800.

``dropout`` p > 0 gives EDLAE (Steck, NeurIPS 2020, full-rank case: the emphasised denoising
linear autoencoder with dropout p has the EASE solution with the item-specific ridge
``reg + p / (1 - p) * (X^T X)_ii``, so popular items are regularised more). On ml1m-general
valid: reg 400 / p 0.2 0.2365 (reg 300 / p 0.2 0.2354, 200 / 0.33 0.2357, 100 / 0.5 0.2349;
EASE reg 800 0.2351); the default stays plain EASE, the hybrid uses the EDLAE setting.
"""

from __future__ import annotations

from typing import ClassVar, Self

import numpy as np
import scipy.sparse as sp

from agora.features.interactions import Interactions, SideData, as_float32
from agora.models.base import Recommender, check_dense_catalogue


class EASEModel(Recommender):
    """Linear item-item autoencoder with a zero-diagonal constraint, L2 weight ``reg``."""

    name: ClassVar[str] = "ease"

    def __init__(
        self,
        reg: float = 800.0,
        binary: bool = True,
        float32_above: int = 6000,
        dropout: float = 0.0,
        max_items: int = 25_000,
    ) -> None:
        self.reg = reg
        self.max_items = max_items
        self.dropout = dropout
        self.binary = binary
        self.float32_above = float32_above

    def fit(
        self,
        interactions: Interactions,
        side: SideData | None = None,
        valid: sp.csr_matrix | None = None,
    ) -> Self:
        """Solve for ``weights_`` (active x active) in closed form."""
        x = as_float32(interactions.matrix, self.binary)
        active = np.flatnonzero(np.diff(sp.csc_matrix(x).indptr) > 0)
        check_dense_catalogue(self.name, len(active), self.max_items, 4)
        xa = sp.csr_matrix(x[:, active])
        dtype = np.float32 if len(active) > self.float32_above else np.float64
        gram = (xa.T @ xa).toarray().astype(dtype)
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        # EDLAE: dropout emphasis adds p / (1 - p) * G_ii to each item's own ridge
        emphasis = self.dropout / (1.0 - self.dropout)
        gram[np.diag_indices_from(gram)] += (self.reg + emphasis * np.diag(gram)).astype(dtype)
        # inverse of a symmetric positive definite matrix via Cholesky (potrf + potri); scipy.linalg
        # imported here, where it is used: every server, worker and command loads this module
        import scipy.linalg as la

        potrf, potri = la.get_lapack_funcs(("potrf", "potri"), (gram,))
        c, info = potrf(gram, lower=False, overwrite_a=True, clean=False)
        if info != 0:
            raise np.linalg.LinAlgError(f"Cholesky failed (info={info}); increase reg")
        p, info = potri(c, lower=False, overwrite_c=True)
        if info != 0:
            raise np.linalg.LinAlgError(f"inverse failed (info={info})")
        p = np.triu(p) + np.triu(p, 1).T  # potri fills only the upper triangle
        diag = np.diag(p).copy()
        p /= -diag[None, :]
        p[np.diag_indices_from(p)] = 0.0
        self.weights_ = p.astype(np.float32)
        self.active_items_ = active.astype(np.int64)
        self.n_items_ = int(interactions.n_items)
        return self

    def score(
        self, users: np.ndarray, history: sp.csr_matrix, times: sp.csr_matrix | None = None
    ) -> np.ndarray:
        """``history @ B`` (items without training data score 0)."""
        h = as_float32(history, self.binary)[:, self.active_items_]
        out = np.zeros((h.shape[0], self.n_items_), dtype=np.float32)
        out[:, self.active_items_] = h @ self.weights_
        return out

    def similar_items(self, item: int, n: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """Items with the largest weight ``B[item, j]`` (how much ``item`` predicts ``j``)."""
        pos = np.searchsorted(self.active_items_, item)
        if pos >= len(self.active_items_) or self.active_items_[pos] != item:
            return np.empty(0, np.int64), np.empty(0)
        row = self.weights_[pos].astype(np.float64)
        row[pos] = -np.inf
        n = min(n, len(row) - 1)
        order = np.argsort(-row, kind="stable")[:n]
        return self.active_items_[order], row[order]
