"""Top-K lists of many users at once, in batches: what the evaluation protocol scores and
what a model's holdout metrics (:func:`agora.models.training.holdout_metrics`) rank with."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import scipy.sparse as sp
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from agora.models.base import Recommender


@contextmanager
def progress_bar(enabled: bool) -> Iterator[Progress]:
    """A rich progress bar (n of m, time taken) that shows nothing when not ``enabled``."""
    prog = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        disable=not enabled,
        transient=False,
    )
    with prog:
        yield prog


def default_batch_size(n_items: int) -> int:
    """Users per scoring batch so a dense batch stays around 20M cells."""
    return int(max(32, min(4096, 20_000_000 // max(n_items, 1))))


def rank_users(
    model: Recommender,
    users: np.ndarray,
    history: sp.csr_matrix,
    k: int,
    exclude: sp.csr_matrix | None = None,
    batch_size: int | None = None,
    progress: bool = False,
    description: str = "ranking",
    times: sp.csr_matrix | None = None,
) -> list[np.ndarray]:
    """Top-``k`` item indices for each row index in ``users``.

    ``history``, ``exclude`` and ``times`` are full users x items matrices; their rows for
    ``users`` are passed to ``recommend_batch`` (history and excluded items never returned).
    """
    users = np.asarray(users, dtype=np.int64)
    history = sp.csr_matrix(history)
    batch_size = batch_size or default_batch_size(history.shape[1])
    out: list[np.ndarray] = []
    with progress_bar(progress) as prog:
        task = prog.add_task(description, total=len(users))
        for start in range(0, len(users), batch_size):
            batch = users[start : start + batch_size]
            ex = sp.csr_matrix(exclude[batch]) if exclude is not None else None
            tb = sp.csr_matrix(times[batch]) if times is not None else None
            items, _ = model.recommend_batch(batch, history[batch], k, ex, tb)
            out.extend(items)
            prog.advance(task, len(batch))
    return out
