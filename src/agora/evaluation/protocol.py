"""The evaluation protocol (RecBole's full-ranking protocol on fixed split files).

Fit on train (valid only for tuning and early stopping: passed to ``fit``); for every test
user rank ALL items, masking the user's train items (passed to ``score`` as history) and valid
items (``exclude``); keep the top K. A ``sequential`` model gets train + valid as history, with
their timestamps as ``times`` (RecBole's leave-one-out convention: the valid item is the input
before the test item), valid items still masked.
The official metrics are recomputed from the written ``recommendations.tsv`` and the split's
``test.tsv``, so what is scored is exactly what was written.
"""

from __future__ import annotations

import itertools
import json
import resource
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from agora import metrics as M
from agora.evaluation.splits import Split, load_split
from agora.features.interactions import SideData
from agora.models.base import Recommender
from agora.models.ranking import progress_bar, rank_users
from agora.models.registry import create_model

#: Small grids searched by ``tune`` (scored on valid NDCG@K); kept modest for a 2-core box.
DEFAULT_GRIDS: dict[str, dict[str, list[Any]]] = {
    "trending": {"half_life_days": [1.0, 7.0, 30.0, 365.0]},
    "latest": {},
    "itemknn": {"k": [50, 100, 200, 400], "shrink": [0.0, 10.0, 50.0, 100.0]},
    "ease": {"reg": [200.0, 400.0, 800.0, 1600.0, 3200.0]},
    "als": {"factors": [128, 256], "regularization": [10.0, 50.0, 150.0], "bm25_b": [0.3, 0.8]},
    "bpr": {"factors": [64, 128], "learning_rate": [0.01, 0.03, 0.05], "pop_correction": [0.5, 1]},
    "content": {"tag_weight": [1.0, 2.0, 4.0]},
}


def write_recommendations(
    path: str | Path, user_ids: np.ndarray, item_ids: np.ndarray, users, recs
) -> None:
    """``user_id<TAB>item_id<TAB>rank`` with a header; rank starts at 1."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        fh.write("user_id\titem_id\trank\n")
        for u, items in zip(users, recs, strict=True):
            uid = user_ids[u]
            fh.writelines(f"{uid}\t{item_ids[i]}\t{r}\n" for r, i in enumerate(items, start=1))


def read_recommendations(path: str | Path) -> dict[str, list[str]]:
    """user_id -> item ids ordered by rank, from a ``recommendations.tsv``."""
    path = Path(path)
    ranked: dict[str, list[tuple[int, str]]] = {}
    with path.open(encoding="utf-8") as fh:
        header = fh.readline().rstrip("\r\n").split("\t")
        if header != ["user_id", "item_id", "rank"]:
            raise ValueError(f"{path}:1: expected header user_id<TAB>item_id<TAB>rank")
        for lineno, line in enumerate(fh, start=2):
            line = line.rstrip("\r\n")
            if not line:
                continue
            parts = line.split("\t")
            if len(parts) != 3 or not parts[2].isdigit() or int(parts[2]) < 1:
                raise ValueError(f"{path}:{lineno}: expected user_id, item_id, rank >= 1")
            ranked.setdefault(parts[0], []).append((int(parts[2]), parts[1]))
    out = {}
    for user, pairs in ranked.items():
        pairs.sort()
        ranks = [r for r, _ in pairs]
        if len(set(ranks)) != len(ranks):
            raise ValueError(f"{path}: user {user!r} has a repeated rank")
        out[user] = [item for _, item in pairs]
    return out


def hits_from_files(
    recommendations: str | Path, split: Split | str | Path, k: int
) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """``hits``, ``n_relevant`` over the split's test users and their recommended item indices
    (read from the file). Test users missing from the file count as all misses."""
    if not isinstance(split, Split):
        split = load_split(split)
    recs = read_recommendations(recommendations)
    item_index = {t: i for i, t in enumerate(split.item_ids.tolist())}
    test = split.test
    users = split.users_with(test)
    rec_lists: list[np.ndarray] = []
    truth: list[np.ndarray] = []
    for u in users:
        ids = recs.get(split.user_ids[u], [])[:k]
        try:
            rec_lists.append(np.array([item_index[i] for i in ids], dtype=np.int64))
        except KeyError as exc:
            raise ValueError(
                f"{recommendations}: item {exc.args[0]!r} is not in the split"
            ) from None
        truth.append(test.indices[test.indptr[u] : test.indptr[u + 1]])
    hits, n_rel = M.hits_matrix(rec_lists, truth, k)
    return hits, n_rel, rec_lists


def metrics_from_files(
    recommendations: str | Path, split: Split | str | Path, k: int = 10
) -> dict[str, float]:
    """Recall/MRR/NDCG/Hit/Precision @K, item coverage and novelty recomputed from a written
    ``recommendations.tsv`` against the split's test.tsv (popularity for novelty from train)."""
    if not isinstance(split, Split):
        split = load_split(split)
    hits, n_rel, rec_lists = hits_from_files(recommendations, split, k)
    out = M.ranking_metrics(hits, n_rel)
    train_counts = np.bincount(split.train.matrix.indices, minlength=split.train.n_items)
    out["item_coverage"] = M.item_coverage(rec_lists, split.train.n_items)
    out["novelty"] = M.novelty(rec_lists, train_counts)
    out["n_test_users"] = int((n_rel > 0).sum())
    return out


def _grid(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    keys = list(grid)
    return [dict(zip(keys, values, strict=True)) for values in itertools.product(*grid.values())]


def validation_score(
    model: Recommender, split: Split, k: int = 10, progress: bool = False
) -> dict[str, float]:
    """Ranking metrics on valid: history = train (with its event times), nothing else masked."""
    users = split.users_with(split.valid)
    recs = rank_users(
        model,
        users,
        split.train.matrix,
        k,
        progress=progress,
        description="valid",
        times=split.train.last_seen,
    )
    truth = [split.valid.indices[split.valid.indptr[u] : split.valid.indptr[u + 1]] for u in users]
    hits, n_rel = M.hits_matrix(recs, truth, k)
    return M.ranking_metrics(hits, n_rel)


def split_side(split: Split, side: SideData | None) -> SideData | None:
    """``side`` with ``social`` filled from the split's ``social.tsv`` (weight 1 per row,
    users x users aligned with the split's users; pairs naming unknown users are dropped)
    when the split has one and ``side`` carries no social matrix yet."""
    if split.social is None or (side is not None and side.social is not None):
        return side
    index = {u: i for i, u in enumerate(split.user_ids.tolist())}
    pairs = np.array(
        [(index[a], index[b]) for a, b in split.social.tolist() if a in index and b in index],
        dtype=np.int64,
    ).reshape(-1, 2)
    rows, cols = pairs[:, 0], pairs[:, 1]
    n = len(split.user_ids)
    social = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(n, n))
    social.data[:] = 1.0  # repeated rows count once
    return replace(side, social=social) if side is not None else SideData(social=social)


def tune(
    split: Split | str | Path,
    model_name: str,
    grid: dict[str, list[Any]] | None = None,
    k: int = 10,
    base_params: dict[str, Any] | None = None,
    side: SideData | None = None,
    progress: bool = True,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Grid search scored by valid NDCG@K; returns the best params (``base_params`` updated
    with the best combination) and one row per combination (params, valid metrics, seconds)."""
    if not isinstance(split, Split):
        split = load_split(split)
    side = split_side(split, side)
    grid = DEFAULT_GRIDS.get(model_name, {}) if grid is None else grid
    base_params = dict(base_params or {})
    results: list[dict[str, Any]] = []
    best: tuple[float, dict[str, Any]] | None = None
    combos = _grid(grid)
    with progress_bar(progress) as prog:
        task = prog.add_task(f"tune {model_name}", total=len(combos))
        for combo in combos:
            params = {**base_params, **combo}
            model = create_model(model_name, **params)
            t0 = time.perf_counter()
            model.fit(split.train, side)
            fit_s = time.perf_counter() - t0
            scores = validation_score(model, split, k)
            results.append({"params": params, "valid": scores, "fit_seconds": fit_s})
            if best is None or scores[f"ndcg@{k}"] > best[0]:
                best = (scores[f"ndcg@{k}"], params)
            prog.advance(task)
    return (best[1] if best else base_params), results


def eval_history(split: Split, sequential: bool) -> tuple[sp.csr_matrix, sp.csr_matrix | None]:
    """Test-time ``(history, times)``: train for ordinary models; train + valid (with their
    timestamps, when known) for sequential ones."""
    if not sequential:
        return split.train.matrix, None
    history = sp.csr_matrix(split.train.matrix + split.valid)
    times = split.train.last_seen
    if times is not None and split.valid_times is not None:
        times = sp.csr_matrix(times.maximum(split.valid_times))
    return history, times


def evaluate(
    split_dir: str | Path,
    model_name: str,
    params: dict[str, Any] | None = None,
    k: int = 10,
    out_dir: str | Path = "eval-out",
    progress: bool = True,
    tune_params: bool = False,
    grid: dict[str, list[Any]] | None = None,
    side: SideData | None = None,
    batch_size: int | None = None,
    report: bool = True,
    candidates: list[str] | None = None,
    budget_seconds: float | None = None,
    on_stage: Callable[[str, str, float], None] | None = None,
    engine: str = "python",
    spark_master: str = "local[2]",
    spark_als: str = "cg",
) -> dict[str, Any]:
    """Fit ``model_name`` on the split's train, rank all items for every test user, write
    ``out_dir/recommendations.tsv``, ``metrics.json`` (scored from that file) and, if
    ``report``, ``report.md`` + ``curve.png``. With ``tune_params`` the params are first
    chosen by :func:`tune` on valid (``params`` fixed, ``grid`` or the default grid searched).
    ``model_name="auto"`` picks the best of ``candidates`` and their blends on valid
    (:func:`agora.evaluation.auto.select_model`, within ``budget_seconds`` when given, telling
    ``on_stage`` what it does) and evaluates only that one on test; the selection is recorded
    under ``selection``. ``engine="spark"`` fits the model with Spark on ``spark_master``
    (:mod:`agora.models.spark_training`; als, itemknn, trending, no tuning or auto; ALS by
    the ``spark_als`` solver of :func:`~agora.models.spark_training.fit_als`); it is
    scored exactly as the others. Returns the metrics dict written to metrics.json."""
    _check_engine(engine, model_name, tune_params)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    split = load_split(split_dir)
    side = split_side(split, side)
    params = dict(params or {})
    tuning = None
    if tune_params:
        params, tuning = tune(
            split, model_name, grid, k, base_params=params, side=side, progress=progress
        )
    selection = None
    if model_name == "auto":
        from agora.evaluation.auto import select_model

        model, fit_seconds, selection = select_model(
            split, candidates, k, side, progress, budget_seconds=budget_seconds, on_stage=on_stage
        )
    elif engine == "spark":
        model, fit_seconds = _fit_on_spark(split, model_name, params, spark_master, spark_als)
    else:
        model, fit_seconds = _fit_on_train(split, side, model_name, params)
    rec_path = out / "recommendations.tsv"
    eval_seconds = _write_test_recommendations(
        rec_path, model, model_name, split, k, batch_size, progress
    )
    result: dict[str, Any] = dict(metrics_from_files(rec_path, split, k))
    result.update(_run_record(model, model_name, engine, split_dir, k, fit_seconds, eval_seconds))
    if tuning is not None:
        result["tuning"] = tuning
    if selection is not None:
        result["selection"] = selection
    if hasattr(model, "describe"):
        result["learned"] = model.describe()
    (out / "metrics.json").write_text(json.dumps(result, indent=2, default=str))
    if report:
        from agora.evaluation.report import write_report

        hits, n_rel, _ = hits_from_files(rec_path, split, k)
        write_report(out, result, M.ndcg_recall_curve(hits, n_rel))
    return result


def _check_engine(engine: str, model_name: str, tune_params: bool) -> None:
    """Refuse an unknown engine and, on Spark, a run it cannot do (tuning, auto, a model it
    does not fit) or a missing Spark, before any work is done."""
    if engine not in ("python", "spark"):
        raise ValueError(f"unknown engine {engine!r} (known: python, spark)")
    if engine == "spark":
        from agora.db.spark.session import check_spark
        from agora.models.spark_training import NotOnSpark, check_spark_models

        if tune_params or model_name == "auto":
            raise NotOnSpark("--engine spark fits one named model: no --tune, no auto")
        check_spark_models([model_name])
        check_spark()


def _fit_on_spark(
    split: Split, model_name: str, params: dict[str, Any], spark_master: str, spark_als: str
) -> tuple[Recommender, float]:
    """(model, fit seconds) of ``model_name`` fitted on the split's train with Spark."""
    from agora.db.spark.session import spark_session
    from agora.models.spark_training import fit_interactions_on_spark

    with spark_session(spark_master, "agora-eval") as spark:
        t0 = time.perf_counter()
        model = fit_interactions_on_spark(
            spark, model_name, split.train, params, als_solver=spark_als
        )
        fit_seconds = time.perf_counter() - t0
    return model, fit_seconds


def _fit_on_train(
    split: Split, side: SideData | None, model_name: str, params: dict[str, Any]
) -> tuple[Recommender, float]:
    """(model, fit seconds) of ``model_name`` fitted on the split's train (valid for early
    stopping)."""
    model = create_model(model_name, **params)
    t0 = time.perf_counter()
    model.fit(split.train, side, valid=split.valid)
    return model, time.perf_counter() - t0


def _write_test_recommendations(
    rec_path: Path,
    model: Recommender,
    model_name: str,
    split: Split,
    k: int,
    batch_size: int | None,
    progress: bool,
) -> float:
    """Seconds taken to rank all items for every test user (history and valid items masked),
    whose top ``k`` are written to ``rec_path`` to be scored from the file."""
    history, times = eval_history(split, model.sequential)
    users = split.users_with(split.test)
    t0 = time.perf_counter()
    recs = rank_users(
        model,
        users,
        history,
        k,
        exclude=split.valid,
        batch_size=batch_size,
        progress=progress,
        description=f"{model_name} test",
        times=times,
    )
    eval_seconds = time.perf_counter() - t0
    write_recommendations(rec_path, split.user_ids, split.item_ids, users, recs)
    return eval_seconds


def _run_record(
    model: Recommender,
    model_name: str,
    engine: str,
    split_dir: str | Path,
    k: int,
    fit_seconds: float,
    eval_seconds: float,
) -> dict[str, Any]:
    """What was run, written beside the metrics: k, timings, peak memory, model, engine,
    fitted params and the split."""
    return {
        "k": k,
        "fit_seconds": round(fit_seconds, 3),
        "eval_seconds": round(eval_seconds, 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "model": model_name,
        "engine": engine,
        "params": model.get_params(),
        "split": str(split_dir),
    }
