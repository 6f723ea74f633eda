"""Content attention: a user attends over the text embeddings of what they engaged with.

Every item is a multilingual e5 embedding f_j of its text and tags (``features.embeddings``).
A user with history H gets the query q = W_q · mean_{j in H} f_j, attention weights
a_j = softmax_{j in H}(q · W_k f_j / sqrt(d)) and the representation u = sum_j a_j W_v f_j.
An item scores s_i = u · W_p f_i + w_b · f_i. Nothing depends on an item's interactions, so items
nobody has touched yet (new posts) are ranked like any other, and the weights a_j explain a
recommendation ("because you engaged with X"). Trained with full-softmax cross-entropy over
the items that have interactions: for each user one random history item is the target and the
rest is the context; early stopping on ``valid`` NDCG@10 when given.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import scipy.sparse as sp
from rich.progress import Progress

from agora.features.embeddings import embed_passages, item_text
from agora.features.interactions import Interactions, SideData
from agora.metrics import hits_matrix, ndcg_at_k
from agora.models.base import Recommender
from agora.plots import plot_training_curve


def default_cache() -> Path:
    """Where item embeddings are cached: AGORA_EMBEDDING_CACHE or ~/.cache/agora."""
    env = os.environ.get("AGORA_EMBEDDING_CACHE")
    if env:
        return Path(env)
    return Path.home() / ".cache" / "agora" / "item-embeddings.npz"


def _attention_net(dim_in: int, dim: int) -> Any:
    """The trainable attention network (torch is imported only when a model is fitted)."""
    import torch

    class _Attention(torch.nn.Module):
        def __init__(self, dim_in: int, dim: int):
            super().__init__()
            self.query = torch.nn.Linear(dim_in, dim, bias=False)
            self.key = torch.nn.Linear(dim_in, dim, bias=False)
            self.value = torch.nn.Linear(dim_in, dim, bias=False)
            self.item = torch.nn.Linear(dim_in, dim, bias=False)
            self.bias = torch.nn.Linear(dim_in, 1, bias=False)
            self.scale = 1.0 / math.sqrt(dim)

        def user(self, ctx: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            """ctx: (B, L, D) history embeddings, mask: (B, L) true where real -> (B, d), (B, L)."""
            weights = mask.float()
            mean = (ctx * weights.unsqueeze(-1)).sum(1) / weights.sum(1, keepdim=True).clamp(min=1)
            logits = torch.einsum("bd,bld->bl", self.query(mean), self.key(ctx)) * self.scale
            attn = torch.softmax(logits.masked_fill(~mask, -1e9), dim=1) * weights
            return torch.einsum("bl,bld->bd", attn, self.value(ctx)), attn

        def scores(self, user: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
            return user @ self.item(items).T + self.bias(items).squeeze(-1)

    return _Attention(dim_in, dim)


class ContentAttentionModel(Recommender):
    """User -> content attention over multilingual text embeddings (serves brand-new items)."""

    name: ClassVar[str] = "content_attention"

    def __init__(
        self,
        dim: int = 64,
        epochs: int = 40,
        batch_size: int = 256,
        learning_rate: float = 3e-3,
        weight_decay: float = 1e-5,
        max_context: int = 50,
        patience: int = 5,
        random_state: int = 42,
        num_threads: int = 2,
        progress: bool = True,
    ) -> None:
        self.dim = dim
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.max_context = max_context
        self.patience = patience
        self.random_state = random_state
        self.num_threads = num_threads
        self.progress = progress

    # -- fitting ----------------------------------------------------------------------------
    def fit(
        self,
        interactions: Interactions,
        side: SideData | None = None,
        valid: sp.csr_matrix | None = None,
    ) -> Self:
        """Embed every item's text, then learn the attention weights on the interactions."""
        if side is None or side.texts is None:
            raise ValueError("content_attention needs item texts (SideData.texts)")
        import torch

        torch.manual_seed(self.random_state)
        torch.set_num_threads(self.num_threads)
        rng = np.random.default_rng(self.random_state)
        tags = side.tags or [[] for _ in side.texts]
        texts = [item_text(t, g) for t, g in zip(side.texts, tags, strict=True)]
        with Progress(disable=not self.progress, transient=True) as bar:
            task = bar.add_task("embedding item texts", total=len(texts))
            self.item_vectors_ = embed_passages(
                texts, default_cache(), on_batch=lambda n: bar.advance(task, n)
            )
        net = _attention_net(self.item_vectors_.shape[1], self.dim)
        items = torch.from_numpy(self.item_vectors_)
        opt = torch.optim.Adam(
            net.parameters(), lr=self.learning_rate, weight_decay=self.weight_decay
        )
        matrix = interactions.matrix.tocsr()
        users = np.flatnonzero(np.diff(matrix.indptr) >= 2)
        # items nobody touched are never targets; as softmax negatives they would only learn
        # "unseen means bad", the opposite of what a content model is for, so they sit out
        unseen = torch.from_numpy(np.diff(sp.csc_matrix(matrix).indptr) == 0)
        curve: list[dict[str, float]] = []
        best = (-1.0, None, 0)
        started = time.perf_counter()
        with Progress(disable=not self.progress) as bar:
            task = bar.add_task("content_attention", total=self.epochs)
            for epoch in range(1, self.epochs + 1):
                net.train()
                loss_sum, batches = 0.0, 0
                order = rng.permutation(users)
                for start in range(0, len(order), self.batch_size):
                    batch = order[start : start + self.batch_size]
                    ctx, mask, target = self._examples(matrix, batch, rng)
                    user, _ = net.user(items[ctx], mask)
                    logits = net.scores(user, items)
                    logits = logits.masked_fill(unseen, -1e9)
                    logits = logits.scatter(1, torch.from_numpy(ctx), -1e9)  # context is known
                    loss = torch.nn.functional.cross_entropy(logits, torch.from_numpy(target))
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    loss_sum += float(loss.detach())
                    batches += 1
                point = {"epoch": epoch, "loss": loss_sum / max(batches, 1)}
                if valid is not None:
                    self._store(net)
                    point["valid_ndcg@10"] = self._valid_ndcg(matrix, valid)
                    if point["valid_ndcg@10"] > best[0]:
                        best = (point["valid_ndcg@10"], self._weights(net), epoch)
                curve.append(point)
                desc = f"content_attention epoch {epoch} loss {point['loss']:.3f}"
                if "valid_ndcg@10" in point:
                    desc += f" valid NDCG@10 {point['valid_ndcg@10']:.4f}"
                bar.update(task, advance=1, description=desc)
                if valid is not None and epoch - best[2] >= self.patience:
                    break
        if best[1] is not None:
            net.load_state_dict(best[1])
        self._store(net)
        self.best_epoch_ = int(best[2] or len(curve))
        self.fit_seconds_ = time.perf_counter() - started
        self.curve_ = np.array(
            [[p["epoch"], p["loss"], p.get("valid_ndcg@10", np.nan)] for p in curve]
        )
        return self

    def _examples(
        self, matrix: sp.csr_matrix, users: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, Any, np.ndarray]:
        """One random target per user; up to max_context other history items as context."""
        length = self.max_context
        ctx = np.zeros((len(users), length), dtype=np.int64)
        mask = np.zeros((len(users), length), dtype=bool)
        target = np.zeros(len(users), dtype=np.int64)
        for row, u in enumerate(users):
            hist = matrix.indices[matrix.indptr[u] : matrix.indptr[u + 1]]
            hist = rng.permutation(hist)
            target[row] = hist[0]
            rest = hist[1 : 1 + length]
            ctx[row, : len(rest)] = rest
            ctx[row, len(rest) :] = rest[0]  # padding repeats a context item (masked anyway)
            mask[row, : len(rest)] = True
        import torch

        return ctx, torch.from_numpy(mask), target

    # -- state ------------------------------------------------------------------------------
    @staticmethod
    def _weights(net: Any) -> dict[str, Any]:
        return {k: v.detach().clone() for k, v in net.state_dict().items()}

    def _store(self, net: Any) -> None:
        state = net.state_dict()
        self.w_query_ = state["query.weight"].numpy().T.copy()
        self.w_key_ = state["key.weight"].numpy().T.copy()
        self.w_value_ = state["value.weight"].numpy().T.copy()
        self.w_item_ = state["item.weight"].numpy().T.copy()
        self.w_bias_ = state["bias.weight"].numpy().reshape(-1).copy()
        self._projected = None

    def _item_side(self) -> tuple[np.ndarray, np.ndarray]:
        if getattr(self, "_projected", None) is None:
            self._projected = (
                self.item_vectors_ @ self.w_item_,
                self.item_vectors_ @ self.w_bias_,
            )
        return self._projected

    # -- scoring ----------------------------------------------------------------------------
    def attention(self, history_items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The user vector and the attention weight of each history item (same order)."""
        ctx = self.item_vectors_[history_items]
        query = ctx.mean(axis=0) @ self.w_query_
        logits = (ctx @ self.w_key_) @ query / math.sqrt(self.w_key_.shape[1])
        weights = np.exp(logits - logits.max())
        weights /= weights.sum()
        return weights @ (ctx @ self.w_value_), weights

    def _context(self, history: sp.csr_matrix, times: sp.csr_matrix | None, row: int) -> np.ndarray:
        items = history.indices[history.indptr[row] : history.indptr[row + 1]]
        if len(items) <= self.max_context:
            return items
        if times is not None and times.shape == history.shape:
            t = np.asarray(times[row].toarray()).ravel()[items]
        else:
            t = history.data[history.indptr[row] : history.indptr[row + 1]]
        return items[np.argsort(-t, kind="stable")[: self.max_context]]

    def score(
        self, users: np.ndarray, history: sp.csr_matrix, times: sp.csr_matrix | None = None
    ) -> np.ndarray:
        """u · W_p f_i + w_b · f_i for every item; a user without history gets the bias only."""
        history = sp.csr_matrix(history)
        projected, bias = self._item_side()
        out = np.tile(bias.astype(np.float32), (history.shape[0], 1))
        for row in range(history.shape[0]):
            items = self._context(history, times, row)
            if len(items):
                user, _ = self.attention(items)
                out[row] += projected @ user
        return out

    def _valid_ndcg(self, train: sp.csr_matrix, valid: sp.csr_matrix) -> float:
        users = np.flatnonzero(np.diff(valid.indptr) > 0)
        users = users[np.diff(train.indptr)[users] > 0]
        ranked, _ = self.recommend_batch(users, train[users], 10)
        relevant = [valid.indices[valid.indptr[u] : valid.indptr[u + 1]] for u in users]
        return ndcg_at_k(*hits_matrix(ranked, relevant, 10))

    def similar_items(self, item: int, n: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """Nearest items by cosine of their text embeddings."""
        sims = self.item_vectors_ @ self.item_vectors_[item]
        sims[item] = -np.inf
        n = min(n, len(sims) - 1)
        top = np.argpartition(-sims, n - 1)[:n] if n > 0 else np.empty(0, np.int64)
        top = top[np.argsort(-sims[top], kind="stable")]
        return top.astype(np.int64), sims[top].astype(np.float64)

    def save(self, path: str | Path) -> None:
        """Weights and embeddings, plus the training curve as a PNG beside them."""
        self._projected = None
        super().save(path)
        if getattr(self, "curve_", None) is not None and len(self.curve_):
            plot_training_curve(
                Path(path) / "training_curve.png",
                self.curve_[:, 1],
                self.curve_[:, 2],
                self.best_epoch_,
                self.name,
            )
