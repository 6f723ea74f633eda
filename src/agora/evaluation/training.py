"""``agora train``: the configured models trained on the store's events and saved as versioned
artefacts (:func:`train_from_store`; each named model by
:func:`agora.models.training.train_models`), and ``--model auto``'s choice and final fit.
At the evaluation layer: the choice is :func:`agora.evaluation.auto.select_model`'s.

``agora train --model auto --budget-minutes M`` (:func:`train_auto`): one random item of every
user with 3+ items is held out (:func:`hold_out_one`, the holdout the other models' metrics
use) and :func:`agora.evaluation.auto.select_model` chooses a model or blend on it within
:data:`SELECT_SHARE` of the budget (every family, the graph model included, shipped default
parameters); the chosen one is then fitted again on all events with what was chosen on the
holdout pinned (:meth:`Recommender.refit_params`: the early-stopping epoch, the friends weight;
a blend keeps its weights), the epoch-trained models sharing what is left of the budget less
:data:`~agora.evaluation.auto.FINISH_SHARE` of it, and saved as a new version whose
``meta.json`` metrics hold the selection.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from sqlalchemy.orm import Session

from agora.db.pseudonyms import IdSealer, sealer_for_session
from agora.evaluation.auto import FINISH_SHARE, StageHook, select_model, trains_in_epochs
from agora.evaluation.splits import Split
from agora.features.interactions import Interactions, SideData, hold_out_one
from agora.features.store import load_training_data
from agora.models.artifacts import prune_artifacts, save_artifact
from agora.models.base import Recommender
from agora.models.hybrid import HybridModel
from agora.models.registry import create_model
from agora.models.training import HOLDOUT_K, TrainedModel, holdout_metrics, train_models

#: The model name that asks ``agora train`` to choose the model (:func:`train_auto`).
AUTO = "auto"
#: The share of ``agora train --model auto``'s budget the choice on the holdout may use; the
#: rest is for fitting the chosen model on all events, which takes about as long again.
SELECT_SHARE = 0.5


def holdout_split(interactions: Interactions) -> Split:
    """The events as a split to choose a model on: train without one random item of every
    user with 3+ items, those items as valid (:func:`hold_out_one`), no test."""
    train, held = hold_out_one(interactions)
    empty = sp.csr_matrix(held.shape, dtype=np.float32)
    return Split(name="holdout", path=Path(), train=train, valid=held, test=empty)


def refit_on_all(
    chosen: Recommender,
    interactions: Interactions,
    side: SideData | None,
    seconds: float | None = None,
) -> Recommender:
    """``chosen`` (or each member of a chosen blend, which keeps its weights) fitted again on
    ``interactions`` with :meth:`Recommender.refit_params`; one-pass members first, then the
    epoch-trained ones sharing what is left of ``seconds`` as their ``max_seconds``."""
    started = time.perf_counter()
    members = chosen.fitted_members if isinstance(chosen, HybridModel) else [chosen]
    order = sorted(range(len(members)), key=lambda i: trains_in_epochs(members[i].name))
    timed = [i for i in order if trains_in_epochs(members[i].name)]
    refitted: dict[int, Recommender] = {}
    for i in order:
        params = members[i].refit_params()
        if seconds is not None and i in timed:
            left = seconds - (time.perf_counter() - started)
            params["max_seconds"] = max(left / (len(timed) - timed.index(i)), 1.0)
        refitted[i] = create_model(members[i].name, **params).fit(interactions, side)
    models = [refitted[i] for i in range(len(members))]
    return chosen.use_members(models) if isinstance(chosen, HybridModel) else models[0]


def affordable(selection: dict[str, Any], fitted: Mapping[str, Recommender], seconds: float) -> str:
    """The candidate or blend of ``selection`` with the best valid NDCG whose one-pass models
    took at most ``seconds`` to fit (the epoch-trained ones stop at any time limit), else the
    quickest: what can be fitted again on all events within the budget."""
    took = {r["name"]: r["fit_seconds"] for r in selection["candidates"] if "skipped" not in r}

    def one_pass_seconds(name: str) -> float:
        model = fitted[name]
        names = list(model.members) if isinstance(model, HybridModel) else [name]
        return sum(took[n] for n in names if not trains_in_epochs(n))

    rows = [r for r in selection["candidates"] if "skipped" not in r]
    within = [r for r in rows if one_pass_seconds(r["name"]) <= seconds]
    if not within:
        return min(rows, key=lambda r: one_pass_seconds(r["name"]))["name"]
    return max(within, key=lambda r: r["valid_ndcg"])["name"]


def train_auto(
    interactions: Interactions,
    side: SideData,
    model_dir: Path,
    budget_seconds: float | None,
    keep_versions: int = 3,
    extra_meta: Mapping[str, Any] | None = None,
    on_stage: StageHook | None = None,
    ids: IdSealer | None = None,
    candidates: Sequence[str] | None = None,
) -> TrainedModel:
    """Choose a model or blend on a holdout within :data:`SELECT_SHARE` of ``budget_seconds``,
    fit it on all ``interactions`` within the rest and save it as a new version (module
    docstring). The holdout's best is passed over (``selection["best_on_holdout"]``) when its
    one-pass models would not fit again in what is left (:func:`affordable`). Its metrics: the
    holdout metrics of the chosen model as fitted on the holdout's train (a blend's weights
    were learnt on those same held-out items), ``fit_seconds`` of the final fit, and
    ``selection`` (every candidate tried or skipped, the chosen one, the budget and the
    seconds spent before saving). ``on_stage`` hears (stage, model, seconds of the whole
    budget left); without a budget the selection is :func:`select_model`'s unbudgeted one.
    ``candidates``: the models to try (default: :func:`select_model`'s)."""
    started = time.perf_counter()

    def left() -> float:
        if budget_seconds is None:
            return float("inf")
        return budget_seconds - (time.perf_counter() - started)

    def stage(what: str, name: str, _selection_left: float) -> None:
        if on_stage is not None:
            on_stage(what, name, left())

    split = holdout_split(interactions)
    fitted: dict[str, Recommender] = {}
    probe, _, selection = select_model(
        split,
        candidates,
        k=HOLDOUT_K,
        side=side,
        budget_seconds=SELECT_SHARE * budget_seconds if budget_seconds is not None else None,
        on_stage=stage,
        fitted_out=fitted,
    )
    seconds = None if budget_seconds is None else left() - FINISH_SHARE * budget_seconds
    if seconds is not None:
        growth = interactions.matrix.nnz / max(split.train.matrix.nnz, 1)
        best = affordable(selection, fitted, seconds / growth)
        if best != selection["chosen"]:
            selection = selection | {"best_on_holdout": selection["chosen"], "chosen": best}
            probe = fitted[best]
    metrics: dict[str, Any] = dict(extra_meta or {})
    metrics.update(holdout_metrics(probe, split.train, split.valid))
    if on_stage is not None:
        on_stage("fitting on all events", selection["chosen"], left())
    if seconds is not None:
        seconds = left() - FINISH_SHARE * budget_seconds
    t0 = time.perf_counter()
    model = refit_on_all(probe, interactions, side, seconds)
    fit_seconds = time.perf_counter() - t0
    if budget_seconds is not None:  # the whole budget, beside the choice's share of it
        selection = selection | {
            "selection_budget_seconds": selection["budget_seconds"],
            "selection_seconds": selection["spent_seconds"],
            "budget_seconds": budget_seconds,
            "spent_seconds": round(time.perf_counter() - started, 1),
        }
    metrics |= {"fit_seconds": round(fit_seconds, 3), "selection": selection}
    path = save_artifact(model, model_dir, interactions, metrics=metrics, ids=ids)
    prune_artifacts(model_dir, model.name, keep_versions)
    return TrainedModel(model.name, path, fit_seconds, metrics)


def train_from_store(
    session: Session,
    names: Sequence[str],
    model_dir: Path,
    event_weights: Mapping[str, float],
    params: Mapping[str, Mapping[str, Any]] | None = None,
    validate: bool = True,
    keep_versions: int = 3,
    on_loaded: Callable[[Interactions], None] | None = None,
    on_step: Callable[[str, str], None] | None = None,
    budget_seconds: float | None = None,
    on_stage: StageHook | None = None,
    candidates: Sequence[str] | None = None,
) -> list[TrainedModel]:
    """:func:`train_models` on the store's events as they are now (what ``agora train`` does;
    an erasure's retrain too), and :func:`train_auto` within ``budget_seconds`` when ``names``
    holds :data:`AUTO` (choosing among ``candidates``, by default every family). ``on_loaded``
    sees the interactions before any fit; a store without events raises ValueError."""
    interactions, side, last_event = load_training_data(session, event_weights)
    if on_loaded:
        on_loaded(interactions)
    if interactions.matrix.nnz == 0:
        raise ValueError("no events in the store; run `agora import` first")
    ids = sealer_for_session(session)
    results = train_models(
        interactions,
        side,
        [name for name in names if name != AUTO],
        model_dir,
        params=params,
        validate=validate,
        keep_versions=keep_versions,
        extra_meta={"last_event_row": last_event},
        on_step=on_step,
        ids=ids,
    )
    if AUTO in names:
        extra = {"last_event_row": last_event}
        results.append(
            train_auto(
                interactions,
                side,
                model_dir,
                budget_seconds,
                keep_versions,
                extra,
                on_stage,
                ids,
                candidates,
            )
        )
        if on_step:
            on_step(AUTO, "saved")
    return results
