"""The one recommender interface every model implements (in the spirit of implicit/scikit-learn).

Hyper-parameters go in the constructor; ``fit`` learns state into attributes ending in ``_``;
``score`` gives every item a score for some users; ``recommend`` and ``similar_items`` rank.
``save``/``load`` write the learned state (numpy arrays, sparse matrices, JSON scalars) to a folder
without pickle, so artefacts are portable and safe to load.
"""

from __future__ import annotations

import inspect
import json
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import scipy.sparse as sp

from agora.features.interactions import Interactions, SideData


class CatalogueTooLarge(ValueError):
    """A model that keeps a dense items x items matrix refuses a catalogue it cannot hold."""


def check_dense_catalogue(model: str, n_items: int, max_items: int, bytes_per_cell: int) -> None:
    """Raise :class:`CatalogueTooLarge` (naming the memory needed) past ``max_items`` items."""
    if n_items > max_items:
        gigabytes = n_items * n_items * bytes_per_cell / 1e9
        raise CatalogueTooLarge(
            f"{model} keeps a dense items x items matrix: {n_items:,} items need "
            f"{gigabytes:,.1f} GB per copy and hours of CPU; it is limited to {max_items:,} "
            f"items (parameter max_items). Use als, bpr or itemknn for this catalogue."
        )


#: Told after each validated epoch of a model that trains in epochs: (label, epoch, valid
#: NDCG@10); the label names the model (and for ``social`` the friends weight in training).
EpochHook = Callable[[str, int, float], None]


@dataclass(frozen=True)
class EpochCost:
    """What training a model in epochs costs on given data, measured by ``epoch_cost`` (a
    few mini-batches timed and scaled to a whole epoch), so a time budget can be split by it:
    ``setup_seconds`` before the first epoch, ``epoch_seconds`` per epoch, ``valid_seconds``
    per valid score (every ``eval_every`` epochs), ``trainings`` runs of all that (``social``
    trains once per friends weight)."""

    setup_seconds: float
    epoch_seconds: float
    valid_seconds: float
    eval_every: int = 1
    trainings: int = 1

    def seconds(self, epochs: float) -> float:
        """Seconds for ``epochs`` epochs of every training, their valid scores included."""
        per_epoch = self.epoch_seconds + self.valid_seconds / max(self.eval_every, 1)
        return self.trainings * (self.setup_seconds + epochs * per_epoch)

    def epochs(self, seconds: float) -> float:
        """Epochs of every training that ``seconds`` pay for (the inverse of :meth:`seconds`)."""
        per_epoch = self.epoch_seconds + self.valid_seconds / max(self.eval_every, 1)
        return max(seconds / self.trainings - self.setup_seconds, 0.0) / max(per_epoch, 1e-9)


def warm_up_torch() -> None:
    """Pay, before a cost probe's clock starts, what a process's first torch optimiser costs
    (torch imports its compiler then, about 0.8 s): the fits after the probe do not pay it."""
    import torch

    torch.optim.Adam([torch.zeros(1, requires_grad=True)])


class Recommender(ABC):
    """Base class: subclasses set ``name`` and implement ``fit``, ``score``, ``similar_items``."""

    name: ClassVar[str]
    #: True for models that read the order of a user's events (``times``): the evaluation
    #: protocol then gives them train + valid as test-time history (RecBole's leave-one-out).
    sequential: ClassVar[bool] = False
    #: Learned arrays with one entry per training user, by attribute name, and the axis the
    #: users run along (see :meth:`forget_users`). Item-side state is not listed.
    user_arrays: ClassVar[dict[str, int]] = {}
    #: Epochs a model that trains in epochs usually needs to come near its best on valid (0 for
    #: one-pass models); a time budget is split so that each such model can reach it.
    target_epochs: ClassVar[int] = 0
    #: Set on a model that trains in epochs to hear each validated epoch (not a parameter).
    on_epoch: EpochHook | None = None

    # -- parameters -----------------------------------------------------------------------
    def get_params(self) -> dict[str, Any]:
        """Constructor parameters and their current values (scikit-learn style)."""
        sig = inspect.signature(type(self).__init__)
        return {
            p: getattr(self, p)
            for p in sig.parameters
            if p != "self" and sig.parameters[p].kind is not inspect.Parameter.VAR_KEYWORD
        }

    def refit_params(self) -> dict[str, Any]:
        """Parameters to fit this model again on more data without ``valid`` (``agora train
        --model auto``): what was chosen on valid pinned (e.g. the early-stopping epoch); by
        default :meth:`get_params`."""
        return self.get_params()

    # -- learning and scoring ---------------------------------------------------------------
    def epoch_cost(
        self,
        interactions: Interactions,
        side: SideData | None = None,
        valid: sp.csr_matrix | None = None,
        seconds: float = 2.0,
    ) -> EpochCost:
        """What fitting would cost per epoch on this data (models with ``target_epochs``),
        measured from about ``seconds`` of training steps; the model is left unfitted."""
        raise NotImplementedError(f"{self.name} does not train in epochs")

    @abstractmethod
    def fit(
        self,
        interactions: Interactions,
        side: SideData | None = None,
        valid: sp.csr_matrix | None = None,
    ) -> Self:
        """Learn from a users x items interaction matrix and optional side data.

        ``valid`` (users x items, aligned with ``interactions``) holds held-out interactions a
        model may use for early stopping or for learning blend weights, never for anything
        else; models must also fit without it.
        """

    @abstractmethod
    def score(
        self, users: np.ndarray, history: sp.csr_matrix, times: sp.csr_matrix | None = None
    ) -> np.ndarray:
        """Dense (len(users), n_items) scores; higher is better.

        ``users`` are row indices of the fitted matrix (-1 for a user the model never saw);
        ``history`` holds those users' current interactions (rows aligned with ``users``,
        n_items columns) and may include events newer than ``fit``: models that can use it
        (item-KNN, EASE, content, fold-in of ALS) must, so a new event changes the next answer.
        ``times`` (same shape, optional) holds the epoch second of each history entry's latest
        event, for models that need the order of events (sequential models).
        """

    @abstractmethod
    def similar_items(self, item: int, n: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """The ``n`` items most similar to ``item`` (itself excluded) and their similarities."""

    def recommend(
        self,
        user: int,
        history: sp.csr_matrix,
        n: int = 10,
        exclude: np.ndarray | None = None,
        times: sp.csr_matrix | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top ``n`` item indices and scores for one user; items in ``history`` and ``exclude``
        are never returned."""
        items, scores = self.recommend_batch(
            np.array([user]), sp.csr_matrix(history), n, exclude, times
        )
        return items[0], scores[0]

    def recommend_batch(
        self,
        users: np.ndarray,
        history: sp.csr_matrix,
        n: int = 10,
        exclude: sp.csr_matrix | np.ndarray | None = None,
        times: sp.csr_matrix | None = None,
    ) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Top ``n`` for several users at once; ``exclude`` is a sparse matrix aligned with
        ``users`` (or, for a single user, an array of item indices)."""
        scores = np.asarray(self.score(np.asarray(users), history, times), dtype=np.float64)
        scores[history.nonzero()] = -np.inf
        if exclude is not None:
            if sp.issparse(exclude):
                scores[exclude.nonzero()] = -np.inf
            else:
                scores[:, np.asarray(exclude, dtype=np.int64)] = -np.inf
        return top_n(scores, n)

    # -- erasure ----------------------------------------------------------------------------
    def forget_users(self, rows: np.ndarray) -> None:
        """Erase what the model learned for each of these training users (row indices): their
        entries in :attr:`user_arrays` become zeros. Shapes stay, so every other user keeps
        their row. What the users did still shapes item-side state (item factors, similarities)
        until the model is fitted again without them: :mod:`agora.privacy` does both."""
        rows = np.asarray(rows, dtype=np.int64)
        for name, axis in self.user_arrays.items():
            value = getattr(self, name, None)
            if not isinstance(value, np.ndarray) or not len(rows):
                continue
            value = value.copy()
            index: list[Any] = [slice(None)] * value.ndim
            index[axis] = rows
            value[tuple(index)] = 0
            setattr(self, name, value)

    # -- persistence ------------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        """Write parameters and learned state into folder ``path``."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, np.ndarray] = {}
        scalars: dict[str, Any] = {}
        for key, value in vars(self).items():
            if not key.endswith("_") or key.startswith("_"):
                continue
            if sp.issparse(value):
                sp.save_npz(path / f"{key}.npz", sp.csr_matrix(value))
            elif isinstance(value, np.ndarray):
                if value.dtype == object:
                    value = value.astype(str)
                arrays[key] = value
            else:
                scalars[key] = value
        np.savez(path / "state.npz", **arrays)
        state = {"name": self.name, "params": self.get_params(), "scalars": scalars}
        (path / "model.json").write_text(json.dumps(state, indent=2, default=str))

    @classmethod
    def load(cls, path: str | Path) -> Self:
        """Read a model written by ``save``."""
        path = Path(path)
        state = json.loads((path / "model.json").read_text())
        model = cls(**state["params"])
        for key, value in state["scalars"].items():
            setattr(model, key, value)
        with np.load(path / "state.npz", allow_pickle=False) as data:
            for key in data.files:
                setattr(model, key, data[key])
        for sparse_file in path.glob("*_.npz"):
            setattr(model, sparse_file.stem, sp.load_npz(sparse_file).tocsr())
        return model


def top_n(scores: np.ndarray, n: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per row, the indices of the ``n`` highest finite scores, best first (equal scores by
    index, so every path that ranks the same scores lists them in the same order), and those
    scores."""
    n = min(n, scores.shape[1])
    if n <= 0:
        return [np.empty(0, np.int64)] * len(scores), [np.empty(0)] * len(scores)
    part = np.argpartition(-scores, n - 1, axis=1)[:, :n]
    part_scores = np.take_along_axis(scores, part, axis=1)
    order = np.lexsort((part, -part_scores), axis=1)
    idx = np.take_along_axis(part, order, axis=1)
    sc = np.take_along_axis(part_scores, order, axis=1)
    items, values = [], []
    for row_idx, row_sc in zip(idx, sc, strict=True):
        keep = np.isfinite(row_sc)
        items.append(row_idx[keep].astype(np.int64))
        values.append(row_sc[keep])
    return items, values
