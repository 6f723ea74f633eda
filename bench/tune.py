"""Grid search on a split's VALID set (history = train), to choose shipped defaults.

    .venv/bin/python bench/tune.py --split ../shared/benchmarks/ml1m-general --model als \
        --grid '{"factors": [64, 128], "alpha": [0, 1]}' [--base '{"iterations": 15}']

Prints a table sorted by valid NDCG@10 and appends the rows to
bench/results/tuning-<split>-<model>.json. Test data are never read for choosing.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from _record import run_record  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from agora.evaluation.protocol import DEFAULT_GRIDS, tune  # noqa: E402
from agora.evaluation.splits import load_split  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--split", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--grid", help="JSON dict param -> list of values (default: DEFAULT_GRIDS)")
    ap.add_argument("--base", help="JSON dict of fixed params", default="{}")
    ap.add_argument("--k", type=int, default=10)
    args = ap.parse_args()
    grid = json.loads(args.grid) if args.grid else DEFAULT_GRIDS.get(args.model, {})
    split = load_split(args.split)
    best, rows = tune(split, args.model, grid, args.k, json.loads(args.base), progress=False)
    key = f"ndcg@{args.k}"
    table = Table(title=f"{args.model} on {split.name} (valid)")
    for col in ("params", key, f"recall@{args.k}", "fit s"):
        table.add_column(col)
    for row in sorted(rows, key=lambda r: -r["valid"][key]):
        table.add_row(
            json.dumps(row["params"]),
            f"{row['valid'][key]:.4f}",
            f"{row['valid'][f'recall@{args.k}']:.4f}",
            f"{row['fit_seconds']:.1f}",
        )
    Console().print(table)
    Console().print(f"best: {json.dumps(best)}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"tuning-{split.name}-{args.model}.json"
    previous = json.loads(out.read_text()) if out.exists() else []
    run = run_record(vars(args))
    out.write_text(json.dumps(previous + [{**row, "run": run} for row in rows], indent=1))


if __name__ == "__main__":
    main()
