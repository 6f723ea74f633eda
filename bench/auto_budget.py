"""``--model auto`` within a time budget, every family scored on valid and on test.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/auto_budget.py --split ml1m-general --minutes 10
    OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/auto_budget.py --root /tmp --split gowalla-sim

Runs :func:`agora.evaluation.auto.select_model` with ``budget_seconds`` on a fixed split of
``../shared/benchmarks`` (every family, the graph model included; the epoch-trained models share
what the one-pass ones leave by their measured cost per epoch), then scores each fitted
candidate and blend on test with the protocol of ``agora eval`` (history train + valid for
sequential models, train and valid items masked, NDCG@10 and Recall@10 over users with a test
item). Only the chosen one is what ``agora eval --model auto`` reports; the test figures of the
others are shown to see what the valid choice left on the table, not to choose. Writes
``bench/results/auto_budget_<split>.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from _record import run_record
from rich.console import Console
from rich.table import Table

from agora import metrics as M
from agora.evaluation.auto import select_model
from agora.evaluation.protocol import eval_history, split_side
from agora.evaluation.splits import load_split
from agora.models.base import Recommender
from agora.models.ranking import rank_users

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
SHARED = REPO.parent / "shared" / "benchmarks"
console = Console(width=140)


def test_scores(model: Recommender, split, k: int = 10) -> dict[str, float]:  # noqa: ANN001
    history, times = eval_history(split, model.sequential)
    users = split.users_with(split.test)
    recs = rank_users(model, users, history, k, exclude=split.valid, times=times)
    truth = [split.test.indices[split.test.indptr[u] : split.test.indptr[u + 1]] for u in users]
    hits, n_rel = M.hits_matrix(recs, truth, k)
    return M.ranking_metrics(hits, n_rel)


def epochs_run(model: Recommender) -> int | None:
    """Epochs an epoch-trained model ran (its loss curve's length), else None."""
    curve = getattr(model, "curve_loss_", getattr(model, "loss_curve_", None))
    return None if curve is None else len(curve)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", default="ml1m-general")
    parser.add_argument(
        "--root", type=Path, default=SHARED,
        help="folder holding the split (a simulated one: bench/make_sparse_sim.py)",
    )  # fmt: skip
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--k", type=int, default=10)
    args = parser.parse_args()
    torch.set_num_threads(1)  # one core stays free for whoever shares the machine
    split = load_split(args.root / args.split)
    side = split_side(split, None)
    started = time.perf_counter()

    def stage(what: str, name: str, left: float) -> None:
        console.print(f"[{(time.perf_counter() - started) / 60:5.1f} min] {what} {name} "
                      f"({left / 60:.1f} min of the budget left)")  # fmt: skip

    fitted: dict[str, Recommender] = {}
    _, _, selection = select_model(
        split, k=args.k, side=side, budget_seconds=args.minutes * 60, on_stage=stage,
        fitted_out=fitted,
    )  # fmt: skip
    rows = []
    for row in selection["candidates"]:
        name = row["name"]
        probe = row.get("probe", {})
        if "skipped" in row:
            rows.append({"name": name, "skipped": row["skipped"], "probe": probe})
            continue
        scores = test_scores(fitted[name], split, args.k)
        rows.append({
            "name": name,
            "valid_ndcg": row["valid_ndcg"],
            "test_ndcg": round(scores[f"ndcg@{args.k}"], 4),
            "test_recall": round(scores[f"recall@{args.k}"], 4),
            "fit_seconds": row["fit_seconds"],
            "max_seconds": row.get("share_seconds"),
            "epochs_run": epochs_run(fitted[name]),
            "probe": probe,
        })  # fmt: skip
    table = Table(title=f"auto on {args.split} within {args.minutes:g} min: "
                        f"chose {selection['chosen']}")  # fmt: skip
    for column in ("candidate", "valid NDCG@10", "test NDCG@10", "test Recall@10", "fit s",
                   "probe s/epoch", "time limit s", "epochs"):  # fmt: skip
        table.add_column(column, justify="left" if column == "candidate" else "right")
    for r in rows:
        per_epoch = f"{r['probe']['epoch_seconds']:.1f}" if r["probe"] else ""
        if "skipped" in r:
            table.add_row(f"{r['name']} (skipped: {r['skipped']})", *[""] * 4, per_epoch, "", "")
            continue
        mark = " *" if r["name"] == selection["chosen"] else ""
        table.add_row(
            r["name"] + mark, f"{r['valid_ndcg']:.4f}", f"{r['test_ndcg']:.4f}",
            f"{r['test_recall']:.4f}", f"{r['fit_seconds']:.1f}", per_epoch,
            f"{r['max_seconds']:.0f}" if r["max_seconds"] else "",
            str(r["epochs_run"] or ""),
        )  # fmt: skip
    console.print(table)
    console.print(f"selection took {selection['spent_seconds'] / 60:.1f} min of "
                  f"{args.minutes:g}")  # fmt: skip
    RESULTS.mkdir(parents=True, exist_ok=True)
    record = {
        "run": run_record(vars(args)),
        "split": args.split,
        "budget_seconds": selection["budget_seconds"],
        "spent_seconds": selection["spent_seconds"],
        "chosen": selection["chosen"],
        "candidates": rows,
        "seconds": round(time.perf_counter() - started, 1),
    }
    path = RESULTS / f"auto_budget_{args.split}.json"
    path.write_text(json.dumps(record, indent=2) + "\n")
    console.print(f"wrote {path}")


if __name__ == "__main__":
    main()
