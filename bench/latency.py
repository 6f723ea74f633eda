"""Per-user scoring latency of every model on an ML-1M-sized catalogue, as served.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/latency.py [--models als,ease] [--users 300]

Each model is fitted on ml1m-general train (6,033 users x 3,123 items) with its shipped
architecture; the neural and graph models are trained briefly (``BRIEF``: timing does not
depend on how well they are trained). The model is saved as a versioned artefact and read back
through the serving ``ModelStore`` (the first ``get`` is the lazy load, timed). Then, one user
per call as the API does, ``recommend(user, history, n=10, times=...)`` is timed for ``--users``
random users twice: with the history seen at training, and with that history plus one new
event on an unseen item (the real-time path: fold-in, the sequence re-read, the graph layers
recomputed). ``social`` needs friendships, so it runs on lastfm-social (17,632 items, a larger
catalogue). Everything runs on one thread, as one API worker would.

Prints a table and writes bench/results/latency.json (per model: load seconds, p50/p95/p99 ms
for both paths, fit seconds); a run of some models (``--models``) replaces only their rows.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402
from _record import run_record  # noqa: E402
from quality import AUTO, BENCHMARKS, MODEL_ORDER, RESULTS, ml1m_side  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from agora.evaluation.protocol import split_side  # noqa: E402
from agora.evaluation.splits import Split, load_split  # noqa: E402
from agora.models.artifacts import save_artifact  # noqa: E402
from agora.models.registry import create_model  # noqa: E402
from agora.serving.service import ModelStore  # noqa: E402

#: The quality table's models, less the ones that are not scored per user here.
MODELS = [m for m in MODEL_ORDER if m not in ("latest", AUTO)]
#: Short training for the models whose fit takes minutes; one thread everywhere.
BRIEF: dict[str, dict] = {
    "content_attention": {"epochs": 2, "num_threads": 1, "progress": False},
    "sasrec": {"epochs": 1, "max_seconds": 120, "num_threads": 1, "verbose": False},
    "lightgcn": {"epochs": 2, "num_threads": 1, "progress": False},
    "social": {"epochs": 2, "num_threads": 1, "progress": False},
}
SPLIT_OF = {"social": "lastfm-social"}
TEXT_MODELS = {"content", "content_attention"}


def percentiles(ms: list[float]) -> dict[str, float]:
    p50, p95, p99 = np.percentile(ms, [50, 95, 99])
    return {"p50_ms": round(p50, 3), "p95_ms": round(p95, 3), "p99_ms": round(p99, 3)}


def time_requests(
    model, split: Split, users: np.ndarray, new_items: np.ndarray | None
) -> dict[str, float]:
    """Per-call latency of ``recommend`` for each user (plus one new event if ``new_items``)."""
    train, times = split.train.matrix, split.train.last_seen
    ms = []
    for i, u in enumerate(users):
        hist = train[u]
        t_row = times[u] if times is not None else None
        if new_items is not None:
            extra = sp.csr_matrix(([1.0], ([0], [new_items[i]])), shape=hist.shape)
            hist = sp.csr_matrix(hist + extra)
            if t_row is not None:
                newest = t_row.max() + 60.0
                t_row = sp.csr_matrix(
                    t_row + sp.csr_matrix(([newest], ([0], [new_items[i]])), shape=hist.shape)
                )
        t0 = time.perf_counter()
        model.recommend(int(u), hist, 10, times=t_row)
        ms.append((time.perf_counter() - t0) * 1000)
    return percentiles(ms)


def measure(name: str, split: Split, n_users: int, root: Path) -> dict:
    side = ml1m_side(split.item_ids) if name in TEXT_MODELS else None
    side = split_side(split, side)
    model = create_model(name, **BRIEF.get(name, {}))
    t0 = time.perf_counter()
    model.fit(split.train, side)
    fit_s = time.perf_counter() - t0
    save_artifact(model, root, split.train)
    store = ModelStore(root)
    store.reload()
    t0 = time.perf_counter()
    served = store.get(name).model
    load_s = time.perf_counter() - t0
    rng = np.random.default_rng(0)
    users = rng.choice(split.train.n_users, size=n_users, replace=False)
    seen = split.train.matrix[users]
    new_items = np.array(
        [
            rng.choice(np.setdiff1d(np.arange(split.train.n_items), seen[i].indices))
            for i in range(n_users)
        ]
    )
    served.recommend(int(users[0]), split.train.matrix[users[0]], 10)  # first-call setup
    return {
        "model": name,
        "split": split.name,
        "n_items": int(split.train.n_items),
        "fit_seconds": round(fit_s, 2),
        "load_seconds": round(load_s, 3),
        "known_history": time_requests(served, split, users, None),
        "with_new_event": time_requests(served, split, users, new_items),
        "params": BRIEF.get(name, {}),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description="Per-user scoring latency of every model.")
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--users", type=int, default=300)
    ap.add_argument("--out", default=str(RESULTS / "latency.json"))
    args = ap.parse_args()
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass
    console = Console()
    splits: dict[str, Split] = {}
    rows = []
    with tempfile.TemporaryDirectory(prefix="agora-latency-") as tmp:
        for name in [m.strip() for m in args.models.split(",") if m.strip()]:
            split_name = SPLIT_OF.get(name, "ml1m-general")
            if split_name not in splits:
                splits[split_name] = load_split(BENCHMARKS / split_name)
            console.print(f"{name} on {split_name} ...")
            rows.append(measure(name, splits[split_name], args.users, Path(tmp) / name))
    table = Table(title=f"one user per call, n=10, {args.users} users, 1 thread")
    for col in ["model", "items", "load s", "p50 ms", "p95 ms", "p99 ms", "new event p50 / p99"]:
        table.add_column(col)
    for r in rows:
        k, n = r["known_history"], r["with_new_event"]
        table.add_row(
            r["model"],
            f"{r['n_items']:,}",
            f"{r['load_seconds']:.2f}",
            f"{k['p50_ms']:.2f}",
            f"{k['p95_ms']:.2f}",
            f"{k['p99_ms']:.2f}",
            f"{n['p50_ms']:.2f} / {n['p99_ms']:.2f}",
        )
    console.print(table)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    run, fresh = run_record(vars(args)), {r["model"] for r in rows}
    rows = [{**r, "run": run} for r in rows]
    if out.is_file():  # a run of some models replaces their rows and keeps the others
        kept = [r for r in json.loads(out.read_text())["runs"] if r["model"] not in fresh]
        rows = sorted(kept + rows, key=lambda r: MODELS.index(r["model"]))
    out.write_text(json.dumps({"users": args.users, "runs": rows}, indent=1))
    console.print(f"wrote {out}")


if __name__ == "__main__":
    main()
