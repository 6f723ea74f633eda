"""Learned hybrid: a weighted sum of member models' per-user normalised scores.

``HybridModel(members={"ease": {...}, "als": {...}})`` fits every member (any registered model,
looked up by name, so sequential or social models plug in unchanged) on train, then learns
fusion weights on the ``valid`` matrix passed to ``fit``::

    s(u, i) = sum_m  w[b(u), m] * norm_m(u, i),      w[b, :] on the simplex (>= 0, sum 1)

* ``norm`` (``normalize``): ``"zscore"`` (default) standardises each user's row of a member's
  scores over the items not in the user's history; ``"rank"`` replaces scores by reciprocal-rank
  fusion ``1 / (rank_offset + rank)`` (rank 0 = best non-history item); ``"none"`` keeps raw.
* ``b(u)`` is the user's history-length bucket: ``history_buckets`` buckets with edges at the
  quantiles of the history lengths of the users weights are learnt on (``bucket_edges_``), so
  ``alpha`` may depend on how much history the user has (the issue's
  ``s = alpha * attention + (1 - alpha) * content``). A bucket with fewer than
  ``min_bucket_users`` users takes the weights learnt on all users.
* Weights: every point of the simplex grid with spacing ``step`` is scored by valid NDCG@``k``
  (history = train, history items masked) per user; each bucket takes the point with the best
  mean over its users. With more than ``max_grid`` grid points, coordinate search from the
  uniform point (move ``step`` of weight between two members while valid NDCG improves).
  ``valid_ndcg_`` is that in-sample figure; ``valid_ndcg_cv_`` is an honest two-fold estimate
  (weights chosen on one half of the users, scored on the other, averaged) used by ``agora eval
  --model auto`` to compare a blend with single models fairly.

Without ``valid`` (``agora train``): one random item of every user with at least 3 items is held
out of train (seed ``holdout_seed``), members are fitted on the rest, weights are learnt on the
held-out items, then the members are fitted again on all of train.

``score(users, history, times)`` fuses the members' own ``score`` on the same arguments, so their
history handling (fold-in, new events, event order) carries over. ``similar_items`` comes from
the first member (in ``members`` order) that implements it. ``save`` writes each member with its
own ``save`` into ``members/<index>-<key>/`` and the weights as arrays (no pickle).

Member keys are registry names, or ``"name:label"`` to use one model twice with different
parameters (``{"als": {}, "als:big": {"factors": 512}}``).
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import scipy.sparse as sp

from agora.features.interactions import Interactions, SideData, hold_out_one
from agora.models.base import Recommender

#: Chosen on ml1m-general valid (see the class docstring): ALS, EDLAE (EASE with dropout
#: emphasis), item-KNN and ADMM-SLIM, shipped default parameters otherwise.
DEFAULT_MEMBERS: dict[str, dict[str, Any]] = {
    "als": {},
    "ease": {"reg": 400.0, "dropout": 0.2},
    "itemknn": {},
    "admmslim": {},
}
_LOW = -10.0  # normalised score given to items a member scored -inf / NaN


def member_name(key: str) -> str:
    """Registry name of a member key (``"als:big"`` -> ``"als"``)."""
    return key.split(":", 1)[0]


def normalize_scores(
    scores: np.ndarray, history: sp.csr_matrix, method: str, rank_offset: float = 60.0
) -> np.ndarray:
    """Per-row normalised float32 scores; history items are ignored for the statistics."""
    s = np.array(scores, dtype=np.float32, copy=True)
    if method == "none":
        s[~np.isfinite(s)] = _LOW
        return s
    hist = sp.csr_matrix(history)
    rows, cols = hist.nonzero()
    bad = ~np.isfinite(s)
    s[rows, cols] = np.nan
    s[bad] = np.nan
    if method == "zscore":
        mean = np.nanmean(s, axis=1, keepdims=True)
        std = np.nanstd(s, axis=1, keepdims=True)
        mean = np.where(np.isfinite(mean), mean, 0.0)
        std = np.where(np.isfinite(std) & (std > 1e-12), std, 1.0)
        s -= mean
        s /= std
        s[np.isnan(s)] = _LOW
        return s
    if method == "rank":
        s[np.isnan(s)] = -np.inf
        order = np.argsort(-s, axis=1, kind="stable")
        ranks = np.empty_like(order)
        np.put_along_axis(ranks, order, np.arange(s.shape[1])[None, :], axis=1)
        out = (1.0 / (rank_offset + ranks)).astype(np.float32)
        out[~np.isfinite(s)] = 0.0
        return out
    raise ValueError(f"normalize must be 'zscore', 'rank' or 'none', got {method!r}")


def simplex_grid(n: int, step: float) -> np.ndarray:
    """All weight vectors of length ``n`` with entries multiple of ``step`` summing to 1."""
    units = round(1.0 / step)
    pts = [c for c in itertools.product(range(units + 1), repeat=n - 1) if sum(c) <= units]
    return np.array([[*c, units - sum(c)] for c in pts], dtype=np.float64) / units


def ndcg_per_user(
    fused: np.ndarray, history: sp.csr_matrix, truth: sp.csr_matrix, k: int
) -> np.ndarray:
    """NDCG@k of each row of ``fused`` against ``truth`` (history entries masked)."""
    s = np.array(fused, dtype=np.float32, copy=True)
    rows, cols = history.nonzero()
    s[rows, cols] = -np.inf
    k = min(k, s.shape[1])
    top = np.argpartition(-s, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(s, top, axis=1), axis=1, kind="stable")
    top = np.take_along_axis(top, order, axis=1)
    finite = np.isfinite(np.take_along_axis(s, top, axis=1))
    truth = sp.csr_matrix(truth)
    truth.sort_indices()
    n = s.shape[1]
    keys = np.repeat(np.arange(truth.shape[0], dtype=np.int64), np.diff(truth.indptr)) * n
    keys += truth.indices
    probe = np.arange(s.shape[0], dtype=np.int64)[:, None] * n + top
    pos = np.clip(np.searchsorted(keys, probe), 0, max(len(keys) - 1, 0))
    hits = (keys[pos] == probe if len(keys) else np.zeros(probe.shape, bool)) & finite
    disc = 1.0 / np.log2(np.arange(2, k + 2))
    n_rel = np.diff(truth.indptr)
    idcg = np.concatenate([[1.0], np.cumsum(disc)])[np.minimum(n_rel, k)]
    idcg[n_rel == 0] = 1.0
    return (hits * disc).sum(axis=1) / idcg


class HybridModel(Recommender):
    """Fusion of registered models with weights learnt on valid NDCG@k, per history bucket.

    Defaults chosen on ml1m-general **valid** NDCG@10 (history = train; in-sample / two-fold
    ``valid_ndcg_cv_``), z-score normalisation, step 0.1:

    * members als + ease (reg 800) + itemknn: 1 bucket 0.2418 / 0.2415 (weights 0.7 / 0.3 / 0),
      3 buckets 0.2425 / 0.2419, 4 buckets 0.2427 / 0.2405; rank fusion instead of z-scores:
      1 bucket 0.2411 / 0.2408, 3 buckets 0.2420 / 0.2413;
    * members als + ease (EDLAE: reg 400, dropout 0.2) + itemknn: 1 bucket 0.2426 / 0.2426
      (weights 0.6 / 0.4 / 0), 3 buckets 0.2428 / 0.2423 (itemknn gets 0.4 for histories of
      109+ items, 0 below);
    * the same + admmslim (shipped defaults): 1 bucket 0.2455 / 0.2455 (weights 0.5 / 0.3 / 0 /
      0.2); in place of admmslim, RP3beta got weight 0 and Mult-VAE gave 0.2432 / 0.2419
      (experiments in the admmslim module docstring);

    so the defaults are als + EDLAE + itemknn + admmslim with one bucket (members alone: als
    0.2379, EDLAE 0.2365, admmslim 0.2332, ease 0.2351, itemknn 0.1975). History buckets help
    little on ML-1M, where every user has at least 10 items; they are there for members whose
    strength depends on history length (sequential or social models, cold users). Test figures
    (ml1m-general, a seed-7 re-split of it, lastfm-social) with fit seconds and peak memory:
    bench/results/hybrid.json.
    """

    name: ClassVar[str] = "hybrid"

    def __init__(
        self,
        members: dict[str, dict[str, Any]] | None = None,
        normalize: str = "zscore",
        history_buckets: int = 1,
        step: float = 0.1,
        k: int = 10,
        min_bucket_users: int = 200,
        max_grid: int = 300,
        max_users: int = 20_000,
        rank_offset: float = 60.0,
        holdout_seed: int = 0,
        random_state: int = 0,
    ) -> None:
        self.members = dict(DEFAULT_MEMBERS if members is None else members)
        self.normalize = normalize
        self.history_buckets = history_buckets
        self.step = step
        self.k = k
        self.min_bucket_users = min_bucket_users
        self.max_grid = max_grid
        self.max_users = max_users
        self.rank_offset = rank_offset
        self.holdout_seed = holdout_seed
        self.random_state = random_state
        self._models: list[Recommender] = []
        if not self.members:
            raise ValueError("hybrid needs at least one member")
        from agora.models.registry import model_class

        classes = [model_class(member_name(key)) for key in self.members]
        # a sequential member needs event order at test time, so the blend asks for it too
        self.sequential = any(getattr(c, "sequential", False) for c in classes)

    # -- fitting ----------------------------------------------------------------------------
    def _new_members(self) -> list[Recommender]:
        from agora.models.registry import create_model

        return [create_model(member_name(key), **params) for key, params in self.members.items()]

    def _fit_members(
        self, interactions: Interactions, side: SideData | None, valid: sp.csr_matrix | None
    ) -> list[Recommender]:
        models, seconds = [], []
        for model in self._new_members():
            t0 = time.perf_counter()
            model.fit(interactions, side, valid=valid)
            seconds.append(time.perf_counter() - t0)
            models.append(model)
        self.member_fit_seconds_ = np.asarray(seconds, dtype=np.float64)
        return models

    def fit(
        self,
        interactions: Interactions,
        side: SideData | None = None,
        valid: sp.csr_matrix | None = None,
    ) -> Self:
        """Fit the members on train, learn the weights on ``valid`` (or an internal holdout)."""
        if valid is not None and sp.csr_matrix(valid).nnz > 0:
            models = self._fit_members(interactions, side, valid)
            self.fit_weights(models, interactions.matrix, valid, interactions.last_seen)
            self.weights_source_ = "valid"
            return self
        sub, held = hold_out_one(interactions, self.holdout_seed)
        probe = self._fit_members(sub, side, held)
        self.fit_weights(probe, sub.matrix, held, sub.last_seen)
        self._models = self._fit_members(interactions, side, None)
        self.weights_source_ = "holdout"
        return self

    def fit_weights(
        self,
        models: list[Recommender],
        history: sp.csr_matrix,
        valid: sp.csr_matrix,
        times: sp.csr_matrix | None = None,
    ) -> Self:
        """Learn ``weights_`` for already fitted ``models`` (one per member, in order):
        rank all items for every user with a ``valid`` item, ``history`` as history (and
        ``times``, its event times, for sequential members)."""
        if len(models) != len(self.members):
            raise ValueError(f"expected {len(self.members)} fitted members, got {len(models)}")
        self._models = list(models)
        history = sp.csr_matrix(history)
        valid = sp.csr_matrix(valid)
        valid.data[:] = 1.0
        self.n_items_ = int(history.shape[1])
        self.member_keys_ = np.asarray(list(self.members), dtype=str)
        rng = np.random.default_rng(self.random_state)
        users = self._sample_users(valid, rng)
        hist_u = history[users]
        times_u = sp.csr_matrix(times)[users] if times is not None else None
        truth = valid[users]
        lengths = np.diff(hist_u.indptr)
        nb = max(1, int(self.history_buckets))
        edges = np.quantile(lengths, np.arange(1, nb) / nb) if len(users) else np.zeros(nb - 1)
        self.bucket_edges_ = np.unique(np.asarray(edges, dtype=np.float64))
        bucket = np.searchsorted(self.bucket_edges_, lengths, side="right")
        n_b = len(self.bucket_edges_) + 1

        normed = self._normalized_scores(users, hist_u, times_u)
        m = len(normed)

        cache: dict[tuple[float, ...], np.ndarray] = {}

        def per_user(w: np.ndarray) -> np.ndarray:
            key = tuple(np.round(w, 9))
            if key not in cache:
                fused = np.zeros(normed[0].shape, dtype=np.float32)
                for wi, z in zip(w, normed, strict=True):
                    if wi:
                        fused += np.float32(wi) * z
                cache[key] = ndcg_per_user(fused, hist_u, truth, self.k)
            return cache[key]

        if m == 1:
            points = np.ones((1, 1))
        elif len(simplex_grid(m, self.step)) <= self.max_grid:
            points = simplex_grid(m, self.step)
        else:
            points = self._coordinate_points(m, per_user, bucket, n_b)
        table = np.stack([per_user(w) for w in points])  # points x users
        self.member_valid_ndcg_ = np.array(
            [per_user(np.eye(m)[i]).mean() if len(users) else 0.0 for i in range(m)]
        )

        def choose(cols: np.ndarray) -> np.ndarray:
            return _best_per_bucket(table, bucket, n_b, cols, self.min_bucket_users)

        all_users = np.arange(len(users))
        best = choose(all_users)
        self.weights_ = points[best].astype(np.float64)
        self.bucket_users_ = np.bincount(bucket, minlength=n_b).astype(np.int64)
        chosen = table[best[bucket], all_users] if len(users) else np.zeros(0)
        self.valid_ndcg_ = float(chosen.mean()) if len(users) else 0.0
        self.bucket_valid_ndcg_ = np.array(
            [chosen[bucket == b].mean() if np.any(bucket == b) else 0.0 for b in range(n_b)]
        )
        # two-fold estimate: choose on one half of the users, score on the other
        fold = rng.permutation(len(users)) % 2
        cv = np.zeros(len(users))
        for f in (0, 1):
            pick = choose(all_users[fold == f])
            other = all_users[fold != f]
            cv[other] = table[pick[bucket[other]], other]
        self.valid_ndcg_cv_ = float(cv.mean()) if len(users) else 0.0
        self.valid_users_ = int(len(users))
        return self

    def _sample_users(self, valid: sp.csr_matrix, rng: np.random.Generator) -> np.ndarray:
        """The users with a validation item, a random sample of them past the cap (which
        keeps users x items score matrices near 50M cells)."""
        users = np.flatnonzero(np.diff(valid.indptr) > 0)
        cap = min(self.max_users, max(1000, 50_000_000 // max(self.n_items_, 1)))
        if len(users) > cap:
            users = np.sort(rng.choice(users, cap, replace=False))
        return users

    def _normalized_scores(
        self, users: np.ndarray, hist_u: sp.csr_matrix, times_u: sp.csr_matrix | None
    ) -> list[np.ndarray]:
        """Each member's scores of every item for ``users`` (in blocks of 2048 users),
        normalised so that members are comparable."""
        normed = []
        for model in self._models:
            parts = []
            for start in range(0, len(users), 2048):
                sl = slice(start, start + 2048)
                t_sl = times_u[sl] if times_u is not None else None
                raw = model.score(users[sl], hist_u[sl], t_sl)
                parts.append(normalize_scores(raw, hist_u[sl], self.normalize, self.rank_offset))
            normed.append(np.concatenate(parts) if parts else np.zeros((0, self.n_items_)))
        return normed

    def _coordinate_points(self, m: int, per_user, bucket, n_b) -> np.ndarray:  # noqa: ANN001
        """Points visited by a global coordinate search (pairwise weight moves)."""
        w = np.full(m, 1.0 / m)
        visited = [w.copy()]
        best = per_user(w).mean()
        improved = True
        while improved:
            improved = False
            for i, j in itertools.permutations(range(m), 2):
                if w[j] < self.step - 1e-12:
                    continue
                cand = w.copy()
                cand[i] += self.step
                cand[j] -= self.step
                visited.append(cand)
                val = per_user(cand).mean()
                if val > best + 1e-9:
                    best, w, improved = val, cand, True
        visited += list(np.eye(m))
        return np.unique(np.round(np.array(visited), 9), axis=0)

    # -- scoring ----------------------------------------------------------------------------
    def bucket_of(self, history: sp.csr_matrix) -> np.ndarray:
        """History-length bucket of each row."""
        lengths = np.diff(sp.csr_matrix(history).indptr)
        return np.searchsorted(self.bucket_edges_, lengths, side="right")

    def score(
        self, users: np.ndarray, history: sp.csr_matrix, times: sp.csr_matrix | None = None
    ) -> np.ndarray:
        """``sum_m w[bucket(u), m] * norm(member_m.score(users, history, times))``."""
        history = sp.csr_matrix(history)
        w = self.weights_[self.bucket_of(history)]  # rows x members
        out = np.zeros((history.shape[0], self.n_items_), dtype=np.float32)
        for m, model in enumerate(self._models):
            if not np.any(w[:, m]):
                continue
            raw = model.score(users, history, times)
            z = normalize_scores(raw, history, self.normalize, self.rank_offset)
            out += w[:, m : m + 1].astype(np.float32) * z
        return out

    def similar_items(self, item: int, n: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """Neighbours from the first member that implements ``similar_items``."""
        for model in self._models:
            try:
                return model.similar_items(item, n)
            except NotImplementedError:
                continue
        raise NotImplementedError("no member of this hybrid implements similar_items")

    def describe(self) -> dict[str, Any]:
        """Learned weights per bucket, readable (for reports and logs)."""
        edges = [float(e) for e in self.bucket_edges_]
        bounds = [-np.inf, *edges, np.inf]
        return {
            "members": list(self.members),
            "buckets": [
                {
                    "history_len": f"[{bounds[b]:g}, {bounds[b + 1]:g})",
                    "users": int(self.bucket_users_[b]),
                    "weights": {
                        key: round(float(v), 4)
                        for key, v in zip(self.members, self.weights_[b], strict=True)
                    },
                    "valid_ndcg": round(float(self.bucket_valid_ndcg_[b]), 4),
                }
                for b in range(len(self.weights_))
            ],
            "member_valid_ndcg": {
                key: round(float(v), 4)
                for key, v in zip(self.members, self.member_valid_ndcg_, strict=True)
            },
            "valid_ndcg": round(self.valid_ndcg_, 4),
            "valid_ndcg_cv": round(self.valid_ndcg_cv_, 4),
            "weights_source": getattr(self, "weights_source_", "valid"),
        }

    @property
    def fitted_members(self) -> list[Recommender]:
        """The fitted member models, in ``members`` order."""
        return list(self._models)

    def use_members(self, models: list[Recommender]) -> Self:
        """Keep the learnt weights with ``models`` (one per member, in order) in place of the
        fitted members: the same members fitted again on more data (``agora train --model
        auto``), as :meth:`fit` does without ``valid``."""
        if len(models) != len(self.members):
            raise ValueError(f"expected {len(self.members)} fitted members, got {len(models)}")
        self._models = list(models)
        return self

    # -- erasure --------------------------------------------------------------------------
    def forget_users(self, rows: np.ndarray) -> None:
        """Each member forgets the users (the fusion weights are per bucket, not per user)."""
        for model in self._models:
            model.forget_users(rows)

    # -- persistence ------------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        """Own state via the base class, each member into ``members/<i>-<key>/``."""
        path = Path(path)
        super().save(path)
        for i, (key, model) in enumerate(zip(self.members, self._models, strict=True)):
            model.save(path / "members" / f"{i}-{key.replace(':', '_')}")

    @classmethod
    def load(cls, path: str | Path) -> Self:
        """Read a hybrid written by ``save`` (members through their own ``load``)."""
        from agora.models.registry import model_class

        path = Path(path)
        model = super().load(path)
        model._models = [
            model_class(member_name(key)).load(path / "members" / f"{i}-{key.replace(':', '_')}")
            for i, key in enumerate(model.members)
        ]
        return model


def _best_per_bucket(
    table: np.ndarray, bucket: np.ndarray, n_b: int, cols: np.ndarray, min_users: int
) -> np.ndarray:
    """Best point (row of ``table``, points x users) per history bucket over the users
    ``cols``; a bucket with fewer than ``min_users`` of them takes the best point overall."""
    glob = int(np.argmax(table[:, cols].mean(axis=1))) if len(cols) else 0
    best = np.full(n_b, glob)
    for b in range(n_b):
        sel = cols[bucket[cols] == b]
        if len(sel) >= min_users:
            best[b] = int(np.argmax(table[:, sel].mean(axis=1)))
    return best
