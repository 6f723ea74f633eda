"""Fitting the named models and saving them as versioned artefacts, each first measured on a
holdout (one random item of every user with 3+ items, :func:`hold_out_one`) so versions can be
compared. ``agora train``'s orchestration (the store's events, ``--model auto``) is
:mod:`agora.evaluation.training`, above evaluation's model choice."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from agora.db.pseudonyms import IdSealer
from agora.features.interactions import Interactions, SideData, hold_out_one
from agora.metrics import hits_matrix, ranking_metrics
from agora.models.artifacts import prune_artifacts, save_artifact
from agora.models.base import CatalogueTooLarge, Recommender
from agora.models.ranking import rank_users
from agora.models.registry import create_model

HOLDOUT_K = 10


@dataclass
class TrainedModel:
    name: str
    path: Path
    fit_seconds: float
    metrics: dict[str, float]


def holdout_metrics(model: Recommender, train: Interactions, held: sp.csr_matrix) -> dict:
    """Recall/NDCG@10 etc. of one held-out item per user (full ranking, train items masked)."""
    users = np.unique(held.nonzero()[0])
    if len(users) == 0:
        return {}
    ranked = rank_users(model, users, train.matrix, HOLDOUT_K)
    relevant = [held.indices[held.indptr[u] : held.indptr[u + 1]] for u in users]
    metrics = ranking_metrics(*hits_matrix(ranked, relevant, HOLDOUT_K))
    return {f"holdout_{name}": value for name, value in metrics.items()} | {
        "holdout_users": int(len(users))
    }


def train_models(
    interactions: Interactions,
    side: SideData,
    names: Sequence[str],
    model_dir: Path,
    params: Mapping[str, Mapping[str, Any]] | None = None,
    validate: bool = True,
    keep_versions: int = 3,
    extra_meta: Mapping[str, Any] | None = None,
    on_step: Callable[[str, str], None] | None = None,
    ids: IdSealer | None = None,
) -> list[TrainedModel]:
    """Fit each named model on all interactions and save it as a new version (``ids``: the
    store's sealer, when its user ids are pseudonymous).

    With ``validate``, each model is first fitted without one held-out item per user and its
    holdout Recall/NDCG@10 is stored in the artefact's metrics, so versions can be compared.
    Only the newest ``keep_versions`` versions of each model stay on disk.
    """
    params = params or {}
    results = []
    split = hold_out_one(interactions) if validate and interactions.n_users else None
    for name in names:
        metrics: dict[str, Any] = dict(extra_meta or {})
        try:
            if split is not None:
                if on_step:
                    on_step(name, "validating")
                probe = create_model(name, **params.get(name, {})).fit(split[0], side)
                metrics.update(holdout_metrics(probe, *split))
            if on_step:
                on_step(name, "fitting")
            started = time.perf_counter()
            model = create_model(name, **params.get(name, {})).fit(interactions, side)
        except CatalogueTooLarge as exc:  # the other models still train
            if on_step:
                on_step(name, f"skipped: {exc}")
            continue
        fit_seconds = time.perf_counter() - started
        metrics["fit_seconds"] = round(fit_seconds, 3)
        path = save_artifact(model, model_dir, interactions, metrics=metrics, ids=ids)
        prune_artifacts(model_dir, name, keep_versions)
        results.append(TrainedModel(name, path, fit_seconds, metrics))
        if on_step:
            on_step(name, "saved")
    return results
