"""Model selection on valid for ``agora eval --model auto``.

Every candidate (a registered model name, shipped default parameters; by default
:func:`default_candidates`: the collaborative models, plus the social model when the split carries
friendships and the sequential one when it is split by time) is fitted on train (``valid``
passed to ``fit`` for early stopping) and scored on valid (history = train, train items masked,
NDCG@K); a dense item-item model refuses a catalogue larger than its ``max_items`` and is
listed as skipped. Then the best two, three and four candidates are blended by
:class:`~agora.models.hybrid.HybridModel` (the already fitted members are reused; the weights
are learnt on valid), and each blend is scored by its two-fold valid estimate
(``valid_ndcg_cv_``: weights chosen on one half of the valid users, scored on the other), so a
blend is not favoured just because its weights were fitted on the same valid items. The single
model or blend with the best valid NDCG@K is returned; the caller evaluates only that one on
test, once.

With a time budget (``budget_seconds``, ``agora eval --model auto --budget-minutes M``) every
family is a candidate: the graph model joins (``lightgcn``, or ``social`` when there is a
social graph), whatever the catalogue's size. The one-pass models are fitted first, cheapest
family first, each as long as it takes (their measured seconds come off the budget); the rest is
shared evenly by the models that train in epochs (``lightgcn``/``social``, ``sasrec``), which
stop at their share keeping their best validated epoch, less :data:`FINISH_SHARE` of the
budget kept for the last valid scores and the blends. A candidate whose turn comes with less
than :data:`MIN_SHARE_SECONDS` left is skipped, and says so (except the first: however small
the budget, a model is chosen); so is a blend that would not end within the budget (as
:func:`_next_blend_seconds` expects). ``on_stage`` hears each stage
(stage, model, seconds left) as it starts.

``social`` chooses its friends weight on valid, weight 0 (exactly ``lightgcn``) among them, so
when both are candidates ``lightgcn`` is not fitted again: its row says so, and ``social``'s
valid NDCG is at least what ``lightgcn``'s would be (when time does not cut either short).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from agora.evaluation.splits import Split
from agora.features.interactions import SideData
from agora.models.base import CatalogueTooLarge, Recommender
from agora.models.hybrid import HybridModel
from agora.models.registry import create_model

DEFAULT_CANDIDATES: tuple[str, ...] = ("itemknn", "als", "ease", "admmslim")
SOCIAL_CANDIDATE = "social"
SEQUENTIAL_CANDIDATE = "sasrec"


def default_candidates(split: Split, side: SideData | None) -> list[str]:
    """:data:`DEFAULT_CANDIDATES`, plus ``social`` when ``side`` has a social graph (a split's
    ``social.tsv``) and ``sasrec`` when the split is chronological (leave-last-out by time)."""
    names = list(DEFAULT_CANDIDATES)
    if side is not None and side.social is not None and side.social.nnz:
        names.append(SOCIAL_CANDIDATE)
    if split.is_chronological():
        names.append(SEQUENTIAL_CANDIDATE)
    return names


DEFAULT_BLEND_SIZES: tuple[int, ...] = (2, 3, 4)
GRAPH_CANDIDATE = "lightgcn"
#: Models that train in epochs and take a time limit (``max_seconds``), fitted after the others.
EPOCH_MODELS: frozenset[str] = frozenset({"lightgcn", "social", "sasrec"})
#: The one-pass families in the order they are tried under a budget: cheapest first.
BY_COST: tuple[str, ...] = ("itemknn", "als", "ease", "admmslim")
#: Less than this left when a candidate's turn comes: it is skipped.
MIN_SHARE_SECONDS = 10.0
#: The share of a budget kept for scoring the last candidates on valid and for the blends.
FINISH_SHARE = 0.1
#: Why ``lightgcn`` is not fitted when ``social`` is a candidate too.
SAME_AS_SOCIAL = "trained as social's friends weight 0 (see its social_weights_tried)"
#: A stage of a budgeted selection: (stage, model, seconds left).
StageHook = Callable[[str, str, float], None]


def budget_candidates(split: Split, side: SideData | None) -> list[str]:
    """Every family, the graph one included (``social`` when there is a social graph, else
    ``lightgcn``), ``sasrec`` when the split is chronological: one-pass models cheapest first,
    then the ones that train in epochs."""
    names = default_candidates(split, side)
    if SOCIAL_CANDIDATE not in names:
        names.append(GRAPH_CANDIDATE)
    return sorted(names, key=lambda n: (n in EPOCH_MODELS, BY_COST.index(n) if n in BY_COST else 0))


def select_model(
    split: Split,
    candidates: Sequence[str] | None = None,
    k: int = 10,
    side: SideData | None = None,
    progress: bool = False,
    blend_sizes: Sequence[int] = DEFAULT_BLEND_SIZES,
    hybrid_params: dict[str, Any] | None = None,
    budget_seconds: float | None = None,
    on_stage: StageHook | None = None,
    fitted_out: dict[str, Recommender] | None = None,
) -> tuple[Recommender, float, dict[str, Any]]:
    """(chosen fitted model, its fit seconds, selection record) by valid NDCG@``k``.

    The record has one row per candidate and blend (``name``, ``params``, ``valid_ndcg``,
    ``valid_recall``, ``fit_seconds``, ``learned`` for a model that can ``describe()`` what it
    learnt, e.g. the friends weights ``social`` tried; ``skipped`` with the reason instead)
    and ``chosen``;
    with ``budget_seconds`` also ``budget_seconds`` and ``spent_seconds`` (see the module
    docstring). ``fitted_out`` receives every fitted candidate and blend by name (a benchmark
    scores each on test).
    """
    from agora.evaluation.protocol import validation_score

    if candidates:
        names = list(candidates)
    elif budget_seconds is not None:
        names = budget_candidates(split, side)
    else:
        names = default_candidates(split, side)
    if not names:
        raise ValueError("auto needs at least one candidate model")
    started = time.perf_counter()

    def left() -> float:
        if budget_seconds is None:
            return float("inf")
        return budget_seconds - (time.perf_counter() - started)

    def stage(what: str, name: str) -> None:
        if on_stage is not None:
            on_stage(what, name, left())

    metric = f"ndcg@{k}"
    rows: list[dict[str, Any]] = []
    if GRAPH_CANDIDATE in names and SOCIAL_CANDIDATE in names:  # social's weight 0 is lightgcn
        names.remove(GRAPH_CANDIDATE)
        rows.append({"name": GRAPH_CANDIDATE, "skipped": SAME_AS_SOCIAL})
    fitted: dict[str, tuple[Recommender, float]] = {}
    epoch_models = [n for n in names if n in EPOCH_MODELS]
    for name in names:
        params: dict[str, Any] = {}
        if budget_seconds is not None:
            if fitted and left() < MIN_SHARE_SECONDS:  # the first always runs: auto gives a model
                rows.append({"name": name, "skipped": f"over budget ({max(left(), 0):.0f} s left)"})
                continue
            if name in EPOCH_MODELS:  # an even share of what the one-pass models left
                waiting = len(epoch_models) - epoch_models.index(name)
                usable = left() - FINISH_SHARE * budget_seconds
                params["max_seconds"] = max(usable / waiting, 1.0)
        stage("fitting", name)
        model = create_model(name, **params)
        t0 = time.perf_counter()
        try:
            model.fit(split.train, side, valid=split.valid)
        except CatalogueTooLarge as exc:
            rows.append({"name": name, "skipped": str(exc)})
            continue
        seconds = time.perf_counter() - t0
        stage("scoring on valid", name)
        scores = validation_score(model, split, k, progress=progress)
        fitted[name] = (model, seconds)
        rows.append(
            {
                "name": name,
                "params": model.get_params(),
                "valid_ndcg": round(scores[metric], 6),
                "valid_recall": round(scores[f"recall@{k}"], 6),
                "fit_seconds": round(seconds, 3),
                **({"learned": model.describe()} if hasattr(model, "describe") else {}),
            }
        )
    ranked = sorted((r for r in rows if "skipped" not in r), key=lambda r: -r["valid_ndcg"])
    if not ranked:
        raise ValueError(
            "no candidate model could be fitted: " + "; ".join(r["skipped"] for r in rows)
        )
    blends: dict[str, tuple[Recommender, float]] = {}
    took: list[tuple[int, float]] = []  # (members, seconds) of the blends so far
    for size in blend_sizes:
        if size < 2 or size > len(ranked):
            continue
        keys = [r["name"] for r in ranked[:size]]
        label = "hybrid(" + "+".join(keys) + ")"
        if budget_seconds is not None and took and left() < _next_blend_seconds(took, size):
            rows.append({"name": label, "skipped": f"over budget ({max(left(), 0):.0f} s left)"})
            continue
        stage("blending", label)
        hybrid = HybridModel(members={n: {} for n in keys}, k=k, **(hybrid_params or {}))
        t0 = time.perf_counter()
        members = [fitted[n][0] for n in keys]
        hybrid.fit_weights(members, split.train.matrix, split.valid, split.train.last_seen)
        took.append((size, time.perf_counter() - t0))
        seconds = time.perf_counter() - t0 + sum(fitted[n][1] for n in keys)
        blends[label] = (hybrid, seconds)
        rows.append(
            {
                "name": label,
                "params": hybrid.get_params(),
                "valid_ndcg": round(hybrid.valid_ndcg_cv_, 6),
                "valid_ndcg_in_sample": round(hybrid.valid_ndcg_, 6),
                "fit_seconds": round(seconds, 3),
                "weights": hybrid.describe()["buckets"],
            }
        )
    if fitted_out is not None:
        fitted_out.update({name: pair[0] for name, pair in {**fitted, **blends}.items()})
    best = max((r for r in rows if "skipped" not in r), key=lambda r: r["valid_ndcg"])
    model, seconds = {**fitted, **blends}[best["name"]]
    selection: dict[str, Any] = {
        "metric": f"valid {metric} (blends: two-fold estimate)",
        "candidates": rows,
        "chosen": best["name"],
    }
    if budget_seconds is not None:
        selection |= {
            "budget_seconds": budget_seconds,
            "spent_seconds": round(time.perf_counter() - started, 1),
        }
    return model, seconds, selection


def _next_blend_seconds(took: list[tuple[int, float]], size: int) -> float:
    """What a blend of ``size`` members will take, from the blends so far: the last one's
    seconds grown as the last two grew (on ml1m-general 4, 17 and 70 s for 2, 3 and 4
    members), or by the members' ratio after a single one."""
    (last_size, last), previous = took[-1], took[-2:-1]
    if previous and previous[0][1] > 0:
        return last * (last / previous[0][1]) ** (size - last_size)
    return last * size / last_size


def selection_table(selection: dict[str, Any]) -> str:
    """Markdown table of a selection record (for report.md)."""
    lines = [
        f"Model selection on valid ({selection['metric']}); chosen: **{selection['chosen']}**",
        "",
        "| candidate | valid NDCG | fit s |",
        "|---|---:|---:|",
    ]
    for r in selection["candidates"]:
        if "skipped" in r:
            lines.append(f"| {r['name']} (skipped: {r['skipped']}) | | |")
            continue
        mark = " (chosen)" if r["name"] == selection["chosen"] else ""
        lines.append(f"| {r['name']}{mark} | {r['valid_ndcg']:.4f} | {r['fit_seconds']:.1f} |")
    return "\n".join(lines)
