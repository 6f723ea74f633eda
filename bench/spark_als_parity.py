"""ALS parity on ml1m-general: ALS on Spark (``--engine spark``) against ``implicit``'s.

``--solver``: ``cg`` (the default of ``--engine spark``: ``implicit``'s objective and CG
solver, run on Spark), ``cholesky`` (the same objective solved exactly) or ``mllib`` (MLlib's
ALS-WR). Two phases; every run is appended to ``runs`` in
``bench/results/spark_als_parity.json``:

- ``--phase valid``: both engines fitted on train with the same ALSModel parameters and scored
  on valid (history = train, nothing else masked); with ``mllib`` once per ``--scales`` value
  of :func:`agora.models.spark_training.spark_reg_param`'s scale (chosen here, on valid only,
  and pinned as ``ALS_REG_SCALE``).
- ``--phase test``: :func:`agora.evaluation.protocol.evaluate` (what ``agora eval`` runs), once
  per engine; the goal is |NDCG@10 difference| <= 0.005 (``test_gap_ndcg@10`` per solver and
  parameters).

    OPENBLAS_NUM_THREADS=1 PYTHONPATH=src python bench/spark_als_parity.py --phase valid \\
        --solver cg
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from _record import run_record
from rich.console import Console
from rich.table import Table

from agora.db.spark.session import spark_session
from agora.evaluation.protocol import evaluate, validation_score
from agora.evaluation.splits import load_split
from agora.models.registry import create_model
from agora.models.spark_training import (
    ALS_REG_SCALE,
    SPARK_ALS_SOLVERS,
    fit_interactions_on_spark,
)

SPLIT = Path(__file__).resolve().parents[2] / "shared" / "benchmarks" / "ml1m-general"
OUT = Path(__file__).resolve().parent / "results" / "spark_als_parity.json"
GOAL = 0.005


def load_average() -> float:
    """The one-minute load average (the machine is shared: figures say how loaded it was)."""
    return round(os.getloadavg()[0], 2)


def valid_rows(
    split_dir: Path, params: dict, scales: list[float], master: str, solver: str
) -> list[dict]:
    split = load_split(split_dir)
    rows = []
    t0, load = time.perf_counter(), load_average()
    model = create_model("als", **params).fit(split.train)
    fit = time.perf_counter() - t0
    ndcg = validation_score(model, split)["ndcg@10"]
    rows.append({"engine": "implicit", "solver": None, "scale": None, "valid_ndcg@10": ndcg,
                 "fit_seconds": fit,
                 "load_before": load, "load_after": load_average()})  # fmt: skip
    with spark_session(master, "als-parity") as spark:
        for scale in scales if solver == "mllib" else [None]:
            t0, load = time.perf_counter(), load_average()
            model = fit_interactions_on_spark(
                spark, "als", split.train, params, scale or ALS_REG_SCALE, solver
            )
            fit = time.perf_counter() - t0
            ndcg = validation_score(model, split)["ndcg@10"]
            rows.append({"engine": "spark", "solver": solver, "scale": scale,
                         "valid_ndcg@10": ndcg,
                         "fit_seconds": fit, "load_before": load,
                         "load_after": load_average()})  # fmt: skip
    return rows


def test_rows(split_dir: Path, params: dict, master: str, solver: str) -> list[dict]:
    rows = []
    for engine in ("python", "spark"):
        load = load_average()
        with tempfile.TemporaryDirectory() as out:
            metrics = evaluate(
                split_dir, "als", params, 10, out, progress=False, report=False,
                engine=engine, spark_master=master, spark_als=solver,
            )  # fmt: skip
        rows.append({"engine": "implicit" if engine == "python" else "spark",
                     "solver": solver if engine == "spark" else None,
                     "scale": ALS_REG_SCALE if engine == "spark" and solver == "mllib" else None,
                     "test_ndcg@10": metrics["ndcg@10"], "test_recall@10": metrics["recall@10"],
                     "fit_seconds": metrics["fit_seconds"], "load_before": load,
                     "load_after": load_average()})  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--phase", choices=["valid", "test"], required=True)
    parser.add_argument("--split", type=Path, default=SPLIT)
    parser.add_argument("--params", default='{"factors": 64, "iterations": 10}')
    parser.add_argument("--scales", default="1")
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--solver", choices=SPARK_ALS_SOLVERS, default="cg")
    args = parser.parse_args()
    params = json.loads(args.params)
    if args.phase == "valid":
        scales = [float(s) for s in args.scales.split(",")]
        rows = valid_rows(args.split, params, scales, args.master, args.solver)
    else:
        rows = test_rows(args.split, params, args.master, args.solver)
    record = json.loads(OUT.read_text()) if OUT.exists() else {}
    record.setdefault("runs", []).append(
        {"phase": args.phase, "params": params, "rows": rows, "run": run_record(vars(args))}
    )
    if args.phase == "test":
        test = {r["engine"]: r["test_ndcg@10"] for r in rows}
        gap = abs(test["spark"] - test["implicit"])
        record.setdefault("test_gap_ndcg@10", {})[f"{args.solver} {json.dumps(params)}"] = gap
        record["goal_met"] = {k: v <= GOAL for k, v in record["test_gap_ndcg@10"].items()}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(record, indent=2, default=str))
    metric = "valid_ndcg@10" if args.phase == "valid" else "test_ndcg@10"
    table = Table(
        "engine", "solver", "reg scale", metric, "fit s", "load 1 min", title=str(args.split)
    )
    for r in rows:
        scale = "" if r["scale"] is None else f"{r['scale']:g}"
        table.add_row(r["engine"], r["solver"] or "", scale, f"{r[metric]:.4f}",
                      f"{r['fit_seconds']:.1f}",
                      f"{r['load_before']:.1f}-{r['load_after']:.1f}")  # fmt: skip
    Console().print(table)
    if args.phase == "test":
        Console().print(f"test NDCG@10 gap {gap:.4f} (goal <= {GOAL})")


if __name__ == "__main__":
    main()
