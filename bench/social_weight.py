"""The friends weight ``social`` chose on valid, beside ``lightgcn``, from ``agora eval`` runs.

    for m in lightgcn social; do OPENBLAS_NUM_THREADS=1 .venv/bin/agora eval \\
        --split ../shared/benchmarks/lastfm-social --model $m --out /tmp/social-auto-$m; done
    .venv/bin/python bench/social_weight.py /tmp/social-auto-lightgcn /tmp/social-auto-social

Reads each run's ``metrics.json`` (test NDCG@10 / Recall@10, fit seconds, and under ``learned``
the weights ``social`` tried: valid NDCG@10, best epoch, epochs run, seconds, why it stopped),
prints one table and writes ``bench/results/social_weight.json``. Test is read once per run;
the weight was chosen on valid only.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from _record import run_record
from rich.console import Console
from rich.table import Table

RESULTS = Path(__file__).resolve().parents[1] / "bench" / "results"


def rows_of(metrics: dict) -> list[dict]:
    """One row per friends weight trained in a run (one row for ``lightgcn``)."""
    learned = metrics["learned"]
    common = {
        "model": metrics["model"],
        "test_ndcg@10": round(metrics["ndcg@10"], 4),
        "test_recall@10": round(metrics["recall@10"], 4),
        "fit_seconds": metrics["fit_seconds"],
    }
    tried = learned.get("social_weights_tried")
    if tried is None:
        return [common | {"weight": 0.0, "valid_ndcg@10": learned["valid_ndcg@10"],
                          "best_epoch": learned["best_epoch"],
                          "epochs_run": learned["epochs_run"], "chosen": True}]  # fmt: skip
    return [
        common | trial | {"chosen": trial["weight"] == learned["social_weight"]} for trial in tried
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="agora eval --out folders")
    parser.add_argument("--note", default="", help="how the runs were made (commit, load)")
    args = parser.parse_args()
    runs = [json.loads((run / "metrics.json").read_text()) for run in args.runs]
    table = Table(title="friends weight chosen on valid (test NDCG@10 is the chosen model's)")
    for column in ("model", "weight", "valid NDCG@10", "best epoch", "epochs", "weight s",
                   "stopped", "test NDCG@10", "test Recall@10", "fit s"):  # fmt: skip
        table.add_column(column, justify="left" if column == "model" else "right")
    rows = [row for metrics in runs for row in rows_of(metrics)]
    for r in rows:
        mark = " *" if r["chosen"] and r["model"] == "social" else ""
        test = (f"{r['test_ndcg@10']:.4f}", f"{r['test_recall@10']:.4f}", f"{r['fit_seconds']:.0f}")
        table.add_row(
            r["model"] + mark, f"{r['weight']:g}", f"{r['valid_ndcg@10']:.4f}",
            str(r["best_epoch"]), str(r["epochs_run"]), str(r.get("seconds", "")),
            r.get("stopped", ""), *(test if r["chosen"] else ("", "", "")),
        )  # fmt: skip
    Console(width=140).print(table)
    record = {
        "run": run_record({"runs": [str(run) for run in args.runs]}),
        "note": args.note,
        "splits": sorted({m["split"] for m in runs}),
        "rows": rows,
        "params": {m["model"]: m["params"] for m in runs},
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / "social_weight.json"
    path.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
