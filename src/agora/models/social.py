"""Graph models in PyTorch: LightGCN and a social variant with learned relation attention.

**LightGCN** (He et al., SIGIR 2020), name ``"lightgcn"``: free embeddings ``E^0`` for users and
items, propagated over the joint user-item graph with the symmetric normalisation
``A_hat = D^-1/2 A D^-1/2`` and no transformation or nonlinearity, ``E^{l+1} = A_hat E^l``;
the final embedding of a node is the mean of its layers ``E^0..E^L``, the score a dot product.
Training is full-batch sparse propagation (``torch.sparse.mm``) at every mini-batch of positive
pairs with a sampled-softmax loss over cosine similarities (uniform negatives shared by the
batch; the item embeddings are then used unit-normalised for scoring) or BPR triples, L2 on the
batch's layer-0 embeddings.

**Social** (name ``"social"``), in the spirit of DiffNet / GraphRec / MHCN: at every layer a
user's new embedding adds to what the items say what their social neighbours say,

    e_u^{l+1} = (A_hat E^l)_u + g_u * sum_k a_uk^l e_k^l

with attention ``a_uk^l = softmax_k(MLP(f_uk) + c_l <e_u^l, e_k^l> / sqrt(d))`` over u's out-edges
in ``SideData.social`` and a gate ``g_u = social_weight * sigmoid(w . h_u)`` (0 for users
without social edges). The relation features ``f_uk`` are the edge weight (which carries the
edge type in the store: follow/friend/trust/interact weights add up), the co-interaction count
|I_u & I_k| and the Jaccard overlap of the two users' training items, and the interaction and
social degrees of u and k (logs, standardised over the edges); ``h_u`` holds u's interaction
and social degrees. Items propagate exactly as in LightGCN. Without social edges the gate is 0
and the attention parameters receive no gradient, and they are created after the embeddings
from the same seed, so with the same hyper-parameters the model trains exactly like
``lightgcn``: "social edges help" is measured by fitting the same model with and without
``side.social``. (A convex mix ``(1 - g_u) * items + g_u * friends`` was tried first: training
drives the gate down, since a user's own items explain their training positives better.)

Early stopping: with ``valid`` (users x items) the model is scored every ``eval_every`` epochs
by NDCG@10 on valid (train items masked, full ranking) and the best weights are kept (stop
after ``patience`` evaluations without improvement); without ``valid`` it runs ``epochs``.
``max_seconds``: no epoch starts that would end past it.

The friends weight (``social_weight``) is chosen on valid per data set: with ``"auto"`` (the
default) and ``valid``, ``social`` trains once per weight of :data:`SOCIAL_WEIGHTS` (0, 0.1,
0.3, in that order, each from the same seed, sharing ``max_seconds`` evenly among the weights
still to train) and keeps the one with the best valid NDCG@10. Weight 0 trains without the
social edges, exactly as ``lightgcn``, so the chosen model is never worse than ``lightgcn`` on
valid. A weight whose best valid NDCG@10 stays :data:`BEHIND` (2%) below what the leading
weight had reached by the same epoch for ``patience`` evaluations in a row is stopped.
``social_trials_`` (and ``describe()``) records every weight tried; ``social_weight_`` the one
kept. Without ``valid``, ``"auto"`` means :data:`UNVALIDATED_SOCIAL_WEIGHT`; a number is used
as given.

State kept for scoring (numpy, no pickle): the final user and item embeddings, the per-layer
embeddings and attention needed to fold in changed histories, the raw learned weights
(``w_<name>_``) and the training curve (``curve_*_``); ``save`` also writes
``training_curve.png`` beside the arrays.

Fold-in: users whose ``history`` row equals the one seen at ``fit`` use their learned
embedding; for a changed row (or an unknown user, index -1) the layers are recomputed with one
propagation step per layer from the history row against the stored item layer embeddings
(``e_u^{l+1} = sum_i e_i^l / sqrt(|h| d_i) + g_u sum_k a_uk^l e_k^l``; the social term
and ``e_u^0`` only for known users), so a new event changes the answer at once.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import scipy.sparse as sp

from agora.features.interactions import Interactions, SideData, as_float32
from agora.models.base import EpochCost, Recommender, warm_up_torch
from agora.models.implicit_mf import _cosine_neighbours, _row_signature
from agora.plots import plot_training_curve

N_FEATURES = 8  # relation features per social edge, see _edge_features
_NO_EDGES = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, N_FEATURES)))
#: The friends weights ``social_weight="auto"`` tries on valid, in this order; 0 is lightgcn.
SOCIAL_WEIGHTS: tuple[float, ...] = (0.0, 0.1, 0.3)
#: ``social_weight="auto"`` without ``valid`` to choose on: the weight lastfm-social valid chose.
UNVALIDATED_SOCIAL_WEIGHT = 0.1
#: A weight whose best valid NDCG@10 is this share below the leading weight's at the same
#: epoch, ``patience`` evaluations in a row, is stopped.
BEHIND = 0.02


def _edge_features(
    x: sp.csr_matrix, social: sp.csr_matrix
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Social out-edges (src, dst) without self-loops and their raw relation features."""
    s = sp.coo_matrix(social)
    keep = (s.row != s.col) & (s.data > 0)
    src, dst, w = s.row[keep].astype(np.int64), s.col[keep].astype(np.int64), s.data[keep]
    deg = np.diff(x.indptr).astype(np.float64)
    sdeg = np.bincount(src, minlength=x.shape[0]).astype(np.float64)
    # co-interaction counts on the edges only: row-wise dot products of binary rows
    co = np.asarray(x[src].multiply(x[dst]).sum(axis=1)).ravel() if len(src) else np.zeros(0)
    union = deg[src] + deg[dst] - co
    jac = np.where(union > 0, co / np.maximum(union, 1), 0.0)
    feats = np.stack(
        [
            np.log1p(w.astype(np.float64)),
            np.log1p(co),
            jac,
            np.log1p(deg[src]),
            np.log1p(deg[dst]),
            np.log1p(sdeg[src]),
            np.log1p(sdeg[dst]),
            (co > 0).astype(np.float64),
        ],
        axis=1,
    )
    return src, dst, feats


class LightGCNModel(Recommender):
    """LightGCN; the model in the module docstring. ``loss`` is ``"softmax"`` (sampled softmax
    over the cosines of the batch's positives and ``negatives`` uniform items shared by the
    batch, divided by ``temperature``) or ``"bpr"``; ``edge_dropout`` drops that share of
    user-item edges at every training step; ``social_weight`` and ``attention_hidden`` only
    matter for ``social``.

    Defaults chosen on lastfm-social **valid** NDCG@10 (1 thread, early stopping, every 3
    epochs, patience 4; fit seconds on 2 cores shared with other jobs; all runs in
    bench/results/social.json). BPR (batch 4096, lr 0.01) plateaus at 0.1688 (epoch 60 of up
    to 300), the earlier BPR / raw-dot softmax trials were no better. Cosine sampled softmax,
    1024 negatives, batch 4096: T 0.1, lr 0.005: 0.1754 (epoch 75, 485 s); T 0.15, lr 0.005:
    0.1773 (epoch 147, 645 s: too slow); T 0.15, lr 0.01: 0.1755 (epoch 126, 514 s); T 0.1,
    lr 0.01: 0.1753 (epoch 78, 188 s) -> T 0.1, lr 0.01; 2 layers at those settings: 0.1731,
    so 3. ``social`` at those settings, ``social_weight`` 0.1: 0.1772 (epoch 93, 616 s);
    0.3: 0.1734 (epoch 45) -> 0.1 (now :data:`UNVALIDATED_SOCIAL_WEIGHT`: with valid the
    weight is chosen per data set, module docstring); batch 8192 was worse for both weights
    (0.1701 / 0.1715) and no faster.
    ``epochs`` 120: the best epochs were 78-93, so early stopping ends the runs well before.
    """

    name: ClassVar[str] = "lightgcn"
    uses_social: ClassVar[bool] = False
    #: lastfm-social's best epochs were 78-93 (above).
    target_epochs: ClassVar[int] = 80

    def __init__(
        self,
        factors: int = 64,
        layers: int = 3,
        epochs: int = 120,
        batch_size: int = 4096,
        learning_rate: float = 0.01,
        reg: float = 1e-4,
        loss: str = "softmax",
        negatives: int = 1024,
        temperature: float = 0.1,
        edge_dropout: float = 0.0,
        attention_hidden: int = 16,
        social_weight: float | str = "auto",
        patience: int = 4,
        eval_every: int = 3,
        random_state: int = 42,
        num_threads: int = 2,
        progress: bool = True,
        max_seconds: float | None = None,
    ) -> None:
        self.factors = factors
        self.layers = layers
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.reg = reg
        self.loss = loss
        self.negatives = negatives
        self.temperature = temperature
        self.edge_dropout = edge_dropout
        self.attention_hidden = attention_hidden
        self.social_weight = social_weight
        self.patience = patience
        self.eval_every = eval_every
        self.random_state = random_state
        self.num_threads = num_threads
        self.progress = progress
        self.max_seconds = max_seconds  # a time budget: no epoch starts that would end past it

    # -- training -------------------------------------------------------------------------
    def fit(
        self,
        interactions: Interactions,
        side: SideData | None = None,
        valid: sp.csr_matrix | None = None,
    ) -> Self:
        """Train by mini-batch BPR / sampled softmax with full-graph propagation."""
        import torch

        if self.loss not in ("bpr", "softmax"):
            raise ValueError(f"loss must be 'bpr' or 'softmax', got {self.loss!r}")
        threads = torch.get_num_threads()
        torch.set_num_threads(max(1, min(int(self.num_threads), threads)))
        try:
            self._fit(interactions, side, valid)
        finally:
            torch.set_num_threads(threads)
        return self

    def _fit(
        self, interactions: Interactions, side: SideData | None, valid: sp.csr_matrix | None
    ) -> None:
        """One training per friends weight (:meth:`_weights`), each from the same seed; the
        one with the best valid NDCG@10 is kept, the others are recorded in ``social_trials_``."""
        x, (src, dst, feats) = self._graph_inputs(interactions, side)
        valid = sp.csr_matrix(valid) if valid is not None else None
        weights = self._weights(len(src) > 0, valid is not None)
        started = time.perf_counter()
        trials: list[dict[str, Any]] = []
        kept: dict[str, Any] | None = None  # the best run so far, its net and curves
        for n, weight in enumerate(weights):
            seconds = None
            if self.max_seconds is not None:  # what is left, shared by the weights to try
                spent = time.perf_counter() - started
                seconds = max(float(self.max_seconds) - spent, 0.0) / (len(weights) - n)
            edges = (src, dst, feats) if weight > 0 else _NO_EDGES  # weight 0: lightgcn
            leader = kept["curve_valid"] if kept is not None else None
            run = self._train(x, valid, weight, edges, seconds, leader)
            trials.append(
                {
                    "weight": weight,
                    "valid_ndcg@10": round(run["best_valid"], 6),
                    "best_epoch": run["best_epoch"],
                    "epochs_run": len(run["curve_loss"]),
                    "seconds": round(run["seconds"], 1),
                    "stopped": run["stopped"],
                }
            )
            if kept is None or run["best_valid"] > kept["best_valid"]:
                kept = run
        assert kept is not None
        self.fit_seconds_ = float(time.perf_counter() - started)
        self.social_weight_ = float(kept["weight"])
        self.social_trials_ = trials
        self.best_epoch_ = int(kept["best_epoch"])
        self.best_valid_ = float(kept["best_valid"])
        self.curve_loss_ = np.asarray(kept["curve_loss"], dtype=np.float64)
        self.curve_valid_ = np.asarray(kept["curve_valid"], dtype=np.float64)
        self._export(kept["net"], x, kept["src"])

    def _graph_inputs(
        self, interactions: Interactions, side: SideData | None
    ) -> tuple[sp.csr_matrix, tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """The binary interaction matrix and the social edges with their relation features
        (none for ``lightgcn`` or without ``side.social``)."""
        x = as_float32(interactions.matrix, binary=True)
        n_users = x.shape[0]
        social = sp.csr_matrix((n_users, n_users), dtype=np.float32)
        if self.uses_social and side is not None and side.social is not None:
            social = sp.csr_matrix(side.social, dtype=np.float32)
            if social.shape != (n_users, n_users):
                raise ValueError(f"side.social has shape {social.shape}, expected {n_users}^2")
        return x, _edge_features(x, social)

    def epoch_cost(
        self,
        interactions: Interactions,
        side: SideData | None = None,
        valid: sp.csr_matrix | None = None,
        seconds: float = 2.0,
    ) -> EpochCost:
        """Setup, one epoch (mini-batches timed for about ``seconds``, at least two, scaled to
        the epoch's) and one valid score, trained with the largest friends weight fit would
        try (a friends epoch costs more), once per weight :meth:`fit` would train."""
        import torch

        warm_up_torch()
        threads = torch.get_num_threads()
        torch.set_num_threads(max(1, min(int(self.num_threads), threads)))
        try:
            t0 = time.perf_counter()
            x, edges = self._graph_inputs(interactions, side)
            valid = sp.csr_matrix(valid) if valid is not None else None
            weights = self._weights(len(edges[0]) > 0, valid is not None)
            weight = max(weights)
            net, opt, gen, pos_u, pos_i = self._build(x, weight, edges if weight > 0 else _NO_EDGES)
            setup = time.perf_counter() - t0
            bs = int(self.batch_size)
            perm = torch.randperm(len(pos_u), generator=gen)
            steps = max(math.ceil(len(pos_u) / bs), 1)
            t0 = time.perf_counter()
            done = 0
            while done < steps and (done < 2 or time.perf_counter() - t0 < seconds):
                idx = perm[done * bs : (done + 1) * bs]
                self._step(net, opt, gen, pos_u[idx], pos_i[idx], x.shape[1])
                done += 1
            epoch = (time.perf_counter() - t0) / done * steps
            t0 = time.perf_counter()
            if valid is not None:
                users = np.flatnonzero(np.diff(valid.indptr) > 0)
                _valid_ndcg(net, x, valid, users, self._cosine)
            scoring = time.perf_counter() - t0 if valid is not None else 0.0
        finally:
            torch.set_num_threads(threads)
        return EpochCost(setup, epoch, scoring, max(1, int(self.eval_every)), len(weights))

    def _weights(self, has_edges: bool, has_valid: bool) -> list[float]:
        """The friends weights to train: 0 alone without social edges (or for ``lightgcn``);
        ``social_weight`` when it is a number; for ``"auto"`` :data:`SOCIAL_WEIGHTS` with
        ``valid`` to choose on, else :data:`UNVALIDATED_SOCIAL_WEIGHT`."""
        weight = self.social_weight
        if isinstance(weight, str) and weight != "auto":
            raise ValueError(f"social_weight must be a number or 'auto', got {weight!r}")
        if not self.uses_social or not has_edges:
            return [0.0]
        if weight != "auto":
            return [float(weight)]
        return list(SOCIAL_WEIGHTS) if has_valid else [UNVALIDATED_SOCIAL_WEIGHT]

    def _train(
        self,
        x: sp.csr_matrix,
        valid: sp.csr_matrix | None,
        weight: float,
        edges: tuple[np.ndarray, np.ndarray, np.ndarray],
        max_seconds: float | None,
        leader: list[float] | None,
    ) -> dict[str, Any]:
        """Train one friends weight from the seed; with ``valid`` keep its best epoch, and
        stop it once it is :data:`BEHIND` the ``leader``'s valid curve (the best weight so
        far) at the same epoch for ``patience`` evaluations in a row."""
        n_items = x.shape[1]
        net, opt, gen, pos_u, pos_i = self._build(x, weight, edges)
        valid_users = None
        if valid is not None:
            valid_users = np.flatnonzero(np.diff(valid.indptr) > 0)
        best = _BestEpoch(_running_best(leader) if leader is not None else None)
        curve_loss: list[float] = []
        curve_valid: list[float] = []
        stopped = "epochs"
        t0 = time.perf_counter()
        label = self.name if not self.uses_social else f"{self.name} weight {weight:g}"
        with _training_progress(self.progress, int(self.epochs), label) as (prog, task):
            for epoch in range(1, int(self.epochs) + 1):
                curve_loss.append(self._train_epoch(net, opt, gen, pos_u, pos_i, n_items))
                elapsed = time.perf_counter() - t0  # no epoch starts that would end past it:
                timed_out = max_seconds is not None and elapsed + elapsed / epoch > max_seconds
                last = timed_out or epoch == int(self.epochs)  # evaluated whatever eval_every
                metric = float("nan")
                if valid_users is not None and (epoch % max(1, int(self.eval_every)) == 0 or last):
                    metric = _valid_ndcg(net, x, valid, valid_users, self._cosine)
                    best.record(epoch, metric, net)
                curve_valid.append(metric)
                self._report_epoch(prog, task, label, epoch, curve_loss[-1], metric)
                reason = best.stop_reason(valid_users is not None, timed_out, int(self.patience))
                if reason is not None:
                    stopped = reason
                    break  # on time: the best evaluated epoch so far is kept (below)
        if best.snapshot is not None:
            net.restore(best.snapshot)
        return {
            "weight": float(weight),
            "net": net,
            "src": edges[0],
            "best_valid": float(best.metric) if best.snapshot is not None else float("nan"),
            "best_epoch": int(best.epoch) if best.snapshot is not None else len(curve_loss),
            "curve_loss": curve_loss,
            "curve_valid": curve_valid,
            "seconds": time.perf_counter() - t0,
            "stopped": stopped,
        }

    def _train_epoch(
        self, net: Any, opt: Any, gen: Any, pos_u: Any, pos_i: Any, n_items: int
    ) -> float:
        """One pass over the positive pairs in a random order (drawn from ``gen``), in
        mini-batches of ``batch_size``; the mean loss per pair."""
        import torch

        net.train()
        n_pos = len(pos_u)
        perm = torch.randperm(n_pos, generator=gen)
        total = 0.0
        bs = int(self.batch_size)
        for start in range(0, n_pos, bs):
            idx = perm[start : start + bs]
            loss = self._step(net, opt, gen, pos_u[idx], pos_i[idx], n_items)
            total += loss * len(idx)
        return total / max(n_pos, 1)

    def _report_epoch(
        self, prog: Any, task: Any, label: str, epoch: int, loss: float, metric: float
    ) -> None:
        """Tell ``on_epoch`` a validated epoch's NDCG@10 and move the progress bar on."""
        if self.on_epoch is not None and not math.isnan(metric):
            self.on_epoch(label, epoch, metric)
        prog.update(
            task,
            advance=1,
            description=f"{label} epoch {epoch} loss {loss:.4f}"
            + ("" if math.isnan(metric) else f" valid ndcg@10 {metric:.4f}"),
        )

    def _build(
        self,
        x: sp.csr_matrix,
        weight: float,
        edges: tuple[np.ndarray, np.ndarray, np.ndarray],
    ) -> tuple[Any, Any, Any, Any, Any]:
        """(net, optimiser, generator, positive users, positive items) for one training of
        friends weight ``weight``, seeded from ``random_state``."""
        import torch

        from agora.models._graph import GraphNet, normalised_adjacency

        n_users, n_items = x.shape
        torch.manual_seed(int(self.random_state))
        gen = torch.Generator().manual_seed(int(self.random_state))
        adj = normalised_adjacency(x)
        src, dst, feats = edges
        mu = feats.mean(axis=0) if len(feats) else np.zeros(N_FEATURES)
        sd = feats.std(axis=0) + 1e-6 if len(feats) else np.ones(N_FEATURES)
        deg = np.diff(x.indptr).astype(np.float64)
        sdeg = np.bincount(src, minlength=n_users).astype(np.float64)
        user_feats = np.stack([np.log1p(deg), np.log1p(sdeg)], axis=1)
        net = GraphNet(
            n_users,
            n_items,
            int(self.factors),
            int(self.layers),
            adj,
            src,
            dst,
            (feats - mu) / sd,
            user_feats,
            int(self.attention_hidden),
        )
        net.edge_dropout = float(self.edge_dropout)
        net.social_weight = float(weight)
        opt = torch.optim.Adam(net.parameters(), lr=float(self.learning_rate))
        coo = x.tocoo()
        pos_u = torch.from_numpy(coo.row.astype(np.int64))
        pos_i = torch.from_numpy(coo.col.astype(np.int64))
        return net, opt, gen, pos_u, pos_i

    def _step(self, net: Any, opt: Any, gen: Any, u: Any, i: Any, n_items: int) -> float:
        """One mini-batch of positive pairs (``u``, ``i``): propagate, loss, Adam step; the
        batch's mean loss."""
        import torch
        from torch.nn.functional import normalize

        users_e, items_e = net.propagate()
        eu, ei = users_e[u], items_e[i]
        if self.loss == "bpr":
            j = torch.randint(0, n_items, (len(u),), generator=gen)
            ej = items_e[j]
            diff = (eu * ei).sum(1) - (eu * ej).sum(1)
            main = torch.nn.functional.softplus(-diff).mean()
            reg_nodes = (net.user.weight[u], net.item.weight[i], net.item.weight[j])
        else:
            j = torch.randint(0, n_items, (int(self.negatives),), generator=gen)
            eu, ei = normalize(eu, dim=1), normalize(ei, dim=1)
            ej = normalize(items_e[j], dim=1)
            pos = (eu * ei).sum(1, keepdim=True)
            neg = eu @ ej.T
            logits = torch.cat([pos, neg], 1) / float(self.temperature)
            main = -torch.log_softmax(logits, 1)[:, 0].mean()
            reg_nodes = (net.user.weight[u], net.item.weight[i])
        l2 = sum((t**2).sum() for t in reg_nodes) / (2 * len(u))
        loss = main + float(self.reg) * l2
        opt.zero_grad()
        loss.backward()
        opt.step()
        return float(loss.detach())

    def _export(self, net: Any, x: sp.csr_matrix, src: np.ndarray) -> None:
        """Final and per-layer embeddings, attention and raw weights as numpy arrays."""
        import torch

        net.eval()
        with torch.no_grad():
            users_e, items_e, user_layers, item_layers, alphas, gate = net.propagate(full=True)
            user_layers = [t.detach() for t in user_layers]
            item_layers = [t.detach() for t in item_layers]
        self.user_embeddings_ = users_e.detach().numpy().astype(np.float32)
        if self._cosine:
            items_e = torch.nn.functional.normalize(items_e, dim=1)
        self.item_embeddings_ = items_e.detach().numpy().astype(np.float32)
        self.user_layers_ = torch.stack(user_layers[:-1]).numpy().astype(np.float32)
        self.item_layers_ = torch.stack(item_layers[:-1]).numpy().astype(np.float32)
        self.social_src_ = np.asarray(src, dtype=np.int64)
        self.social_dst_ = net.dst.numpy().astype(np.int64)
        self.social_alpha_ = (
            torch.stack(alphas).detach().numpy().astype(np.float32)
            if alphas
            else np.zeros((int(self.layers), 0), np.float32)
        )
        self.gate_ = gate.detach().numpy().astype(np.float32)
        self.item_degree_ = np.diff(sp.csc_matrix(x).indptr).astype(np.float32)
        for key, value in net.state_dict().items():
            setattr(self, f"w_{key.replace('.', '_')}_", value.detach().numpy().copy())
        self.user_signature_ = _row_signature(x)
        self.user_nnz_ = np.diff(x.indptr).astype(np.int64)

    @property
    def _cosine(self) -> bool:
        """The softmax loss scores cosines: item embeddings are used unit-normalised."""
        return self.loss == "softmax"

    # -- scoring --------------------------------------------------------------------------
    def user_vectors(self, users: np.ndarray, history: sp.csr_matrix) -> np.ndarray:
        """Learned embeddings for unchanged known users, fold-in for the others."""
        users = np.asarray(users, dtype=np.int64).ravel()
        h = as_float32(sp.csr_matrix(history), binary=True)
        n_known = len(self.user_embeddings_)
        known = (users >= 0) & (users < n_known)
        safe = np.where(known, users, 0)
        nnz = np.diff(h.indptr)
        same = (
            known
            & (nnz == self.user_nnz_[safe])
            & np.isclose(_row_signature(h), self.user_signature_[safe], rtol=1e-9, atol=1e-9)
        )
        vecs = self.user_embeddings_[safe].copy()
        for r in np.flatnonzero(~same):
            vecs[r] = self._fold_in(int(users[r]) if known[r] else -1, h[r])
        return vecs

    def _fold_in(self, user: int, row: sp.csr_matrix) -> np.ndarray:
        items = row.indices
        n_layers = self.item_layers_.shape[0]
        d = self.item_embeddings_.shape[1]
        layers = [self.user_layers_[0, user] if user >= 0 else np.zeros(d, np.float32)]
        if len(items):
            w = 1.0 / np.sqrt(len(items) * np.maximum(self.item_degree_[items], 1.0))
        gate = float(self.gate_[user]) if user >= 0 else 0.0
        if gate > 0:
            lo, hi = np.searchsorted(self.social_src_, [user, user + 1])
            friends = self.social_dst_[lo:hi]
        for layer in range(n_layers):
            e = np.zeros(d, np.float64)
            if len(items):
                e += w @ self.item_layers_[layer, items]
            if gate > 0:
                social = self.social_alpha_[layer, lo:hi] @ self.user_layers_[layer, friends]
                e = e + gate * social
            layers.append(e.astype(np.float32))
        return np.mean(np.stack(layers), axis=0).astype(np.float32)

    def score(
        self, users: np.ndarray, history: sp.csr_matrix, times: sp.csr_matrix | None = None
    ) -> np.ndarray:
        """Dot products of (possibly folded-in) user embeddings with item embeddings."""
        return self.user_vectors(users, history) @ self.item_embeddings_.T

    def similar_items(self, item: int, n: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """Cosine similarity of the final item embeddings."""
        return _cosine_neighbours(self.item_embeddings_, item, n)

    def describe(self) -> dict[str, Any]:
        """Training outcome, readable (for reports and logs): the early-stopping epoch, its
        valid NDCG@10 (NaN when fitted without ``valid``), the epochs run and the mean gate;
        for ``social`` also the friends weight kept and every weight tried (its best valid
        NDCG@10, epochs, seconds and why it stopped: patience, behind, time or epochs)."""
        described = {
            "best_epoch": int(self.best_epoch_),
            "valid_ndcg@10": round(float(self.best_valid_), 4),
            "epochs_run": len(self.curve_loss_),
            "mean_gate": round(float(self.gate_.mean()), 4),
        }
        if self.uses_social:
            described["social_weight"] = self.social_weight_
            described["social_weights_tried"] = self.social_trials_
        return described

    def refit_params(self) -> dict[str, Any]:
        """Parameters to fit again without ``valid`` (on more data): the epoch early stopping
        kept and the friends weight chosen on valid."""
        return self.get_params() | {
            "epochs": int(self.best_epoch_),
            "social_weight": float(self.social_weight_),
        }

    # -- erasure --------------------------------------------------------------------------
    user_arrays: ClassVar[dict[str, int]] = {
        "user_embeddings_": 0,
        "w_user_weight_": 0,
        "user_layers_": 1,
        "gate_": 0,
        "user_signature_": 0,
        "user_nnz_": 0,
    }

    def forget_users(self, rows: np.ndarray) -> None:
        """Zero the users' rows (see :meth:`Recommender.forget_users`) and drop every social
        edge from or to them, with its attention weights."""
        super().forget_users(rows)
        gone = np.isin(self.social_src_, rows) | np.isin(self.social_dst_, rows)
        if gone.any():
            self.social_src_ = self.social_src_[~gone]
            self.social_dst_ = self.social_dst_[~gone]
            self.social_alpha_ = self.social_alpha_[:, ~gone]

    # -- persistence ----------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        """Arrays and parameters (no pickle) plus ``training_curve.png``."""
        super().save(path)
        if hasattr(self, "curve_loss_"):
            plot_training_curve(
                Path(path) / "training_curve.png",
                self.curve_loss_,
                self.curve_valid_,
                self.best_epoch_,
                self.name,
            )


class SocialGCNModel(LightGCNModel):
    """LightGCN whose user layers also aggregate social neighbours with learned attention
    (module docstring). Same hyper-parameters as :class:`LightGCNModel`; reads
    ``side.social`` in ``fit`` and is exactly ``lightgcn`` without it.

    Test NDCG@10 / Recall@10 with the defaults (``agora eval``, one run each,
    bench/results/social.json; the weight chosen on valid, 0.1 of 0 / 0.1 / 0.3 with valid
    0.1753 / 0.1772 / 0.1734, gave the same figures: bench/results/social_weight.json):
    lastfm-social lightgcn 0.1927 / 0.2032, social 0.2008 / 0.2079
    (BPR defaults before: 0.1803 / 0.1818); a seed-7 re-split of the same data
    (bench/make_reseeded_split.py) lightgcn 0.1863 / 0.1988, social 0.1892 / 0.2015 (before:
    0.1728 / 0.1757). The friends help on both splits; social is above RecBole-GNN's LightGCN
    (0.1972) but below its MHCN (0.2068) and EASE (reg 50) here (0.2030)."""

    name: ClassVar[str] = "social"
    uses_social: ClassVar[bool] = True


@dataclass
class _BestEpoch:
    """One training's best validated epoch so far (its NDCG@10, number and weights) and what
    stops it: evaluations without improvement (``bad``) and evaluations in a row :data:`BEHIND`
    the leading weight's running best ``lead`` at the same epoch (``behind``)."""

    lead: np.ndarray | None
    metric: float = -1.0
    epoch: int = -1
    snapshot: Any = None
    bad: int = 0
    behind: int = 0

    def record(self, epoch: int, metric: float, net: Any) -> None:
        """Take in epoch ``epoch``'s valid NDCG@10, keeping ``net``'s weights when it is best."""
        if metric > self.metric:
            self.metric, self.epoch, self.snapshot = metric, epoch, net.snapshot()
            self.bad = 0
        else:
            self.bad += 1
        if self.lead is not None:
            ahead = self.lead[min(epoch, len(self.lead)) - 1]
            self.behind = self.behind + 1 if self.metric < (1 - BEHIND) * ahead else 0

    def stop_reason(self, validated: bool, timed_out: bool, patience: int) -> str | None:
        """Why the training stops after this epoch (``patience``, ``behind``, ``time``), or None."""
        if validated and self.bad >= patience:
            return "patience"
        if self.behind >= patience:
            return "behind"
        if timed_out:
            return "time"
        return None


def _running_best(curve: list[float]) -> np.ndarray:
    """The best valid NDCG@10 reached by each epoch (epochs not evaluated count as -inf)."""
    values = np.asarray(curve, dtype=np.float64)
    return np.maximum.accumulate(np.where(np.isnan(values), -np.inf, values))


def _valid_ndcg(
    net: Any, x: sp.csr_matrix, valid: sp.csr_matrix, users: np.ndarray, cosine: bool
) -> float:
    """NDCG@10 on ``valid`` for ``users``, train items masked, full ranking."""
    import torch

    net.eval()
    with torch.no_grad():
        ue, ie = net.propagate()
        if cosine:
            ie = torch.nn.functional.normalize(ie, dim=1)
        discounts = 1.0 / np.log2(np.arange(2, 12))
        total = 0.0
        for start in range(0, len(users), 512):
            batch = users[start : start + 512]
            scores = ue[torch.from_numpy(batch)] @ ie.T
            mask = x[batch].tocoo()
            scores[torch.from_numpy(mask.row), torch.from_numpy(mask.col)] = -torch.inf
            top = torch.topk(scores, 10, dim=1).indices.numpy()
            truth = valid[batch]
            for r in range(len(batch)):
                rel = truth.indices[truth.indptr[r] : truth.indptr[r + 1]]
                hits = np.isin(top[r], rel)
                ideal = discounts[: min(len(rel), 10)].sum()
                total += float(discounts[hits].sum() / ideal)
    return total / max(len(users), 1)


class _training_progress:
    """Rich progress bar (or nothing) for the epochs."""

    def __init__(self, enabled: bool, total: int, name: str) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self.prog = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            disable=not enabled,
        )
        self.total, self.name = total, name

    def __enter__(self) -> tuple[Any, Any]:
        self.prog.__enter__()
        return self.prog, self.prog.add_task(self.name, total=self.total)

    def __exit__(self, *exc: object) -> None:
        self.prog.__exit__(*exc)
