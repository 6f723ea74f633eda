"""SASRec-style sequential recommender: causal self-attention over a user's item sequence
(Kang & McAuley, ICDM 2018), trained the fast way.

Each user's events are ordered by time (``Interactions.last_seen``; events with the same
timestamp by item id, ``tie_break="item_id"``, the order the benchmark splits use, or by item
index) and cut into windows of at most ``max_len`` items. One forward pass over a whole window
predicts every next item at once (targets = the window shifted by one), with a full-softmax
cross-entropy over the catalogue whose output weights are the item embeddings (tied). No
prefix expansion, no negative sampling: one epoch is one pass over every training event.
Windows are bucketed by length (batches hold windows of similar length and are padded only to
their own longest window) and logits are computed only at real (non-padding) positions.

Items are shifted by one inside the network (0 = padding). Positions are learned and counted
from the start of the window; padding sits at the end and the causal mask keeps it from
being attended to by real positions.

With ``valid`` (users x items, one held-out next item per user) ``fit`` ranks all items from
every user's training sequence after each ``eval_every`` epochs (history masked), keeps the
weights with the best NDCG@10 and stops after ``patience`` checks without improvement (or at
``epochs`` / ``max_seconds``). Without ``valid`` it trains ``epochs`` epochs. With
``lr_decay`` the learning rate falls linearly to 5% over that budget (whichever of epochs and
seconds runs out first), which settles a short, small-batch run.

``score`` reads the request's ``history`` row ordered by ``times`` (latest last), so an event
posted after training changes the next answer; without ``times`` a known user's fitted
sequence is used, with any history items not in it appended. Users with no usable history get
log-popularity scores.

Learned state: the network weights as numpy arrays in ``weights.npz`` (no pickle), the fitted
sequences, popularity and the training curve in ``_``-attributes; the torch module is rebuilt
lazily at the first ``score`` call (torch itself is imported only then).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Self

import numpy as np
import scipy.sparse as sp

from agora.features.interactions import Interactions, SideData
from agora.models.base import EpochCost, Recommender, warm_up_torch
from agora.plots import plot_training_curve

if TYPE_CHECKING:
    import torch


def order_sequences(
    matrix: sp.csr_matrix, times: sp.csr_matrix | None, tie_key: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the column indices of ``matrix``'s entries ordered by ``times`` (oldest first;
    entries without a time count as oldest), ties broken by ``tie_key[column]`` (default: the
    column index): ``(indptr, items)`` like a csr."""
    m = sp.csr_matrix(matrix)
    m.sort_indices()
    rows, cols = m.nonzero()
    if times is None or len(rows) == 0:
        t = np.zeros(len(rows))
    else:
        ts = sp.csr_matrix(times)
        t = np.asarray(ts[rows, cols], dtype=np.float64).ravel()
    tie = cols if tie_key is None else np.asarray(tie_key)[cols]
    order = np.lexsort((cols, tie, t, rows))
    counts = np.bincount(rows, minlength=m.shape[0])
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return indptr, cols[order].astype(np.int64)


def item_id_order(item_ids: np.ndarray) -> np.ndarray:
    """Rank of each external item id in natural order (numeric when every id is an integer,
    else as strings): the tie-break of events with the same timestamp."""
    ids = [str(i) for i in item_ids]
    try:
        keys: list = [int(i) for i in ids]
    except ValueError:
        keys = ids
    order = sorted(range(len(ids)), key=keys.__getitem__)
    rank = np.empty(len(ids), dtype=np.int64)
    rank[order] = np.arange(len(ids))
    return rank


def _build_net(n_items: int, hidden: int, layers: int, heads: int, dropout: float, max_len: int):
    import torch
    from torch import nn
    from torch.nn import functional as F

    class _Block(nn.Module):
        """Pre-norm causal self-attention + GELU feed-forward, dropout on both residual
        branches (none on the attention weights, so the fused causal kernel can be used)."""

        def __init__(self) -> None:
            super().__init__()
            self.norm1 = nn.LayerNorm(hidden)
            self.qkv = nn.Linear(hidden, 3 * hidden)
            self.proj = nn.Linear(hidden, hidden)
            self.norm2 = nn.LayerNorm(hidden)
            self.ff1 = nn.Linear(hidden, 4 * hidden)
            self.ff2 = nn.Linear(4 * hidden, hidden)
            self.drop = nn.Dropout(dropout)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            b, length, _ = x.shape
            q, k, v = self.qkv(self.norm1(x)).split(hidden, dim=2)
            q, k, v = (t.view(b, length, heads, -1).transpose(1, 2) for t in (q, k, v))
            a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            x = x + self.drop(self.proj(a.transpose(1, 2).reshape(b, length, hidden)))
            return x + self.drop(self.ff2(F.gelu(self.ff1(self.norm2(x)))))

    class _SASRecNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.item = nn.Embedding(n_items + 1, hidden, padding_idx=0)
            self.pos = nn.Embedding(max_len, hidden)
            self.emb_norm = nn.LayerNorm(hidden)
            self.drop = nn.Dropout(dropout)
            self.blocks = nn.ModuleList(_Block() for _ in range(layers))
            self.out_norm = nn.LayerNorm(hidden)
            nn.init.normal_(self.item.weight, std=0.02)
            nn.init.normal_(self.pos.weight, std=0.02)
            with torch.no_grad():
                self.item.weight[0].zero_()

        def forward(self, seq: torch.Tensor) -> torch.Tensor:
            """(B, L) item ids (shifted, 0 = pad at the end) -> (B, L, hidden)."""
            pos = torch.arange(seq.shape[1], device=seq.device)
            x = self.drop(self.emb_norm(self.item(seq) + self.pos(pos)[None]))
            for block in self.blocks:
                x = block(x)
            return self.out_norm(x)

        def logits(self, h: torch.Tensor) -> torch.Tensor:
            """Scores of the real items (padding row left out) for hidden states ``h``."""
            return h @ self.item.weight[1:].T

    return _SASRecNet()


class SASRecModel(Recommender):
    """Causal self-attention next-item model (SASRec family), full-softmax training.

    Defaults chosen on ml1m-seq-prefix **valid** NDCG@10 (best epoch kept; 2 blocks, 2 heads,
    64 dims, dropout 0.2, max_len 200, 1 thread on a busy 2-core box, 540 s budget):
    batch 128 / lr 2e-3 learnt too slowly (23 steps an epoch: 0.028 after 2 epochs, stopped);
    batch 16 / lr 2e-3, ties in column order, last window only: 0.1220 (epoch 8); ties by
    item id (the split's order): 0.1477 (epoch 14, time cap); + linear lr decay over the
    budget: 0.1529 (epoch 20, time cap); + every window of long histories (``all_windows``,
    37% more targets an epoch): 0.1541 (epoch 15, early stop at 21) -> batch 16, lr 2e-3,
    tie_break item_id, lr_decay, all_windows. Test NDCG@10 of those four: 0.1169, 0.1505,
    0.1554, 0.1590. A fit without ``valid`` runs ``epochs`` epochs or ``max_seconds``,
    whichever ends first, the learning rate decaying over that budget (so the decay, and the
    result, depend on the machine's speed when the time budget binds).
    """

    name: ClassVar[str] = "sasrec"
    sequential: ClassVar[bool] = True
    #: ml1m-seq-prefix's best epochs were 14-20 (above).
    target_epochs: ClassVar[int] = 20

    def __init__(
        self,
        hidden: int = 64,
        layers: int = 2,
        heads: int = 2,
        dropout: float = 0.2,
        max_len: int = 200,
        learning_rate: float = 2e-3,
        weight_decay: float = 0.0,
        lr_decay: bool = True,
        batch_size: int = 16,
        epochs: int = 100,
        patience: int = 6,
        eval_every: int = 1,
        max_seconds: float = 540.0,
        all_windows: bool = True,
        tie_break: str = "item_id",
        random_state: int = 42,
        num_threads: int = 1,
        verbose: bool = True,
    ) -> None:
        self.hidden = hidden
        self.layers = layers
        self.heads = heads
        self.dropout = dropout
        self.max_len = max_len
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.lr_decay = lr_decay
        self.batch_size = batch_size
        self.epochs = epochs
        self.patience = patience
        self.eval_every = eval_every
        self.max_seconds = max_seconds
        self.all_windows = all_windows
        self.tie_break = tie_break
        self.random_state = random_state
        self.num_threads = num_threads
        self.verbose = verbose
        self._net: Any = None
        self._weights: dict[str, np.ndarray] | None = None

    # -- training ---------------------------------------------------------------------------
    def _windows(self, indptr: np.ndarray) -> np.ndarray:
        """(start, stop) into the flat sequence array of every training window: inputs are
        ``items[start:stop]``, targets ``items[start + 1:stop + 1]``."""
        out = []
        for u in range(len(indptr) - 1):
            lo, hi = int(indptr[u]), int(indptr[u + 1])
            stop = hi - 1  # the last item is only a target
            while stop > lo:
                start = max(lo, stop - self.max_len)
                out.append((start, stop))
                if not self.all_windows:
                    break
                stop = start
        return np.asarray(out, dtype=np.int64).reshape(-1, 2)

    def _batch(self, flat: np.ndarray, spans: np.ndarray, shift: int = 0) -> np.ndarray:
        """Right-padded (B, longest) array of ``flat[start + shift:stop + shift] + 1``."""
        lengths = spans[:, 1] - spans[:, 0]
        out = np.zeros((len(spans), int(lengths.max())), dtype=np.int64)
        for r, (a, b) in enumerate(spans):
            out[r, : b - a] = flat[a + shift : b + shift] + 1
        return out

    def fit(
        self,
        interactions: Interactions,
        side: SideData | None = None,
        valid: sp.csr_matrix | None = None,
    ) -> Self:
        """Train on every user's time-ordered sequence; early stopping on ``valid`` if given."""
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        rng, windows, net, opt = self._prepare(interactions)
        flat = self.seq_items_
        valid_users = self._valid_users(valid)
        valid = sp.csr_matrix(valid) if valid is not None else None
        losses: list[float] = []
        scores: list[float] = []
        best = (-1.0, 0)
        best_state = None
        checks_without_gain = 0
        started = time.perf_counter()
        with Progress(
            TextColumn("sasrec {task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total} epochs"),
            TimeElapsedColumn(),
            disable=not self.verbose,
        ) as prog:
            task = prog.add_task("", total=self.epochs)
            for epoch in range(1, int(self.epochs) + 1):
                net.train()
                batches = self._batches(windows, rng)
                total, n_tok = 0.0, 0
                for i, b in enumerate(batches):
                    if self.lr_decay:
                        for group in opt.param_groups:
                            group["lr"] = self._decayed_lr(epoch - 1 + i / len(batches), started)
                    loss, k = self._step(net, opt, flat, windows[b])
                    total += loss * k
                    n_tok += k
                losses.append(total / max(n_tok, 1))
                msg = f"epoch {epoch} loss {losses[-1]:.4f}"
                elapsed = time.perf_counter() - started  # no epoch starts that would end past it
                timed_out = elapsed + elapsed / epoch > self.max_seconds
                if len(valid_users) and (epoch % self.eval_every == 0 or timed_out):
                    ndcg = self._valid_ndcg(valid_users, valid)
                    scores.append(ndcg)
                    msg += f" valid NDCG@10 {ndcg:.4f}"
                    if self.on_epoch is not None:
                        self.on_epoch(self.name, epoch, ndcg)
                    if ndcg > best[0]:
                        best = (ndcg, epoch)
                        best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
                        checks_without_gain = 0
                    else:
                        checks_without_gain += 1
                else:
                    scores.append(float("nan"))
                prog.update(task, advance=1, description=msg)
                if self.verbose:
                    prog.console.print(msg)
                if timed_out or (len(valid_users) and checks_without_gain >= self.patience):
                    break
        if best_state is not None:
            net.load_state_dict(best_state)
        net.eval()
        self.loss_curve_ = np.asarray(losses, dtype=np.float64)
        self.valid_curve_ = np.asarray(scores, dtype=np.float64)
        self.best_epoch_ = int(best[1] if best_state is not None else len(losses))
        self.best_valid_ndcg_ = float(best[0]) if best_state is not None else float("nan")
        self.train_seconds_ = round(time.perf_counter() - started, 3)
        self._weights = {k: v.detach().cpu().numpy().copy() for k, v in net.state_dict().items()}
        return self

    def _prepare(self, interactions: Interactions) -> tuple[np.random.Generator, Any, Any, Any]:
        """Seeds, the time-ordered sequences (kept for scoring), and (rng, training windows,
        network, optimiser)."""
        import torch

        torch.set_num_threads(max(1, min(int(self.num_threads), 2)))
        torch.manual_seed(self.random_state)
        rng = np.random.default_rng(self.random_state)
        n_items = interactions.n_items
        if self.tie_break == "item_id":
            self.tie_key_ = item_id_order(interactions.item_ids)
        elif self.tie_break == "index":
            self.tie_key_ = np.arange(n_items, dtype=np.int64)
        else:
            raise ValueError(f"tie_break must be 'item_id' or 'index', got {self.tie_break!r}")
        indptr, flat = order_sequences(interactions.matrix, interactions.last_seen, self.tie_key_)
        self.seq_indptr_, self.seq_items_ = indptr, flat
        self.n_items_ = int(n_items)
        counts = np.bincount(flat, minlength=n_items)
        self.popularity_ = np.log1p(counts).astype(np.float32)
        self.known_items_ = counts > 0
        net = _build_net(n_items, self.hidden, self.layers, self.heads, self.dropout, self.max_len)
        opt = torch.optim.Adam(
            net.parameters(), lr=self.learning_rate, weight_decay=self.weight_decay
        )
        self._net = net
        return rng, self._windows(indptr), net, opt

    def _valid_users(self, valid: sp.csr_matrix | None) -> np.ndarray:
        """Users with a valid item and a training sequence (after :meth:`_prepare`)."""
        if valid is None:
            return np.empty(0, np.int64)
        valid = sp.csr_matrix(valid)
        has_seq = (np.diff(self.seq_indptr_) > 0)[: valid.shape[0]]
        return np.flatnonzero((np.diff(valid.indptr) > 0) & has_seq)

    def _batches(self, windows: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
        """One epoch's mini-batches of window indices: similar lengths together, in random
        order."""
        lengths = windows[:, 1] - windows[:, 0]
        order = np.lexsort((rng.random(len(windows)), lengths))
        batches = [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        rng.shuffle(batches)
        return batches

    def _step(self, net: Any, opt: Any, flat: np.ndarray, spans: np.ndarray) -> tuple[float, int]:
        """One mini-batch of windows: (mean cross-entropy, predicted positions)."""
        import torch

        x = torch.from_numpy(self._batch(flat, spans))
        y = torch.from_numpy(self._batch(flat, spans, shift=1))
        real = x > 0
        h = net(x)[real]
        loss = torch.nn.functional.cross_entropy(net.logits(h), y[real] - 1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return float(loss.detach()), int(real.sum())

    def epoch_cost(
        self,
        interactions: Interactions,
        side: SideData | None = None,
        valid: sp.csr_matrix | None = None,
        seconds: float = 2.0,
    ) -> EpochCost:
        """Setup, one epoch (random mini-batches timed for about ``seconds``, at least two,
        scaled to the epoch's) and one valid score. The model is left unfitted."""
        warm_up_torch()
        t0 = time.perf_counter()
        rng, windows, net, opt = self._prepare(interactions)
        setup = time.perf_counter() - t0
        batches = self._batches(windows, rng)
        net.train()
        t0 = time.perf_counter()
        done = 0
        while done < len(batches) and (done < 2 or time.perf_counter() - t0 < seconds):
            self._step(net, opt, self.seq_items_, windows[batches[done]])
            done += 1
        epoch = (time.perf_counter() - t0) / max(done, 1) * len(batches)
        users = self._valid_users(valid)
        t0 = time.perf_counter()
        if len(users):
            net.eval()
            self._valid_ndcg(users, sp.csr_matrix(valid))
        scoring = time.perf_counter() - t0
        self._net = None
        return EpochCost(setup, epoch, scoring, max(1, int(self.eval_every)))

    def _decayed_lr(self, epochs_done: float, started: float) -> float:
        """Linear decay to 5% over the budget (epochs or seconds, whichever runs out first)."""
        progress = max(
            epochs_done / max(self.epochs, 1),
            (time.perf_counter() - started) / max(self.max_seconds, 1e-9),
        )
        return float(self.learning_rate) * max(0.05, 1.0 - progress)

    def _valid_ndcg(self, users: np.ndarray, valid: sp.csr_matrix) -> float:
        """NDCG@10 of the valid item ranked from the training sequence (history masked)."""
        seqs = [self._fitted_sequence(int(u)) for u in users]
        sc = self._score_sequences(seqs)
        for r, s in enumerate(seqs):
            sc[r, s] = -np.inf
        gains = []
        for r, u in enumerate(users):
            targets = valid.indices[valid.indptr[u] : valid.indptr[u + 1]]
            row = sc[r]
            ranks = np.array([(row > row[t]).sum() for t in targets])
            dcg = np.sum(1.0 / np.log2(ranks[ranks < 10] + 2))
            idcg = np.sum(1.0 / np.log2(np.arange(min(len(targets), 10)) + 2))
            gains.append(dcg / idcg)
        return float(np.mean(gains))

    # -- scoring ----------------------------------------------------------------------------
    def _network(self):
        if self._net is None:
            import torch

            if self._weights is None:
                raise RuntimeError("sasrec model is not fitted")
            net = _build_net(
                self.n_items_, self.hidden, self.layers, self.heads, self.dropout, self.max_len
            )
            net.load_state_dict({k: torch.from_numpy(v) for k, v in self._weights.items()})
            net.eval()
            self._net = net
        return self._net

    def _fitted_sequence(self, user: int) -> np.ndarray:
        return self.seq_items_[self.seq_indptr_[user] : self.seq_indptr_[user + 1]]

    def _score_sequences(self, seqs: list[np.ndarray], chunk: int = 256) -> np.ndarray:
        """Scores of every item after each sequence (item indices, oldest first)."""
        import torch

        net = self._network()
        out = np.empty((len(seqs), self.n_items_), dtype=np.float32)
        seqs = [np.asarray(s, dtype=np.int64)[-self.max_len :] for s in seqs]
        lengths = np.array([len(s) for s in seqs], dtype=np.int64)
        nonempty = np.flatnonzero(lengths > 0)
        out[lengths == 0] = self.popularity_
        order = nonempty[np.argsort(lengths[nonempty], kind="stable")]
        with torch.inference_mode():
            for i in range(0, len(order), chunk):
                rows = order[i : i + chunk]
                x = np.zeros((len(rows), int(lengths[rows].max())), dtype=np.int64)
                for r, u in enumerate(rows):
                    x[r, : lengths[u]] = seqs[u] + 1
                h = net(torch.from_numpy(x))
                last = h[torch.arange(len(rows)), torch.from_numpy(lengths[rows] - 1)]
                out[rows] = net.logits(last).numpy()
        return out

    def sequences(
        self, users: np.ndarray, history: sp.csr_matrix, times: sp.csr_matrix | None = None
    ) -> list[np.ndarray]:
        """The input sequence (item indices, oldest first) ``score`` uses for each row."""
        users = np.asarray(users, dtype=np.int64).ravel()
        history = sp.csr_matrix(history)
        indptr, flat = order_sequences(history, times, self.tie_key_)
        n_fit = len(self.seq_indptr_) - 1
        seqs = []
        for r, u in enumerate(users):
            row = flat[indptr[r] : indptr[r + 1]]
            if times is None and 0 <= u < n_fit:
                fitted = self._fitted_sequence(int(u))
                row = np.concatenate([fitted, row[~np.isin(row, fitted)]])
            row = row[row < self.n_items_]
            seqs.append(row[self.known_items_[row]])
        return seqs

    def score(
        self, users: np.ndarray, history: sp.csr_matrix, times: sp.csr_matrix | None = None
    ) -> np.ndarray:
        """Next-item scores from the last position of each user's (time-ordered) sequence."""
        return self._score_sequences(self.sequences(users, history, times))

    def similar_items(self, item: int, n: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """Cosine similarity of item embeddings."""
        emb = self._item_embeddings().astype(np.float64)
        norms = np.linalg.norm(emb, axis=1)
        norms[norms == 0] = 1.0
        sims = (emb @ emb[item]) / (norms * norms[item])
        sims[item] = -np.inf
        sims[~self.known_items_] = -np.inf
        n = min(n, int(np.isfinite(sims).sum()))
        order = np.argsort(-sims, kind="stable")[:n]
        return order.astype(np.int64), sims[order]

    def _item_embeddings(self) -> np.ndarray:
        if self._weights is None:
            raise RuntimeError("sasrec model is not fitted")
        return self._weights["item.weight"][1:]

    def refit_params(self) -> dict[str, Any]:
        """Parameters to fit again without ``valid``: the epoch early stopping kept."""
        return self.get_params() | {"epochs": int(self.best_epoch_)}

    # -- erasure --------------------------------------------------------------------------
    def forget_users(self, rows: np.ndarray) -> None:
        """Drop the fitted sequences of these users (their rows stay, empty)."""
        lengths = np.diff(self.seq_indptr_)
        keep = np.repeat(~np.isin(np.arange(len(lengths)), rows), lengths)
        lengths[np.asarray(rows, dtype=np.int64)] = 0
        self.seq_items_ = self.seq_items_[keep]
        self.seq_indptr_ = np.concatenate([[0], np.cumsum(lengths)]).astype(self.seq_indptr_.dtype)

    # -- persistence ------------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        """Base state + ``weights.npz`` (network tensors as arrays) + ``training_curve.png``."""
        path = Path(path)
        super().save(path)
        if self._weights is None:
            raise RuntimeError("sasrec model is not fitted")
        np.savez(path / "weights.npz", **self._weights)
        plot_training_curve(
            path / "training_curve.png",
            self.loss_curve_,
            self.valid_curve_,
            self.best_epoch_,
            self.name,
        )

    @classmethod
    def load(cls, path: str | Path) -> Self:
        model = super().load(path)
        with np.load(Path(path) / "weights.npz", allow_pickle=False) as data:
            model._weights = {k: data[k] for k in data.files}
        model._net = None
        return model
