"""The factor models' item index against scoring every item: same answers, how much faster.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/item_index.py [NAME=]MODEL_DIR ... \
        [--splits ../shared/benchmarks/lastfm-social ...] [--models als bpr] [--users 1000] \
        [--k 10 50 1000]

Each ``MODEL_DIR`` holds trained artefacts (``agora train``'s ``models/``; ``NAME`` names its
community in the table); the newest version of each of ``--models`` (default ``als``) is
loaded as ``agora serve`` loads it. Each ``--splits`` folder's train set is fitted with each
of ``--models`` (shipped parameters) here. For ``--users`` random
trained users, their fitted vectors are the queries, searched one at a time on one thread:
scoring every item (one product, then the top k) against :class:`agora.models.retrieval.
ItemIndex` (longest vectors first, stopping where no unread item can beat the k-th score).
Per k: ms per query of each (and of the index searching ``CHUNK`` users at once, as the
refresher does), the share of the exact top k's items the index returns
(below 1.0 only where items tie with the k-th score: equal vectors), the share of queries whose
k scores are the exact ones (must be 1.0) and how many items it read (p50, p90).
``/recommendations`` asks for about 30 plus the user's touched items, the feed's candidates
for 1,000 plus those. Prints a table and writes bench/results/item_index.json (``--out``).
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from _record import REPO, run_record, write_report  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from agora.evaluation.splits import load_split  # noqa: E402
from agora.models.artifacts import list_artifacts, load_artifact  # noqa: E402
from agora.models.base import top_n  # noqa: E402
from agora.models.registry import MODELS  # noqa: E402
from agora.models.retrieval import FIRST_READ, ItemIndex  # noqa: E402

console = Console(width=170)
#: Users searched at once in the batched timing (the refresher's chunks).
CHUNK = 500


def every_item(vectors: np.ndarray, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The top ``k`` (items, scores) as the models rank when scoring every item."""
    items, scores = top_n((vectors @ query).astype(np.float64)[None, :], k)
    return items[0], scores[0]


def items_read(index: ItemIndex, lengths: np.ndarray, query: np.ndarray, k: int) -> int:
    """How many vectors the index scores for ``query``: the first read, then every vector
    whose bound (|query| x its length; ``lengths`` in the index's order) exceeds the k-th best
    score of that read."""
    first = min(len(index), max(FIRST_READ, 4 * k))
    size = float(np.linalg.norm(query))
    if size == 0:
        return first
    kth = np.sort(index.vectors[:first] @ query)[-min(k, first)]
    return max(first, int(np.count_nonzero(lengths * size > kth)))


def timed(search, queries: np.ndarray) -> tuple[list, float]:  # noqa: ANN001
    t0 = time.perf_counter()
    found = [search(q) for q in queries]
    return found, (time.perf_counter() - t0) / len(queries)


def measure(model: Any, args: argparse.Namespace) -> dict:
    """One fitted factor model's rows (one per k) and its vectors' figures."""
    vectors = np.ascontiguousarray(model.item_factors_, dtype=np.float32)
    users = np.random.default_rng(args.seed).choice(
        len(model.user_factors_), size=min(args.users, len(model.user_factors_)), replace=False
    )
    queries = np.ascontiguousarray(model.user_factors_[users], dtype=np.float32)
    t0 = time.perf_counter()
    index = ItemIndex(vectors)
    build_seconds = time.perf_counter() - t0
    lengths = np.linalg.norm(vectors, axis=1)
    ordered = np.linalg.norm(index.vectors, axis=1)
    timed(lambda q: every_item(vectors, q, 10), queries[:100])  # caches and BLAS warm

    rows = []
    for k in args.k:
        truth, every_seconds = timed(lambda q, k=k: every_item(vectors, q, k), queries)
        found, index_seconds = timed(lambda q, k=k: index.search(q, k), queries)
        t0 = time.perf_counter()
        for start in range(0, len(queries), CHUNK):
            index.search_many(queries[start : start + CHUNK], k)
        batched_seconds = (time.perf_counter() - t0) / len(queries)
        pairs = list(zip(found, truth, strict=True))
        share = [len(np.intersect1d(f[0], t[0])) / len(t[0]) for f, t in pairs]
        same = [np.allclose(f[1], t[1], rtol=1e-6, atol=0) for f, t in pairs]
        reads = [items_read(index, ordered, q, k) for q in queries]
        rows.append(
            {
                "k": k,
                "every_item_ms": round(every_seconds * 1e3, 3),
                "index_ms": round(index_seconds * 1e3, 3),
                "batched_index_ms": round(batched_seconds * 1e3, 3),
                "speedup": round(every_seconds / index_seconds, 1),
                "same_items": round(float(np.mean(share)), 4),
                "same_scores": round(float(np.mean(same)), 4),
                "read_p50": int(np.median(reads)),
                "read_p90": int(np.percentile(reads, 90)),
            }
        )
    return {
        "items": len(vectors),
        "factors": int(vectors.shape[1]),
        "users": len(queries),
        "length_p50": round(float(np.median(lengths)), 4),
        "length_max": round(float(lengths.max()), 4),
        "build_ms": round(build_seconds * 1e3, 1),
        "rows": rows,
    }


def models(args: argparse.Namespace) -> Iterator[tuple[str, str, str, Any]]:
    """(community, model name, version, fitted model): each ``--models`` name's newest version
    in each model dir, then each fitted on each ``--splits`` train set."""
    for labelled in args.model_dirs:
        community, _, model_dir = labelled.rpartition("=")
        for name in args.models:
            versions = [p for p in list_artifacts(model_dir) if p.parent.name == name]
            if versions:
                path = max(versions)
                yield community or model_dir, name, path.name, load_artifact(path).model
    for split_dir in args.splits:
        train = load_split(split_dir).train
        for name in args.models:
            console.print(f"fitting {name} on {split_dir.name}'s train set")
            model = MODELS[name](num_threads=2).fit(train)
            yield split_dir.name, name, "fitted on train", model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model_dirs", nargs="*", metavar="[NAME=]MODEL_DIR")
    ap.add_argument("--splits", type=Path, nargs="*", default=[], metavar="SPLIT_DIR")
    ap.add_argument("--models", nargs="+", default=["als"], help="factor models: als, bpr")
    ap.add_argument("--users", type=int, default=1000)
    ap.add_argument("--k", type=int, nargs="+", default=[10, 50, 1000])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "item_index.json"))
    args = ap.parse_args()

    table = Table(title="top k: scoring every item against the item index, one user at a time")
    columns = ["community", "model", "items x factors", "lengths p50 / max", "k", "every item ms",
               "index ms", "batched ms", "speedup", "same items", "same scores", "read p50",
               "read p90"]  # fmt: skip
    for column in columns:
        table.add_column(column, justify="left" if column in ("community", "model") else "right")
    runs = []
    for community, name, version, model in models(args):
        run = {"community": community, "model": name, "version": version} | measure(model, args)
        runs.append(run)
        for row in run["rows"]:
            table.add_row(
                community, name, f"{run['items']:,} x {run['factors']}",
                f"{run['length_p50']} / {run['length_max']}", *(f"{v:,}" for v in row.values()),
            )  # fmt: skip
    console.print(table)
    report = {"runs": runs, "run": run_record(vars(args))}
    console.print(f"wrote {write_report(args.out, report)}")


if __name__ == "__main__":
    main()
