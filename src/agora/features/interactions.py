"""The interaction matrix every recommender is fitted on, with the id maps around it."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp


def as_float32(matrix: sp.spmatrix, binary: bool) -> sp.csr_matrix:
    """``matrix`` as float32 csr; with ``binary`` every positive entry becomes 1."""
    x = sp.csr_matrix(matrix, dtype=np.float32)
    if binary:
        x = x.copy()
        x.data = (x.data > 0).astype(np.float32)
        x.eliminate_zeros()
    return x


@dataclass
class SideData:
    """What models may know besides the interaction matrix.

    Item fields are aligned with ``Interactions.item_ids`` (row i describes item i); ``social``
    is a users x users matrix aligned with ``Interactions.user_ids`` (``social[u, v]`` = weight
    of u's edge to v: friend, follow, trust).
    """

    texts: list[str] | None = None
    tags: list[list[str]] | None = None
    created: np.ndarray | None = None  # epoch seconds, float64; NaN when unknown
    authors: list[str | None] | None = None
    social: sp.csr_matrix | None = None
    media: list[list[str]] | None = None  # per item: features.store.media_tokens


@dataclass
class Interactions:
    """A users x items matrix of positive interaction strength.

    ``matrix[u, i]`` is the summed weight of user ``user_ids[u]``'s events on item ``item_ids[i]``.
    ``last_seen[u, i]`` (same sparsity, optional) is the epoch second of the latest such event,
    which time-aware models (trending) use.
    """

    matrix: sp.csr_matrix
    user_ids: np.ndarray  # external ids, dtype object (str)
    item_ids: np.ndarray
    last_seen: sp.csr_matrix | None = None
    _user_index: dict[str, int] = field(default_factory=dict, repr=False)
    _item_index: dict[str, int] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.matrix = sp.csr_matrix(self.matrix, dtype=np.float32)
        self.matrix.sum_duplicates()
        self.matrix.sort_indices()
        self.user_ids = np.asarray(self.user_ids, dtype=object)
        self.item_ids = np.asarray(self.item_ids, dtype=object)
        if self.matrix.shape != (len(self.user_ids), len(self.item_ids)):
            raise ValueError(
                f"matrix shape {self.matrix.shape} does not match "
                f"{len(self.user_ids)} users x {len(self.item_ids)} items"
            )
        self._user_index = {u: i for i, u in enumerate(self.user_ids)}
        self._item_index = {t: i for i, t in enumerate(self.item_ids)}

    @classmethod
    def from_triples(
        cls,
        users: list[str] | np.ndarray,
        items: list[str] | np.ndarray,
        weights: list[float] | np.ndarray | None = None,
        timestamps: list[float] | np.ndarray | None = None,
        user_ids: list[str] | np.ndarray | None = None,
        item_ids: list[str] | np.ndarray | None = None,
    ) -> Interactions:
        """Build from parallel arrays of external ids; repeated pairs add up their weights.

        ``user_ids``/``item_ids`` fix the index order (and may hold ids with no interactions,
        e.g. cold items that must stay rankable); by default ids are sorted.
        """
        users = np.asarray(users, dtype=object)
        items = np.asarray(items, dtype=object)
        if user_ids is None:
            user_ids = np.array(sorted(set(users.tolist())), dtype=object)
        if item_ids is None:
            item_ids = np.array(sorted(set(items.tolist())), dtype=object)
        uindex = {u: i for i, u in enumerate(user_ids)}
        iindex = {t: i for i, t in enumerate(item_ids)}
        rows = np.fromiter((uindex[u] for u in users), dtype=np.int64, count=len(users))
        cols = np.fromiter((iindex[t] for t in items), dtype=np.int64, count=len(items))
        data = (
            np.ones(len(users), dtype=np.float32)
            if weights is None
            else np.asarray(weights, dtype=np.float32)
        )
        shape = (len(user_ids), len(item_ids))
        matrix = sp.csr_matrix((data, (rows, cols)), shape=shape)
        last_seen = None
        if timestamps is not None:
            ts = np.asarray(timestamps, dtype=np.float64)
            coo = sp.coo_matrix((ts, (rows, cols)), shape=shape)
            # keep the latest timestamp per (user, item): max over duplicates
            order = np.lexsort((coo.data, coo.col, coo.row))
            r, c, d = coo.row[order], coo.col[order], coo.data[order]
            last = np.ones(len(r), dtype=bool)
            last[:-1] = (r[1:] != r[:-1]) | (c[1:] != c[:-1])
            last_seen = sp.csr_matrix((d[last], (r[last], c[last])), shape=shape)
        return cls(matrix, user_ids, item_ids, last_seen)

    @property
    def shape(self) -> tuple[int, int]:
        return self.matrix.shape

    @property
    def n_users(self) -> int:
        return self.matrix.shape[0]

    @property
    def n_items(self) -> int:
        return self.matrix.shape[1]

    def user_index(self, user_id: str) -> int | None:
        """Row of a user, or None when the user is unknown."""
        return self._user_index.get(user_id)

    def item_index(self, item_id: str) -> int | None:
        """Column of an item, or None when the item is unknown."""
        return self._item_index.get(item_id)

    def fingerprint(self) -> str:
        """A short hash of the data, stored with models so one can tell what they were fitted on."""
        h = hashlib.sha256()
        h.update(np.asarray(self.matrix.shape, dtype=np.int64).tobytes())
        h.update(self.matrix.indptr.tobytes())
        h.update(self.matrix.indices.tobytes())
        h.update(self.matrix.data.tobytes())
        h.update("\x1f".join(map(str, self.user_ids)).encode())
        h.update("\x1f".join(map(str, self.item_ids)).encode())
        return h.hexdigest()[:16]


def hold_out_one(
    interactions: Interactions, seed: int = 0, min_items: int = 3
) -> tuple[Interactions, sp.csr_matrix]:
    """Hold one random item out of every user with at least ``min_items`` items.

    Returns (the rest, with its event times, as Interactions; the held-out users x items
    matrix). Used to measure or tune a model when no validation split exists.
    """
    x = interactions.matrix
    rng = np.random.default_rng(seed)
    counts = np.diff(x.indptr)
    users = np.flatnonzero(counts >= min_items)
    pos = x.indptr[users] + (rng.random(len(users)) * counts[users]).astype(np.int64)
    held = sp.csr_matrix((np.ones(len(users), np.float32), (users, x.indices[pos])), shape=x.shape)
    keep = np.ones(x.nnz, dtype=bool)
    keep[pos] = False
    coo = x.tocoo()
    rest = sp.csr_matrix(
        (coo.data[keep], (coo.row[keep], coo.col[keep])), shape=x.shape, dtype=np.float32
    )
    last_seen = interactions.last_seen
    if last_seen is not None:  # event times stay with the kept entries
        last_seen = sp.csr_matrix(last_seen.multiply(rest > 0))
    return Interactions(rest, interactions.user_ids, interactions.item_ids, last_seen), held
