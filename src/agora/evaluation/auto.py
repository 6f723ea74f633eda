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
"""

from __future__ import annotations

import time
from collections.abc import Sequence
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


def select_model(
    split: Split,
    candidates: Sequence[str] | None = None,
    k: int = 10,
    side: SideData | None = None,
    progress: bool = False,
    blend_sizes: Sequence[int] = DEFAULT_BLEND_SIZES,
    hybrid_params: dict[str, Any] | None = None,
) -> tuple[Recommender, float, dict[str, Any]]:
    """(chosen fitted model, its fit seconds, selection record) by valid NDCG@``k``.

    The record has one row per candidate and blend (``name``, ``params``, ``valid_ndcg``,
    ``valid_recall``, ``fit_seconds``) and ``chosen``.
    """
    from agora.evaluation.protocol import validation_score

    names = list(candidates or default_candidates(split, side))
    if not names:
        raise ValueError("auto needs at least one candidate model")
    metric = f"ndcg@{k}"
    rows: list[dict[str, Any]] = []
    fitted: dict[str, tuple[Recommender, float]] = {}
    for name in names:
        model = create_model(name)
        t0 = time.perf_counter()
        try:
            model.fit(split.train, side, valid=split.valid)
        except CatalogueTooLarge as exc:
            rows.append({"name": name, "skipped": str(exc)})
            continue
        seconds = time.perf_counter() - t0
        scores = validation_score(model, split, k, progress=progress)
        fitted[name] = (model, seconds)
        rows.append(
            {
                "name": name,
                "params": model.get_params(),
                "valid_ndcg": round(scores[metric], 6),
                "valid_recall": round(scores[f"recall@{k}"], 6),
                "fit_seconds": round(seconds, 3),
            }
        )
    ranked = sorted((r for r in rows if "skipped" not in r), key=lambda r: -r["valid_ndcg"])
    if not ranked:
        raise ValueError(
            "no candidate model could be fitted: " + "; ".join(r["skipped"] for r in rows)
        )
    blends: dict[str, tuple[Recommender, float]] = {}
    for size in blend_sizes:
        if size < 2 or size > len(ranked):
            continue
        keys = [r["name"] for r in ranked[:size]]
        hybrid = HybridModel(members={n: {} for n in keys}, k=k, **(hybrid_params or {}))
        t0 = time.perf_counter()
        members = [fitted[n][0] for n in keys]
        hybrid.fit_weights(members, split.train.matrix, split.valid, split.train.last_seen)
        seconds = time.perf_counter() - t0 + sum(fitted[n][1] for n in keys)
        label = "hybrid(" + "+".join(keys) + ")"
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
    best = max((r for r in rows if "skipped" not in r), key=lambda r: r["valid_ndcg"])
    model, seconds = {**fitted, **blends}[best["name"]]
    selection = {
        "metric": f"valid {metric} (blends: two-fold estimate)",
        "candidates": rows,
        "chosen": best["name"],
    }
    return model, seconds, selection


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
            lines.append(f"| {r['name']} (skipped: catalogue too large) | | |")
            continue
        mark = " (chosen)" if r["name"] == selection["chosen"] else ""
        lines.append(f"| {r['name']}{mark} | {r['valid_ndcg']:.4f} | {r['fit_seconds']:.1f} |")
    return "\n".join(lines)
