"""Click-through-rate prediction for ads and promoted items: one hashed-feature model with three
strengths, trained on impression rows, scored by AUC and log loss.

A row is a dict of named fields. Agora impressions carry ``user_id``, ``item_id``,
``campaign_id`` (or None), ``tags`` (list), ``position``, ``hour`` and ``recent_items`` (the
user's latest item ids, newest first), plus ``clicked`` (0/1) to fit on; public CTR logs
(:func:`read_criteo`, :func:`read_avazu`) are rows of the same kind with their own field names,
so one model class trains on both. Every value (str, int, float, bool; a list is a bag whose
members share weight 1/k; None means missing) becomes the token ``field=value`` hashed into one
of ``n_buckets`` buckets (the hashing trick), so ids never seen in training still score: they
land in an untrained (near-neutral) bucket or share one with another token.

``kind``:

* ``"logreg"``: logistic regression on the hashed one-hot features (a bias per token);
* ``"fm"``: a factorisation machine (Rendle, ICDM 2010): logreg plus a ``dim``-sized vector per
  token whose pairwise dot products model interactions (user x tag, position x campaign ...);
* ``"din"``: the FM plus a Deep Interest Network unit (Zhou et al., KDD 2018): the candidate
  item attends over the user's recent items (an MLP on ``[q, k, q-k, q*k]`` gives each a weight,
  no softmax), and the pooled interest vector joins the FM's pairwise term as one more feature.

The user's history (``sequence_field``) is used by all three: as a bag of ``recent_items``
tokens, a bag of the tags (``side_field``) of those items, looked up in the item -> tags
catalogue the model learns from its training rows (``catalogue_``), and a token saying where
the candidate itself is in the history (-1 = absent, 0 = newest, .. capped at 5); DIN also
describes every history item and the candidate as ``item + mean(tags)`` vectors. Rows without
the field (Criteo, Avazu) simply have no history.

Training: mini-batch log loss, sparse Adam on the embedding tables with an L2 penalty on the
rows a batch touches, plain Adam on the attention MLP; seeded, ``num_threads`` torch threads.
Early stopping: the last ``valid_fraction`` of the rows (in the order given: pass them oldest
first) are held out; after each epoch their log loss is measured, the best epoch's weights are
kept and training stops after ``patience`` epochs without improvement (``valid_fraction=0``
trains all ``epochs`` on every row).
State is saved without pickle (``params.json``, ``catalogue.json``, ``weights.npz``).
"""

from __future__ import annotations

import csv
import functools
import json
import math
import os
import time
import zlib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Self

import numpy as np

KINDS = ("logreg", "fm", "din")
#: Probabilities are clipped to [EPS, 1 - EPS] so log loss is always finite.
EPS = 1e-7
_SCALARS = (str, int, float, bool, np.integer, np.floating)


def hash_token(field: str, value: Any, n_buckets: int) -> int:
    """Bucket of ``field=value`` in ``1 .. n_buckets-1`` (0 is padding); stable across runs
    (``1`` and ``"1"`` are the same token)."""
    return _bucket(f"{field}\x1f{value}", n_buckets)


@functools.lru_cache(maxsize=2**20)
def _bucket(token: str, n_buckets: int) -> int:
    return zlib.crc32(token.encode()) % (n_buckets - 1) + 1


def _values(row_no: int, field: str, value: Any) -> list:
    """The tokens' values of one field: [] for None, the members of a list, else [value]."""
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        for v in value:
            if not isinstance(v, _SCALARS):
                raise ValueError(
                    f"row {row_no}: field {field!r} holds {type(v).__name__}; "
                    "list members must be str, int, float or bool"
                )
        return list(value)
    if isinstance(value, _SCALARS):
        return [value]
    raise ValueError(
        f"row {row_no}: field {field!r} is a {type(value).__name__}; "
        "expected str, int, float, bool, None or a list of those"
    )


def _pad(rows: list[list[tuple[int, float]]], width: int | None = None) -> tuple:
    """Ragged (bucket, weight) lists -> padded int64 / float32 arrays (padding = bucket 0)."""
    if width is not None:
        rows = [r[:width] for r in rows]
    lens = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
    width = max(int(lens.max(initial=0)), 1) if width is None else max(width, 1)
    idx = np.zeros((len(rows), width), dtype=np.int64)
    w = np.zeros((len(rows), width), dtype=np.float32)
    pairs = [p for r in rows for p in r]
    if pairs:
        row_of = np.repeat(np.arange(len(rows)), lens)
        col = np.arange(len(pairs)) - np.repeat(np.cumsum(lens) - lens, lens)
        b, x = zip(*pairs, strict=True)
        idx[row_of, col] = b
        w[row_of, col] = x
    return idx, w


class CTRModel:
    """Click probability of an impression row; ``fit(rows)``, ``predict(rows)``, save/load."""

    def __init__(
        self,
        kind: str = "fm",
        dim: int = 16,
        n_buckets: int = 2**17,
        epochs: int = 8,
        batch_size: int = 256,
        lr: float = 0.01,
        l2: float = 1e-4,
        init_std: float = 0.01,
        valid_fraction: float = 0.1,
        patience: int = 1,
        max_history: int = 20,
        max_tags: int = 8,
        sequence_field: str = "recent_items",
        target_field: str = "item_id",
        side_field: str = "tags",
        label_field: str = "clicked",
        seed: int = 0,
        num_threads: int = 1,
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        if n_buckets < 2 or dim < 1 or epochs < 1 or batch_size < 1 or patience < 1:
            raise ValueError("need n_buckets >= 2 and dim, epochs, batch_size, patience >= 1")
        if not 0 <= valid_fraction < 1:
            raise ValueError(f"valid_fraction must be in [0, 1), got {valid_fraction}")
        self.kind = kind
        self.dim = dim
        self.n_buckets = n_buckets
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.l2 = l2
        self.init_std = init_std
        self.valid_fraction = valid_fraction
        self.patience = patience
        self.max_history = max_history
        self.max_tags = max_tags
        self.sequence_field = sequence_field
        self.target_field = target_field
        self.side_field = side_field
        self.label_field = label_field
        self.seed = seed
        self.num_threads = num_threads
        self.weights_: dict[str, np.ndarray] | None = None
        self.catalogue_: dict[str, list[str]] = {}
        self.base_rate_: float | None = None
        self.loss_curve_: list[float] = []
        self.valid_curve_: list[float] = []
        self.best_epoch_: int | None = None
        self.fit_seconds_: float | None = None
        self._net = None

    # -- hyper-parameters -------------------------------------------------------------------
    _PARAMS = (
        "kind",
        "dim",
        "n_buckets",
        "epochs",
        "batch_size",
        "lr",
        "l2",
        "init_std",
        "valid_fraction",
        "patience",
        "max_history",
        "max_tags",
        "sequence_field",
        "target_field",
        "side_field",
        "label_field",
        "seed",
        "num_threads",
    )

    def get_params(self) -> dict[str, Any]:
        """Constructor arguments, as saved in ``params.json``."""
        return {k: getattr(self, k) for k in self._PARAMS}

    def __repr__(self) -> str:
        return f"CTRModel(kind={self.kind!r}, dim={self.dim}, n_buckets={self.n_buckets})"

    # -- features ---------------------------------------------------------------------------
    def _learn_catalogue(self, rows: Sequence[dict]) -> dict[str, list[str]]:
        """item id -> its tags (first occurrence wins), from rows that carry both fields."""
        cat: dict[str, list[str]] = {}
        for i, row in enumerate(rows):
            item = row.get(self.target_field)
            if item is None or str(item) in cat:
                continue
            tags = _values(i, self.side_field, row.get(self.side_field))
            cat[str(item)] = [str(t) for t in tags[: self.max_tags]]
        return cat

    def _item_tokens(self, item: Any) -> list[tuple[int, float]]:
        """``item + mean(tags)`` as (bucket, weight): how DIN describes one item."""
        n = self.n_buckets
        out = [(hash_token(self.target_field, item, n), 1.0)]
        tags = self.catalogue_.get(str(item), [])
        out += [(hash_token(self.side_field, t, n), 1.0 / len(tags)) for t in tags]
        return out

    def _encode(self, rows: Sequence[dict]) -> dict[str, np.ndarray]:
        """Rows -> padded bucket/weight arrays (flat features; DIN query and history)."""
        n = self.n_buckets
        seq, skip = self.sequence_field, {self.sequence_field, self.label_field}
        hist_tag_field = f"{seq}.{self.side_field}"
        seen_field = f"{seq}.has_{self.target_field}"  # where the candidate is in the history
        flat: list[list[tuple[int, float]]] = []
        query: list[list[tuple[int, float]]] = []
        hist: list[list[int]] = []
        local: dict[str, int] = {}  # history item -> row of the item table (0 = padding)
        for i, row in enumerate(rows):
            if not isinstance(row, dict):
                raise ValueError(f"row {i}: expected a dict of fields, got {type(row).__name__}")
            feats: list[tuple[int, float]] = []
            for field, value in row.items():
                if field in skip:
                    continue
                vals = _values(i, field, value)
                feats += [(hash_token(field, v, n), 1.0 / len(vals)) for v in vals]
            recent = [str(v) for v in _values(i, seq, row.get(seq))][: self.max_history]
            if recent:
                feats += [(hash_token(seq, v, n), 1.0 / len(recent)) for v in recent]
                tags = sorted({t for v in recent for t in self.catalogue_.get(v, [])})
                feats += [(hash_token(hist_tag_field, t, n), 1.0 / len(tags)) for t in tags]
                item = row.get(self.target_field)
                seen = recent.index(str(item)) if str(item) in recent else -1
                feats.append((hash_token(seen_field, min(seen, 5), n), 1.0))
            flat.append(feats)
            if self.kind == "din":
                item = row.get(self.target_field)
                q = [] if item is None else [(hash_token(self.target_field, item, n), 1.0)]
                own = [str(t) for t in _values(i, self.side_field, row.get(self.side_field))]
                own = own[: self.max_tags]
                q += [(hash_token(self.side_field, t, n), 1.0 / len(own)) for t in own]
                query.append(q)
                hist.append([local.setdefault(v, len(local) + 1) for v in recent])
        idx, w = _pad(flat)
        out = {"idx": idx, "w": w}
        if self.kind == "din":
            out["q_idx"], out["q_w"] = _pad(query, self.max_tags + 1)
            items = [[]] + [self._item_tokens(v) for v in local]
            table_idx, table_w = _pad(items, self.max_tags + 1)
            h_item, _ = _pad([[(j, 1.0) for j in h] for h in hist])
            out["h_idx"], out["h_w"] = table_idx[h_item], table_w[h_item]
            out["h_mask"] = (h_item > 0).astype(np.float32)
        return out

    def _labels(self, rows: Sequence[dict]) -> np.ndarray:
        y = np.empty(len(rows), dtype=np.float32)
        for i, row in enumerate(rows):
            v = row.get(self.label_field) if isinstance(row, dict) else None
            if v not in (0, 1):
                raise ValueError(f"row {i}: {self.label_field!r} must be 0 or 1, got {v!r}")
            y[i] = float(v)
        return y

    # -- training and scoring ---------------------------------------------------------------
    def fit(self, rows: Sequence[dict]) -> Self:
        """Learn from impression rows with a 0/1 ``clicked`` label (any field names work)."""
        import torch

        rows = list(rows)
        if not rows:
            raise ValueError("fit needs at least one row")
        y = self._labels(rows)
        start = time.perf_counter()
        torch.set_num_threads(max(1, int(self.num_threads)))
        torch.manual_seed(self.seed)
        rng = np.random.default_rng(self.seed)
        self.catalogue_ = self._learn_catalogue(rows)
        self.base_rate_ = float(y.mean())
        n_valid = int(len(rows) * self.valid_fraction)
        n_train = len(rows) - n_valid
        if n_train < 1:
            raise ValueError(f"valid_fraction={self.valid_fraction} leaves no training rows")
        data = {k: torch.from_numpy(v) for k, v in self._encode(rows).items()}
        target = torch.from_numpy(y)
        net = _build_net(self.kind, self.n_buckets, self.dim, self.init_std, self.base_rate_)
        sparse = [p for name, p in net.named_parameters() if name in ("lin.weight", "emb.weight")]
        dense = [
            p for name, p in net.named_parameters() if name not in ("lin.weight", "emb.weight")
        ]
        opts = [torch.optim.SparseAdam(sparse, lr=self.lr)]
        if dense:
            opts.append(torch.optim.Adam(dense, lr=self.lr))
        loss_fn = torch.nn.BCEWithLogitsLoss()
        valid = {k: v[n_train:] for k, v in data.items()}
        self.loss_curve_, self.valid_curve_, self.best_epoch_ = [], [], 0
        best = None
        for epoch in range(1, self.epochs + 1):
            net.train()
            order = torch.from_numpy(rng.permutation(n_train))
            total = 0.0
            for b in range(0, n_train, self.batch_size):
                sel = order[b : b + self.batch_size]
                logit, reg = net({k: v[sel] for k, v in data.items()})
                loss = loss_fn(logit, target[sel])
                for opt in opts:
                    opt.zero_grad()
                (loss + self.l2 * reg / len(sel)).backward()
                for opt in opts:
                    opt.step()
                total += float(loss.detach()) * len(sel)
            self.loss_curve_.append(total / n_train)
            if not n_valid:
                self.best_epoch_ = epoch
                continue
            net.eval()
            with torch.no_grad():
                self.valid_curve_.append(float(loss_fn(net(valid)[0], target[n_train:])))
            if self.valid_curve_[-1] < min(self.valid_curve_[:-1], default=math.inf):
                self.best_epoch_ = epoch
                best = {k: v.detach().clone() for k, v in net.state_dict().items()}
            elif epoch - self.best_epoch_ >= self.patience:
                break
        if best is not None:
            net.load_state_dict(best)
        net.eval()
        self._net = net
        self.weights_ = {k: v.detach().cpu().numpy().copy() for k, v in net.state_dict().items()}
        self.fit_seconds_ = time.perf_counter() - start
        return self

    def predict(self, rows: Sequence[dict]) -> np.ndarray:
        """Click probability of each row (float64 in (0, 1)); labels in the rows are ignored."""
        import torch

        if self.weights_ is None:
            raise RuntimeError("CTRModel is not fitted")
        rows = list(rows)
        if not rows:
            return np.zeros(0, dtype=np.float64)
        net = self._network()
        out = np.empty(len(rows), dtype=np.float64)
        step = 4096
        with torch.no_grad():
            for b in range(0, len(rows), step):
                data = {k: torch.from_numpy(v) for k, v in self._encode(rows[b : b + step]).items()}
                logit, _ = net(data)
                out[b : b + step] = torch.sigmoid(logit.double()).numpy()
        return np.clip(out, EPS, 1 - EPS)

    def _network(self):
        if self._net is None:
            import torch

            net = _build_net(
                self.kind, self.n_buckets, self.dim, self.init_std, self.base_rate_ or 0.5
            )
            net.load_state_dict({k: torch.from_numpy(v) for k, v in self.weights_.items()})
            net.eval()
            self._net = net
        return self._net

    # -- persistence ------------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        """Write ``weights.npz``, ``catalogue.json`` and ``params.json`` into folder ``path``.

        Each file is written under a temporary name and renamed into place, so a reader never
        sees a half-written file and the folder's mtime changes (servers reload on it)."""
        if self.weights_ is None:
            raise RuntimeError("CTRModel is not fitted")
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        state = {
            "params": self.get_params(),
            "base_rate": self.base_rate_,
            "loss_curve": self.loss_curve_,
            "valid_curve": self.valid_curve_,
            "best_epoch": self.best_epoch_,
            "fit_seconds": self.fit_seconds_,
        }
        with open(path / ".weights.npz.tmp", "wb") as fh:
            np.savez(fh, **self.weights_)
        os.replace(path / ".weights.npz.tmp", path / "weights.npz")
        for name, obj in (("catalogue.json", self.catalogue_), ("params.json", state)):
            (path / f".{name}.tmp").write_text(json.dumps(obj, indent=1))
            os.replace(path / f".{name}.tmp", path / name)

    @classmethod
    def load(cls, path: str | Path) -> CTRModel:
        """Read a model written by :meth:`save` (no pickle)."""
        path = Path(path)
        state = json.loads((path / "params.json").read_text())
        model = cls(**state["params"])
        model.base_rate_ = state["base_rate"]
        model.loss_curve_ = state["loss_curve"]
        model.valid_curve_ = state["valid_curve"]
        model.best_epoch_ = state["best_epoch"]
        model.fit_seconds_ = state["fit_seconds"]
        model.catalogue_ = json.loads((path / "catalogue.json").read_text())
        with np.load(path / "weights.npz", allow_pickle=False) as data:
            model.weights_ = {k: data[k] for k in data.files}
        return model


def _build_net(kind: str, n_buckets: int, dim: int, init_std: float, base_rate: float):
    """The torch module behind :class:`CTRModel` (torch is imported only when needed)."""
    import torch
    from torch import nn

    class _Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            rate = min(max(base_rate, 1e-4), 1 - 1e-4)
            self.bias = nn.Parameter(torch.tensor([math.log(rate / (1 - rate))]))
            self.lin = nn.Embedding(n_buckets, 1, padding_idx=0, sparse=True)
            nn.init.zeros_(self.lin.weight)
            if kind != "logreg":
                self.emb = nn.Embedding(n_buckets, dim, padding_idx=0, sparse=True)
                nn.init.normal_(self.emb.weight, std=init_std)
                with torch.no_grad():
                    self.emb.weight[0].zero_()
            if kind == "din":
                self.att = nn.Sequential(nn.Linear(4 * dim, 32), nn.ReLU(), nn.Linear(32, 1))

        def forward(self, b: dict) -> tuple:
            idx, w = b["idx"], b["w"]
            lin = self.lin(idx).squeeze(-1)
            logit = self.bias + (lin * w).sum(1)
            reg = (lin * lin).sum()
            if kind == "logreg":
                return logit, reg
            e = self.emb(idx)
            reg = reg + (e * e).sum()
            vecs = e * w.unsqueeze(-1)
            if kind == "din":
                q = (self.emb(b["q_idx"]) * b["q_w"].unsqueeze(-1)).sum(1)
                h = (self.emb(b["h_idx"]) * b["h_w"].unsqueeze(-1)).sum(2)
                qe = q.unsqueeze(1).expand_as(h)
                a = self.att(torch.cat([qe, h, qe - h, qe * h], -1)).squeeze(-1)
                pooled = ((a * b["h_mask"]).unsqueeze(-1) * h).sum(1)
                vecs = torch.cat([vecs, pooled.unsqueeze(1)], 1)
            s = vecs.sum(1)
            logit = logit + 0.5 * (s * s - (vecs * vecs).sum(1)).sum(1)
            return logit, reg

    return _Net()


# -- evaluation ------------------------------------------------------------------------------
def ctr_metrics(y: Sequence[int] | np.ndarray, p: np.ndarray, base_rate: float) -> dict:
    """AUC and log loss of ``p`` on labels ``y``, beside the constant predictor ``base_rate``
    (the training click rate: AUC 0.5, its log loss on these labels)."""
    from sklearn.metrics import log_loss, roc_auc_score

    y = np.asarray(y, dtype=np.int64)
    p = np.clip(np.asarray(p, dtype=np.float64), EPS, 1 - EPS)
    both = 0 < y.sum() < len(y)
    rate = min(max(base_rate, EPS), 1 - EPS)
    return {
        "n": int(len(y)),
        "clicks": int(y.sum()),
        "auc": float(roc_auc_score(y, p)) if both else float("nan"),
        "logloss": float(log_loss(y, p, labels=[0, 1])),
        "baseline_logloss": float(log_loss(y, np.full(len(y), rate), labels=[0, 1])),
    }


# -- public CTR samples ----------------------------------------------------------------------
def _criteo_int(text: str) -> str | None:
    """Criteo integer feature -> category: the value up to 2, else ``int(ln(v)^2)`` (the
    binning of the 2014 challenge's winning entry), ``neg`` below 0; None if missing."""
    if text == "":
        return None
    v = int(float(text))
    if v < 0:
        return "neg"
    return str(v) if v <= 2 else f"b{int(math.log(v) ** 2)}"


def read_criteo(path: str | Path, limit: int | None = None) -> list[dict]:
    """Rows of a Criteo DAC file as ``{"clicked", "I1".."I13", "C1".."C26"}`` dicts, in file
    order. Reads the raw tab-separated ``train.txt`` format (short lines padded: trailing empty
    fields are sometimes stripped) and the CSV sample with a ``label,I1,..`` header."""
    names = [f"I{i}" for i in range(1, 14)] + [f"C{i}" for i in range(1, 27)]
    rows: list[dict] = []
    with open(path, encoding="utf-8", newline="") as fh:
        first = fh.readline()
        fh.seek(0)
        if first.startswith("label,"):
            lines: Iterable[list[str]] = csv.reader(fh)
            next(lines)  # type: ignore[call-overload]
        else:
            lines = (line.rstrip("\r\n").split("\t") for line in fh)
        for no, fields in enumerate(lines, start=1):
            if limit is not None and len(rows) >= limit:
                break
            if fields == [""] or not fields:
                continue
            if len(fields) > 40:
                raise ValueError(f"{path}: line {no} has {len(fields)} fields, at most 40 expected")
            fields = fields + [""] * (40 - len(fields))
            row: dict[str, Any] = {"clicked": int(fields[0])}
            for name, text in zip(names, fields[1:], strict=True):
                row[name] = _criteo_int(text) if name[0] == "I" else (text or None)
            rows.append(row)
    return rows


def read_avazu(path: str | Path, limit: int | None = None) -> list[dict]:
    """Rows of an Avazu ``train.csv`` file: ``clicked``, ``hour`` (hour of day from
    ``YYMMDDHH``), ``weekday`` and every other column as a categorical field (``id`` dropped)."""
    import datetime as dt

    rows: list[dict] = []
    with open(path, encoding="utf-8", newline="") as fh:
        for rec in csv.DictReader(fh):
            if limit is not None and len(rows) >= limit:
                break
            stamp = rec.pop("hour")
            rec.pop("id", None)
            row: dict[str, Any] = {"clicked": int(rec.pop("click"))}
            day = dt.date(2000 + int(stamp[:2]), int(stamp[2:4]), int(stamp[4:6]))
            row["hour"] = int(stamp[6:8])
            row["weekday"] = day.weekday()
            row.update({k: (v or None) for k, v in rec.items()})
            rows.append(row)
    return rows


# -- an Agora-shaped impression log with a known click rule -----------------------------------
def synthetic_impressions(
    n: int,
    seed: int = 0,
    n_users: int = 500,
    n_items: int = 300,
    n_topics: int = 24,
    appeal_sd: float = 0.6,
    match_effect: float = 2.5,
) -> tuple[list[dict], np.ndarray]:
    """``n`` impression rows in Agora's shape whose clicks depend on the match between the
    ad's topic and the topics of the user's *current* recent items, plus item appeal and
    position; returns the rows and each row's true click probability.

    Every item has a topic tag (one of ``n_topics``) and a format tag (video, text, poll, link:
    no effect). Each user has four interest topics; every impression comes from a session
    about one or two of them, whose recent items (2..12, newest first) have those topics.
    Half the ads are targeted (an item of one of the user's four topics), half are random.
    ``P(click) = sigmoid(-2.5 + appeal(item) - 0.25 * position + match_effect * match)`` with
    ``appeal ~ N(0, appeal_sd)`` per item, ``match`` = 1
    when the candidate's topic is the topic of a recent item. The user id alone only tells the
    four interests, the item alone only its appeal: a per-item model cannot see the match."""
    rng = np.random.default_rng(seed)
    formats = ["video", "text", "poll", "link"]
    topic = rng.permutation(np.arange(n_items) % n_topics)  # every topic has items
    fmt = rng.integers(0, len(formats), n_items)
    appeal = rng.normal(0.0, appeal_sd, n_items)
    campaigns = rng.integers(0, 20, n_items)
    by_topic = np.argsort(topic, kind="stable")
    count = np.bincount(topic, minlength=n_topics)
    start = np.cumsum(count) - count

    def item_of(topics: np.ndarray) -> np.ndarray:
        return by_topic[start[topics] + (rng.random(topics.shape) * count[topics]).astype(int)]

    interests = np.argsort(rng.random((n_users, n_topics)), axis=1)[:, :4]
    user = rng.integers(n_users, size=n)
    first = rng.integers(4, size=n)
    second = (first + rng.integers(1, 4, size=n)) % 4
    two = rng.random(n) < 0.5
    pick = np.where(two[:, None] & (rng.random((n, 12)) < 0.5), second[:, None], first[:, None])
    history = item_of(interests[user[:, None], pick])
    length = rng.integers(2, 13, size=n)
    targeted = rng.random(n) < 0.5
    item = np.where(
        targeted, item_of(interests[user, rng.integers(4, size=n)]), rng.integers(n_items, size=n)
    )
    valid = np.arange(12)[None, :] < length[:, None]
    match = ((topic[history] == topic[item][:, None]) & valid).any(axis=1)
    position = rng.integers(0, 5, size=n)
    hour = rng.integers(0, 24, size=n)
    z = -2.5 + appeal[item] - 0.25 * position + match_effect * match
    probs = 1 / (1 + np.exp(-z))
    clicked = rng.random(n) < probs
    rows = [
        {
            "user_id": f"u{user[k]}",
            "item_id": f"i{item[k]}",
            "campaign_id": f"c{campaigns[item[k]]}" if item[k] % 3 else None,
            "tags": [f"topic{topic[item[k]]}", formats[fmt[item[k]]]],
            "position": int(position[k]),
            "hour": int(hour[k]),
            "recent_items": [f"i{h}" for h in history[k, : length[k]]],
            "clicked": int(clicked[k]),
        }
        for k in range(n)
    ]
    return rows, probs
