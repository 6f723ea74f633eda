"""ALS parity: MLlib's implicit ALS (``--engine spark``) against ``implicit``'s on ml1m-general.

Two phases, each recorded in ``bench/results/spark_als_parity.json`` (a phase's rows replace
that phase's earlier rows):

- ``--phase valid``: both engines fitted on train with the same ALSModel parameters and scored
  on valid (history = train, nothing else masked); Spark once per ``--scales`` value of
  :func:`agora.models.spark_training.spark_reg_param`'s scale. The scale is chosen here, on
  valid only, and then pinned as ``ALS_REG_SCALE``.
- ``--phase test``: :func:`agora.evaluation.protocol.evaluate` (what ``agora eval`` runs), once
  per engine, Spark with the pinned ``ALS_REG_SCALE``; the goal is |NDCG@10 difference| <= 0.005.

    OPENBLAS_NUM_THREADS=1 PYTHONPATH=src python bench/spark_als_parity.py --phase valid \\
        --scales 0.1,0.3,1
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

from agora.evaluation.protocol import evaluate, validation_score
from agora.evaluation.splits import load_split
from agora.models.registry import create_model
from agora.models.spark_training import ALS_REG_SCALE, fit_interactions_on_spark
from agora.spark.session import spark_session

SPLIT = Path(__file__).resolve().parents[2] / "shared" / "benchmarks" / "ml1m-general"
OUT = Path(__file__).resolve().parent / "results" / "spark_als_parity.json"
GOAL = 0.005


def load_average() -> float:
    """The one-minute load average (the machine is shared: figures say how loaded it was)."""
    return round(os.getloadavg()[0], 2)


def valid_rows(split_dir: Path, params: dict, scales: list[float], master: str) -> list[dict]:
    split = load_split(split_dir)
    rows = []
    t0, load = time.perf_counter(), load_average()
    model = create_model("als", **params).fit(split.train)
    fit = time.perf_counter() - t0
    ndcg = validation_score(model, split)["ndcg@10"]
    rows.append({"engine": "implicit", "scale": None, "valid_ndcg@10": ndcg, "fit_seconds": fit,
                 "load_before": load, "load_after": load_average()})  # fmt: skip
    with spark_session(master, "als-parity") as spark:
        for scale in scales:
            t0, load = time.perf_counter(), load_average()
            model = fit_interactions_on_spark(spark, "als", split.train, params, scale)
            fit = time.perf_counter() - t0
            ndcg = validation_score(model, split)["ndcg@10"]
            rows.append({"engine": "spark", "scale": scale, "valid_ndcg@10": ndcg,
                         "fit_seconds": fit, "load_before": load,
                         "load_after": load_average()})  # fmt: skip
    return rows


def test_rows(split_dir: Path, params: dict, master: str) -> list[dict]:
    rows = []
    for engine in ("python", "spark"):
        load = load_average()
        with tempfile.TemporaryDirectory() as out:
            metrics = evaluate(
                split_dir, "als", params, 10, out, progress=False, report=False,
                engine=engine, spark_master=master,
            )  # fmt: skip
        rows.append({"engine": "implicit" if engine == "python" else "spark",
                     "scale": ALS_REG_SCALE if engine == "spark" else None,
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
    args = parser.parse_args()
    params = json.loads(args.params)
    if args.phase == "valid":
        scales = [float(s) for s in args.scales.split(",")]
        rows = valid_rows(args.split, params, scales, args.master)
    else:
        rows = test_rows(args.split, params, args.master)
    record = json.loads(OUT.read_text()) if OUT.exists() else {}
    record[args.phase] = {"params": params, "rows": rows, "run": run_record(vars(args))}
    if "test" in record:
        test = {r["engine"]: r["test_ndcg@10"] for r in record["test"]["rows"]}
        gap = abs(test["spark"] - test["implicit"])
        record["test_gap_ndcg@10"] = gap
        record["goal_met"] = gap <= GOAL
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(record, indent=2, default=str))
    metric = "valid_ndcg@10" if args.phase == "valid" else "test_ndcg@10"
    table = Table("engine", "reg scale", metric, "fit s", "load 1 min", title=str(args.split))
    for r in rows:
        scale = "" if r["scale"] is None else f"{r['scale']:g}"
        table.add_row(r["engine"], scale, f"{r[metric]:.4f}", f"{r['fit_seconds']:.1f}",
                      f"{r['load_before']:.1f}-{r['load_after']:.1f}")  # fmt: skip
    Console().print(table)
    if "test_gap_ndcg@10" in record:
        Console().print(f"test NDCG@10 gap {record['test_gap_ndcg@10']:.4f} (goal <= {GOAL})")


if __name__ == "__main__":
    main()
