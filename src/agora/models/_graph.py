"""The PyTorch network behind :mod:`agora.models.social` (imported lazily: torch is heavy)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn


def _sparse(m: sp.spmatrix) -> torch.Tensor:
    coo = sp.coo_matrix(m)
    index = torch.from_numpy(np.stack([coo.row, coo.col]).astype(np.int64))
    values = torch.from_numpy(coo.data.astype(np.float32))
    return torch.sparse_coo_tensor(index, values, m.shape, check_invariants=False).coalesce()


def normalised_adjacency(x: sp.csr_matrix) -> tuple[torch.Tensor, torch.Tensor]:
    """The user->item and item->user blocks of ``D^-1/2 A D^-1/2`` for the bipartite graph
    ``A = [[0, X], [X^T, 0]]``: ``R = D_u^-1/2 X D_i^-1/2`` and ``R^T`` as sparse tensors."""
    x = sp.csr_matrix(x, dtype=np.float64)
    du = np.asarray(x.sum(axis=1)).ravel()
    di = np.asarray(x.sum(axis=0)).ravel()
    iu = np.where(du > 0, 1.0 / np.sqrt(np.maximum(du, 1e-12)), 0.0)
    ii = np.where(di > 0, 1.0 / np.sqrt(np.maximum(di, 1e-12)), 0.0)
    r = sp.diags(iu) @ x @ sp.diags(ii)
    return _sparse(r), _sparse(r.T)


class GraphNet(nn.Module):
    """LightGCN propagation; user layers optionally mixed with attention over social edges."""

    def __init__(
        self,
        n_users: int,
        n_items: int,
        factors: int,
        layers: int,
        adj: tuple[torch.Tensor, torch.Tensor],
        src: np.ndarray,
        dst: np.ndarray,
        edge_feats: np.ndarray,
        user_feats: np.ndarray,
        hidden: int,
    ) -> None:
        super().__init__()
        self.n_users, self.n_items, self.layers = n_users, n_items, layers
        # embeddings first: with the same seed they start identical with or without edges
        self.user = nn.Embedding(n_users, factors)
        self.item = nn.Embedding(n_items, factors)
        nn.init.normal_(self.user.weight, std=0.1)
        nn.init.normal_(self.item.weight, std=0.1)
        self.attention = nn.Sequential(
            nn.Linear(edge_feats.shape[1], hidden), nn.Tanh(), nn.Linear(hidden, 1)
        )
        self.similarity = nn.Parameter(torch.zeros(layers))
        self.gate = nn.Linear(user_feats.shape[1], 1)
        nn.init.zeros_(self.gate.weight)
        nn.init.constant_(self.gate.bias, -1.0)
        self.r, self.rt = adj
        # position in r's (user, item) order of each entry of rt's (item, user) order
        ri = self.r.indices()
        order = np.lexsort((ri[0].numpy(), ri[1].numpy()))
        self.rt_from_r = torch.from_numpy(order.astype(np.int64))
        self.edge_dropout = 0.0
        self.social_weight = 1.0
        self.src = torch.from_numpy(np.asarray(src, dtype=np.int64))
        self.dst = torch.from_numpy(np.asarray(dst, dtype=np.int64))
        self.edge_feats = torch.from_numpy(np.asarray(edge_feats, dtype=np.float32))
        self.user_feats = torch.from_numpy(np.asarray(user_feats, dtype=np.float32))
        has = np.bincount(np.asarray(src, dtype=np.int64), minlength=n_users) > 0
        self.has_friends = torch.from_numpy(has.astype(np.float32))

    @property
    def social(self) -> bool:
        return len(self.src) > 0

    def _alpha(
        self, relation: torch.Tensor, e_src: torch.Tensor, e_dst: torch.Tensor, layer: int
    ) -> torch.Tensor:
        """Attention per social edge (in edge order) from the edges' end embeddings: softmax
        over each user's out-edges of the relation score plus a learned multiple of the
        embedding similarity."""
        sim = (e_src * e_dst).sum(1) / e_src.shape[1] ** 0.5
        logits = relation + self.similarity[layer] * sim
        top = torch.full((self.n_users,), -torch.inf).scatter_reduce(
            0, self.src, logits.detach(), reduce="amax"
        )
        weights = torch.exp(logits - top[self.src])
        total = torch.zeros(self.n_users).index_add(0, self.src, weights)
        return weights / total[self.src]

    def _graph(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The user-item blocks, with edge dropout (same edges in both) while training."""
        p = self.edge_dropout
        if not self.training or p <= 0:
            return self.r, self.rt
        keep = (torch.rand(self.r.values().shape[0]) >= p).float() / (1.0 - p)
        r = torch.sparse_coo_tensor(
            self.r.indices(), self.r.values() * keep, self.r.shape, is_coalesced=True
        )
        rt = torch.sparse_coo_tensor(
            self.rt.indices(),
            self.rt.values() * keep[self.rt_from_r],
            self.rt.shape,
            is_coalesced=True,
        )
        return r, rt

    def propagate(self, full: bool = False):  # noqa: ANN201 - tuple shape depends on ``full``
        r, rt = self._graph()
        eu, ei = self.user.weight, self.item.weight
        user_layers, item_layers, alphas = [eu], [ei], []
        gate = torch.zeros(self.n_users)
        if self.social:
            gate = torch.sigmoid(self.gate(self.user_feats).squeeze(1)) * self.has_friends
            gate = self.social_weight * gate
            g = gate[:, None]
            relation = self.attention(self.edge_feats).squeeze(1)
        for layer in range(self.layers):
            users = torch.sparse.mm(r, ei)
            items = torch.sparse.mm(rt, eu)
            if self.social:
                # index_select: its backward is a fast index_add (indexing's is index_put)
                e_dst = eu.index_select(0, self.dst)
                alpha = self._alpha(relation, eu.index_select(0, self.src), e_dst, layer)
                friends = torch.zeros_like(users).index_add(0, self.src, alpha[:, None] * e_dst)
                users = users + g * friends
                alphas.append(alpha)
            eu, ei = users, items
            user_layers.append(eu)
            item_layers.append(ei)
        users_final = torch.stack(user_layers).mean(0)
        items_final = torch.stack(item_layers).mean(0)
        if full:
            return users_final, items_final, user_layers, item_layers, alphas, gate
        return users_final, items_final

    def snapshot(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in self.state_dict().items()}

    def restore(self, state: dict[str, torch.Tensor]) -> None:
        self.load_state_dict(state)
