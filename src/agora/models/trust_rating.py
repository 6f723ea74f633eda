"""Rating prediction with an optional trust graph: biased MF plus TrustSVD / SocialMF terms.

    r_ui = mu + b_u + b_i + q_i . (p_u + |T_u|^-1/2 sum_{v in T_u} w_v)

``T_u`` = the users u trusts (row u of ``trust``), ``w_v`` a second embedding per user: the
implicit influence of trusted users (Guo, Zhang & Yorke-Smith, TrustSVD, AAAI 2015, without its
SVD++ item term; ``trust_influence=False`` leaves it out). Besides L2 on the batch's
parameters the loss adds the SocialMF regulariser (Jamali & Ester, RecSys 2010)
``trust_reg * ||p_u - mean_{v in T_u} p_v||^2``, which pulls a user's taste towards the users
they trust. With ``trust=None`` (or no edges) both terms vanish and it is a plain biased MF,
so "with vs without trust" compares the same model.

Mini-batch Adam on squared error; with ``valid`` the epoch with the best valid RMSE is kept
(stop after ``patience`` epochs without improvement). Predictions are clipped to
[``min_rating``, ``max_rating``]. Not a :class:`~agora.models.base.Recommender` (it predicts
ratings, it does not rank); used by bench/ciaodvd_rating.py.
"""

from __future__ import annotations

from typing import Any, Self

import numpy as np
import scipy.sparse as sp


class TrustMF:
    """Biased MF with TrustSVD-style trust influence and a SocialMF trust regulariser."""

    def __init__(
        self,
        factors: int = 16,
        reg: float = 0.05,
        trust_reg: float = 0.5,
        trust_influence: bool = True,
        epochs: int = 60,
        batch_size: int = 1024,
        learning_rate: float = 0.005,
        patience: int = 5,
        min_rating: float = 1.0,
        max_rating: float = 5.0,
        random_state: int = 42,
        num_threads: int = 1,
    ) -> None:
        self.factors = factors
        self.reg = reg
        self.trust_reg = trust_reg
        self.trust_influence = trust_influence
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.patience = patience
        self.min_rating = min_rating
        self.max_rating = max_rating
        self.random_state = random_state
        self.num_threads = num_threads

    def fit(
        self,
        n_users: int,
        n_items: int,
        users: np.ndarray,
        items: np.ndarray,
        ratings: np.ndarray,
        trust: sp.csr_matrix | None = None,
        valid: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    ) -> Self:
        """Fit on parallel index arrays; ``trust`` is n_users x n_users (row u: whom u trusts)."""
        import torch

        threads = torch.get_num_threads()
        torch.set_num_threads(max(1, int(self.num_threads)))
        try:
            self._fit(n_users, n_items, users, items, ratings, trust, valid)
        finally:
            torch.set_num_threads(threads)
        return self

    def _fit(self, n_users, n_items, users, items, ratings, trust, valid) -> None:  # noqa: ANN001
        import torch

        torch.manual_seed(int(self.random_state))
        gen = torch.Generator().manual_seed(int(self.random_state))
        d = int(self.factors)
        u = torch.as_tensor(np.asarray(users, np.int64))
        i = torch.as_tensor(np.asarray(items, np.int64))
        r = torch.as_tensor(np.asarray(ratings, np.float32))
        mu = float(r.mean())
        p = torch.nn.Parameter(torch.randn(n_users, d) * 0.01)
        q = torch.nn.Parameter(torch.randn(n_items, d) * 0.01)
        w = torch.nn.Parameter(torch.randn(n_users, d) * 0.01)
        bu = torch.nn.Parameter(torch.zeros(n_users))
        bi = torch.nn.Parameter(torch.zeros(n_items))
        t_sqrt, t_mean, has_t, use_trust = _trust_operators(trust, n_users)
        opt = torch.optim.Adam([p, q, w, bu, bi], lr=float(self.learning_rate))

        def user_vectors() -> torch.Tensor:
            return p + torch.sparse.mm(t_sqrt, w) if use_trust and self.trust_influence else p

        def predict(uu: torch.Tensor, ii: torch.Tensor, vecs: torch.Tensor) -> torch.Tensor:
            return mu + bu[uu] + bi[ii] + (vecs[uu] * q[ii]).sum(1)

        vu = vi = vr = None
        if valid is not None:
            vu, vi, vr = (torch.as_tensor(np.asarray(a)) for a in valid)
            vr = vr.float()
        best, best_state, bad = np.inf, None, 0
        self.curve_valid_rmse_ = []
        bs = int(self.batch_size)
        for _epoch in range(int(self.epochs)):
            perm = torch.randperm(len(r), generator=gen)
            for start in range(0, len(r), bs):
                b = perm[start : start + bs]
                ub, ib = u[b], i[b]
                vecs = user_vectors()
                err = predict(ub, ib, vecs) - r[b]
                loss = (err**2).mean()
                l2 = (p[ub] ** 2).sum(1) + (q[ib] ** 2).sum(1) + bu[ub] ** 2 + bi[ib] ** 2
                if use_trust and self.trust_influence:
                    l2 = l2 + (w[ub] ** 2).sum(1)
                loss = loss + float(self.reg) * l2.mean()
                if use_trust and self.trust_reg > 0:
                    diff = (p[ub] - torch.sparse.mm(t_mean, p)[ub]) * has_t[ub, None]
                    loss = loss + float(self.trust_reg) * (diff**2).sum(1).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
            if vu is not None:
                with torch.no_grad():
                    pred = predict(vu, vi, user_vectors()).clamp(self.min_rating, self.max_rating)
                    rmse = float(((pred - vr) ** 2).mean().sqrt())
                self.curve_valid_rmse_.append(rmse)
                if rmse < best:
                    best, bad = rmse, 0
                    best_state = [x.detach().clone() for x in (p, q, w, bu, bi)]
                else:
                    bad += 1
                    if bad >= int(self.patience):
                        break
        if best_state is not None:
            with torch.no_grad():
                for x, saved in zip((p, q, w, bu, bi), best_state, strict=True):
                    x.copy_(saved)
        self.best_valid_rmse_ = float(best)
        self.best_epoch_ = int(np.argmin(self.curve_valid_rmse_)) + 1 if best_state else -1
        with torch.no_grad():
            self.user_vectors_ = user_vectors().numpy().copy()
        self.item_factors_ = q.detach().numpy().copy()
        self.user_bias_ = bu.detach().numpy().copy()
        self.item_bias_ = bi.detach().numpy().copy()
        self.global_mean_ = mu

    def predict(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Predicted ratings for index pairs, clipped to the rating range."""
        users, items = np.asarray(users, np.int64), np.asarray(items, np.int64)
        dot = np.einsum("ij,ij->i", self.user_vectors_[users], self.item_factors_[items])
        pred = self.global_mean_ + self.user_bias_[users] + self.item_bias_[items] + dot
        return np.clip(pred, self.min_rating, self.max_rating)


def rmse_mae(pred: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    err = np.asarray(pred, np.float64) - np.asarray(truth, np.float64)
    return float(np.sqrt(np.mean(err**2))), float(np.mean(np.abs(err)))


def _trust_operators(trust: Any, n_users: int) -> tuple[Any, Any, Any, bool]:
    """The trust graph (0/1, no self-trust) as torch sparse matrices with each row scaled by
    1/sqrt(out-degree) (the trusted users' influence on a user's vector) and 1/out-degree
    (their mean, for the trust regulariser), whether each user trusts anyone, and whether
    anyone trusts anyone."""
    import torch

    t = sp.csr_matrix((n_users, n_users), dtype=np.float32)
    if trust is not None:
        t = sp.csr_matrix(trust, dtype=np.float32)
        t.setdiag(0)
        t.eliminate_zeros()
        t.data[:] = 1.0
    n_trusted = np.diff(t.indptr).astype(np.float32)
    has = n_trusted > 0
    inv_sqrt = np.where(has, 1.0 / np.sqrt(np.maximum(n_trusted, 1)), 0.0)
    inv = np.where(has, 1.0 / np.maximum(n_trusted, 1), 0.0)
    coo = t.tocoo()

    def spt(scale: np.ndarray) -> torch.Tensor:
        idx = torch.from_numpy(np.stack([coo.row, coo.col]).astype(np.int64))
        vals = torch.from_numpy((scale[coo.row] * coo.data).astype(np.float32))
        shape = (n_users, n_users)
        return torch.sparse_coo_tensor(idx, vals, shape, check_invariants=False).coalesce()

    return spt(inv_sqrt), spt(inv), torch.from_numpy(has.astype(np.float32)), t.nnz > 0
