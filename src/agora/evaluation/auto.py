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
social graph), whatever the catalogue's size. The budget is split by measured cost:

* **Probe.** First each family that trains in epochs (``lightgcn``/``social``, ``sasrec``:
  :func:`trains_in_epochs`) is probed on the split (:meth:`Recommender.epoch_cost`: its setup,
  :data:`PROBE_SECONDS` of mini-batches scaled to a whole epoch, one valid score; ``social``
  counts one training per friends weight).
* **One-pass models** are fitted next, cheapest family first, each as long as it takes (their
  measured seconds come off the budget); one whose turn comes with less than
  :data:`MIN_SHARE_SECONDS` left beyond what the epoch-trained families need for
  :data:`MIN_EPOCHS` epochs each is skipped, and says so.
* **Epoch-trained models** share what is left, less :data:`FINISH_SHARE` of the budget kept for
  the last valid scores and the blends, by their probes (:func:`epoch_shares`): each gets
  :data:`MIN_EPOCHS` epochs' worth, then the one cheapest to bring to its ``target_epochs``
  the time up to them, then the next; they train cheapest first, each stopping at its share
  keeping its best validated epoch, and the shares are made again at each turn from what is
  left (a model that stops early leaves its time to the next). A family whose
  :data:`MIN_EPOCHS` epochs do not fit is skipped with its probe's figures as the reason.

A candidate whose turn comes with less than :data:`MIN_SHARE_SECONDS` left is skipped (except
the first: however small the budget, a model is chosen); so is a blend that would not end
within the budget (as :func:`_next_blend_seconds` expects). ``on_stage`` hears each stage
(stage, model, seconds left) as it starts, each skip with its reason, and each validated
epoch of the epoch-trained models (its valid NDCG@10).

``social`` chooses its friends weight on valid, weight 0 (exactly ``lightgcn``) among them, so
when both are candidates ``lightgcn`` is not fitted again: its row says so, and ``social``'s
valid NDCG is at least what ``lightgcn``'s would be (when time does not cut either short).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from agora.evaluation.splits import Split
from agora.features.interactions import SideData
from agora.models.base import CatalogueTooLarge, EpochCost, Recommender
from agora.models.hybrid import HybridModel
from agora.models.registry import create_model, model_class

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
#: The one-pass families in the order they are tried under a budget: cheapest first.
BY_COST: tuple[str, ...] = ("itemknn", "als", "ease", "admmslim")
#: Less than this left when a candidate's turn comes: it is skipped.
MIN_SHARE_SECONDS = 10.0
#: An epoch-trained family whose share of the budget pays for fewer epochs is skipped.
MIN_EPOCHS = 3
#: Seconds of training steps timed by each epoch-trained family's cost probe.
PROBE_SECONDS = 2.0
#: The share of a budget kept for scoring the last candidates on valid and for the blends.
FINISH_SHARE = 0.1
#: Why ``lightgcn`` is not fitted when ``social`` is a candidate too.
SAME_AS_SOCIAL = "trained as social's friends weight 0 (see its social_weights_tried)"
#: A stage of a budgeted selection: (stage, model, seconds left).
StageHook = Callable[[str, str, float], None]


def trains_in_epochs(name: str) -> bool:
    """Whether the registered model ``name`` trains in epochs (it has ``target_epochs``): it
    takes a time limit (``max_seconds``), is probed for its cost and fitted after the others."""
    return model_class(name).target_epochs > 0


def epoch_shares(
    costs: dict[str, tuple[EpochCost, int]], seconds: float
) -> tuple[dict[str, float], dict[str, str]]:
    """(seconds per family, reason per family left out): ``seconds`` split among the families
    that train in epochs by their measured ``(cost, target epochs)``. Each gets what
    :data:`MIN_EPOCHS` epochs cost; then, cheapest first, the time up to its target epochs;
    what is left after every target is shared in proportion to what the targets cost. When
    the :data:`MIN_EPOCHS` epochs of all do not fit, the dearest is left out (and so on)."""
    live = dict(costs)
    skipped: dict[str, str] = {}
    while live:
        floor = {n: c.seconds(MIN_EPOCHS) for n, (c, _) in live.items()}
        if sum(floor.values()) <= seconds:
            break
        name = max(live, key=floor.__getitem__)
        cost = live.pop(name)[0]
        skipped[name] = (
            f"by its probe {MIN_EPOCHS} epochs take {floor[name]:.0f} s (an epoch "
            f"{cost.epoch_seconds:.1f} s, a valid score {cost.valid_seconds:.1f} s, "
            f"{cost.trainings} training(s)); {max(seconds, 0):.0f} s were left for "
            f"{len(live) + 1} epoch-trained famil{'ies' if live else 'y'}"
        )
    shares = {n: c.seconds(MIN_EPOCHS) for n, (c, _) in live.items()}
    need = {n: c.seconds(target) for n, (c, target) in live.items()}
    rest = seconds - sum(shares.values())
    for name in sorted(live, key=need.__getitem__):
        extra = min(max(need[name] - shares[name], 0.0), rest)
        shares[name] += extra
        rest -= extra
    total = sum(need.values())
    return {n: v + rest * need[n] / total for n, v in shares.items()}, skipped


def budget_candidates(split: Split, side: SideData | None) -> list[str]:
    """Every family, the graph one included (``social`` when there is a social graph, else
    ``lightgcn``), ``sasrec`` when the split is chronological: one-pass models cheapest first,
    then the ones that train in epochs."""
    names = default_candidates(split, side)
    if SOCIAL_CANDIDATE not in names:
        names.append(GRAPH_CANDIDATE)
    by_cost = {n: i for i, n in enumerate(BY_COST)}
    return sorted(names, key=lambda n: (trains_in_epochs(n), by_cost.get(n, 0)))


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
    learnt, e.g. the friends weights ``social`` tried; ``skipped`` with the reason instead;
    under a budget, for the epoch-trained ones, ``probe``: their measured cost, and
    ``share_seconds``: their time limit) and ``chosen``;
    with ``budget_seconds`` also ``budget_seconds`` and ``spent_seconds`` (see the module
    docstring). ``fitted_out`` receives every fitted candidate and blend by name (a benchmark
    scores each on test).
    """
    names = _candidate_names(split, side, candidates, budget_seconds)
    run = _Selection(split, side, k, progress, budget_seconds, on_stage)
    if GRAPH_CANDIDATE in names and SOCIAL_CANDIDATE in names:  # social's weight 0 is lightgcn
        names.remove(GRAPH_CANDIDATE)
        run.rows.append({"name": GRAPH_CANDIDATE, "skipped": SAME_AS_SOCIAL})
    costs: dict[str, tuple[EpochCost, int]] = {}
    if budget_seconds is not None:  # probe the epoch-trained families, then the cheapest first
        costs = _probe_epoch_costs(run, names)
        names = [n for n in names if n not in costs] + sorted(
            costs, key=lambda n: costs[n][0].seconds(costs[n][1])
        )
    fitted = _fit_candidates(run, names, costs)
    ranked = sorted((r for r in run.rows if "skipped" not in r), key=lambda r: -r["valid_ndcg"])
    if not ranked:
        raise ValueError(
            "no candidate model could be fitted: " + "; ".join(r["skipped"] for r in run.rows)
        )
    blends = _fit_blends(run, ranked, fitted, blend_sizes, hybrid_params)
    if fitted_out is not None:
        fitted_out.update({name: pair[0] for name, pair in {**fitted, **blends}.items()})
    best = max((r for r in run.rows if "skipped" not in r), key=lambda r: r["valid_ndcg"])
    model, seconds = {**fitted, **blends}[best["name"]]
    selection: dict[str, Any] = {
        "metric": f"valid ndcg@{k} (blends: two-fold estimate)",
        "candidates": run.rows,
        "chosen": best["name"],
    }
    if budget_seconds is not None:
        selection |= {
            "budget_seconds": budget_seconds,
            "spent_seconds": round(time.perf_counter() - run.started, 1),
        }
    return model, seconds, selection


def _candidate_names(
    split: Split,
    side: SideData | None,
    candidates: Sequence[str] | None,
    budget_seconds: float | None,
) -> list[str]:
    """The models to try: ``candidates`` when given, else every family under a budget
    (:func:`budget_candidates`), else :func:`default_candidates`; at least one."""
    if candidates:
        names = list(candidates)
    elif budget_seconds is not None:
        names = budget_candidates(split, side)
    else:
        names = default_candidates(split, side)
    if not names:
        raise ValueError("auto needs at least one candidate model")
    return names


@dataclass
class _Selection:
    """One selection's inputs, its clock (the budget's seconds left, infinite without one), the
    stage hook told of each step, and its rows so far (one per candidate and blend)."""

    split: Split
    side: SideData | None
    k: int
    progress: bool
    budget_seconds: float | None
    on_stage: StageHook | None
    started: float = field(default_factory=time.perf_counter)
    rows: list[dict[str, Any]] = field(default_factory=list)

    def left(self) -> float:
        """Seconds left of the budget (infinite without one)."""
        if self.budget_seconds is None:
            return float("inf")
        return self.budget_seconds - (time.perf_counter() - self.started)

    def stage(self, what: str, name: str) -> None:
        """Tell ``on_stage`` that ``what`` starts for ``name``, with the seconds left."""
        if self.on_stage is not None:
            self.on_stage(what, name, self.left())


def _probe_epoch_costs(run: _Selection, names: list[str]) -> dict[str, tuple[EpochCost, int]]:
    """(measured cost, target epochs) of each family in ``names`` that trains in epochs, so the
    budget can be shared by what they cost on this split."""
    costs: dict[str, tuple[EpochCost, int]] = {}
    for name in [n for n in names if trains_in_epochs(n)]:
        run.stage("probing the cost of", name)
        model = create_model(name)
        cost = model.epoch_cost(run.split.train, run.side, run.split.valid, PROBE_SECONDS)
        costs[name] = (cost, model.target_epochs)
        run.stage(
            f"probed: setup {cost.setup_seconds:.1f} s, an epoch {cost.epoch_seconds:.1f} s, "
            f"a valid score {cost.valid_seconds:.1f} s, {cost.trainings} training(s) of",
            name,
        )
    return costs


def _fit_candidates(
    run: _Selection, names: list[str], costs: dict[str, tuple[EpochCost, int]]
) -> dict[str, tuple[Recommender, float]]:
    """(model, fit seconds) of each candidate fitted and scored on valid, in turn; under a
    budget one whose time is gone is skipped (never the first: auto gives a model) and an
    epoch-trained one gets its share as ``max_seconds``. Each adds its row to ``run``."""
    fitted: dict[str, tuple[Recommender, float]] = {}
    for name in names:
        params: dict[str, Any] = {}
        if run.budget_seconds is not None:
            shares, reason = _budget_turn(run, run.budget_seconds, name, names, costs)
            if reason is not None and fitted:  # the first always runs: auto gives a model
                probe = {"probe": _probe_row(costs[name][0])} if name in costs else {}
                run.rows.append({"name": name, "skipped": reason, **probe})
                run.stage(f"skipped ({reason}):", name)
                continue
            if name in costs:
                params["max_seconds"] = _planned_share(
                    run, run.budget_seconds, name, shares, costs[name][0]
                )
        pair = _fit_and_score(run, name, params, costs)
        if pair is not None:
            fitted[name] = pair
    return fitted


def _budget_turn(
    run: _Selection,
    budget_seconds: float,
    name: str,
    names: list[str],
    costs: dict[str, tuple[EpochCost, int]],
) -> tuple[dict[str, float], str | None]:
    """(shares of the epoch-trained families still waiting, why ``name`` is skipped or None)
    when its turn comes under the budget: the waiting families share what is left less
    :data:`FINISH_SHARE`; a one-pass model must leave them their :data:`MIN_EPOCHS` epochs."""
    waiting = {n: costs[n] for n in names[names.index(name) :] if n in costs}
    shares, short = epoch_shares(waiting, run.left() - FINISH_SHARE * budget_seconds)
    reserved = sum(waiting[n][0].seconds(MIN_EPOCHS) for n in shares)
    reason = short.get(name)
    if reason is None and run.left() < MIN_SHARE_SECONDS:
        reason = f"over budget ({max(run.left(), 0):.0f} s left)"
    elif reason is None and name not in costs and run.left() - reserved < MIN_SHARE_SECONDS:
        reason = (
            f"over budget ({max(run.left(), 0):.0f} s left, {reserved:.0f} s of it kept for "
            f"{MIN_EPOCHS} epochs of {', '.join(shares)})"
        )
    return shares, reason


def _planned_share(
    run: _Selection, budget_seconds: float, name: str, shares: dict[str, float], cost: EpochCost
) -> float:
    """Seconds an epoch-trained family may train (its ``max_seconds``): its share, or all that
    is left less :data:`FINISH_SHARE` when it has none (it runs first), at least one."""
    share = max(shares.get(name, run.left() - FINISH_SHARE * budget_seconds), 1.0)
    epochs = cost.epochs(share)
    run.stage(f"planned {share:.0f} s, about {epochs:.0f} epochs by its probe, for", name)
    return share


def _fit_and_score(
    run: _Selection, name: str, params: dict[str, Any], costs: dict[str, tuple[EpochCost, int]]
) -> tuple[Recommender, float] | None:
    """(model, fit seconds) of candidate ``name`` fitted on train and scored on valid, its row
    added to ``run``; None (a skipped row) when its catalogue is too large for it."""
    from agora.evaluation.protocol import validation_score

    run.stage("fitting", name)
    model = create_model(name, **params)
    if name in costs:
        model.on_epoch = lambda label, epoch, ndcg: run.stage(
            f"valid ndcg@10 {ndcg:.4f} at epoch {epoch} of", label
        )
    t0 = time.perf_counter()
    try:
        model.fit(run.split.train, run.side, valid=run.split.valid)
    except CatalogueTooLarge as exc:
        run.rows.append({"name": name, "skipped": str(exc)})
        run.stage(f"skipped ({exc}):", name)
        return None
    seconds = time.perf_counter() - t0
    run.stage("scoring on valid", name)
    scores = validation_score(model, run.split, run.k, progress=run.progress)
    run.rows.append(
        {
            "name": name,
            "params": model.get_params(),
            "valid_ndcg": round(scores[f"ndcg@{run.k}"], 6),
            "valid_recall": round(scores[f"recall@{run.k}"], 6),
            "fit_seconds": round(seconds, 3),
            **({"learned": model.describe()} if hasattr(model, "describe") else {}),
            **({"probe": _probe_row(costs[name][0])} if name in costs else {}),
            **({"share_seconds": round(params["max_seconds"], 1)} if params else {}),
        }
    )
    return model, seconds


def _fit_blends(
    run: _Selection,
    ranked: list[dict[str, Any]],
    fitted: dict[str, tuple[Recommender, float]],
    blend_sizes: Sequence[int],
    hybrid_params: dict[str, Any] | None,
) -> dict[str, tuple[Recommender, float]]:
    """(hybrid, seconds with its members' fits) of the blend of the best two, three, ...
    candidates (``ranked`` by valid NDCG), each scored by its two-fold valid estimate; under a
    budget a blend that would not end in time (:func:`_next_blend_seconds`) is skipped."""
    blends: dict[str, tuple[Recommender, float]] = {}
    took: list[tuple[int, float]] = []  # (members, seconds) of the blends so far
    for size in blend_sizes:
        if size < 2 or size > len(ranked):
            continue
        keys = [r["name"] for r in ranked[:size]]
        label = "hybrid(" + "+".join(keys) + ")"
        if run.budget_seconds is not None and took and run.left() < _next_blend_seconds(took, size):
            run.rows.append(
                {"name": label, "skipped": f"over budget ({max(run.left(), 0):.0f} s left)"}
            )
            continue
        run.stage("blending", label)
        hybrid = HybridModel(members={n: {} for n in keys}, k=run.k, **(hybrid_params or {}))
        t0 = time.perf_counter()
        members = [fitted[n][0] for n in keys]
        hybrid.fit_weights(
            members, run.split.train.matrix, run.split.valid, run.split.train.last_seen
        )
        took.append((size, time.perf_counter() - t0))
        seconds = time.perf_counter() - t0 + sum(fitted[n][1] for n in keys)
        blends[label] = (hybrid, seconds)
        run.rows.append(
            {
                "name": label,
                "params": hybrid.get_params(),
                "valid_ndcg": round(hybrid.valid_ndcg_cv_, 6),
                "valid_ndcg_in_sample": round(hybrid.valid_ndcg_, 6),
                "fit_seconds": round(seconds, 3),
                "weights": hybrid.describe()["buckets"],
            }
        )
    return blends


def _probe_row(cost: EpochCost) -> dict[str, float]:
    """A cost probe's figures for a selection row."""
    return {
        "setup_seconds": round(cost.setup_seconds, 2),
        "epoch_seconds": round(cost.epoch_seconds, 2),
        "valid_seconds": round(cost.valid_seconds, 2),
        "trainings": cost.trainings,
    }


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
