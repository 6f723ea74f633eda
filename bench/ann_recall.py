"""How close the factor models' approximate item index comes to exact scoring, and how fast.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/ann_recall.py MODEL_DIR [--users 1000] \
        [--nprobe 4 8 16 32 64 128] [--k 10 50]

``MODEL_DIR`` holds trained artefacts (``agora train``'s ``models/``); the newest version of
``--model`` (default ``als``) is loaded as ``agora serve`` loads it. For ``--users`` random
trained users, their fitted vectors are the queries (no exclusions: the same for every
search). Exact top-k (every item scored, as below ``ann_min_items``) is compared with the
faiss IVF index of :mod:`agora.models.retrieval` at each ``--nprobe``: recall@k (the share of
the exact top k the index returns in its top k) and the time per query on one thread. The
index build time is reported too. Prints a table and writes bench/results/ann_recall.json
(``--out`` to change).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from _record import REPO, run_record, write_report  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from agora.models.artifacts import list_artifacts, load_artifact  # noqa: E402
from agora.models.retrieval import ItemIndex  # noqa: E402

console = Console()


def exact_top(vectors: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, float]:
    """Every query's exact top ``k`` by inner product, and seconds per query (one at a time)."""
    exact = ItemIndex(vectors, min_items=len(vectors) + 1)
    t0 = time.perf_counter()
    found = [exact.search(q, k)[0] for q in queries]
    return np.stack(found), (time.perf_counter() - t0) / len(queries)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model_dir", type=Path)
    ap.add_argument("--model", default="als")
    ap.add_argument("--users", type=int, default=1000)
    ap.add_argument("--nprobe", type=int, nargs="+", default=[4, 8, 16, 32, 64, 128])
    ap.add_argument("--k", type=int, nargs="+", default=[10, 50])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "ann_recall.json"))
    args = ap.parse_args()

    path = max(p for p in list_artifacts(args.model_dir) if p.parent.name == args.model)
    loaded = load_artifact(path)
    vectors = loaded.model.item_factors_
    users = np.random.default_rng(args.seed).choice(
        len(loaded.model.user_factors_), size=args.users, replace=False
    )
    queries = loaded.model.user_factors_[users]
    deepest = max(args.k)
    truth, exact_seconds = exact_top(vectors, queries, deepest)

    t0 = time.perf_counter()
    index = ItemIndex(vectors, min_items=0)
    build_seconds = time.perf_counter() - t0
    rows = [{"search": "exact", "nprobe": None, "ms_per_query": round(exact_seconds * 1e3, 3)}]
    rows[0] |= {f"recall@{k}": 1.0 for k in args.k}
    for nprobe in args.nprobe:
        index._index.nprobe = nprobe
        t0 = time.perf_counter()
        found = [index.search(q, deepest)[0] for q in queries]
        seconds = (time.perf_counter() - t0) / len(queries)
        row = {"search": "ivf", "nprobe": nprobe, "ms_per_query": round(seconds * 1e3, 3)}
        for k in args.k:
            hits = [
                len(np.intersect1d(f[:k], t[:k])) / k for f, t in zip(found, truth, strict=True)
            ]
            row[f"recall@{k}"] = round(float(np.mean(hits)), 4)
        rows.append(row)

    table = Table(
        title=f"{args.model} {path.name}: {vectors.shape[0]:,} items x {vectors.shape[1]} factors, "
        f"{args.users} users; index built in {build_seconds:.1f} s, "
        f"{index._index.nlist} lists"
    )
    for column in rows[0]:
        table.add_column(column)
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row.values()))
    console.print(table)
    report = {
        "model": args.model,
        "version": path.name,
        "items": int(vectors.shape[0]),
        "factors": int(vectors.shape[1]),
        "lists": int(index._index.nlist),
        "build_seconds": round(build_seconds, 2),
        "rows": rows,
        "run": run_record(vars(args)),
    }
    console.print(f"wrote {write_report(args.out, report)}")


if __name__ == "__main__":
    main()
