"""User segments on real stores: the k chosen, silhouette, sizes, descriptions and run times.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/analytics_segments.py [--skip-movielens]

1. **Cardano Stack Exchange** (the bundled dump ``data/cardano-se``): imported into a temporary
   SQLite store with the project's importer; users' behaviour (asks, answers, comments, votes...)
   and the tags of the posts they engaged with.
2. **MovieLens 1M** (``../shared/data/movielens-1m/ml-1m``, the staged prefix: users 1-2999, all
   their 487,650 ratings with timestamps): movies' genres are the tags.

Each store is segmented by :func:`agora.analytics.segments.service.build_segments` with k chosen by
silhouette over 2..8 and stored as groups (timed). Prints tables; writes
``bench/results/analytics_segments.json`` and ``bench/results/analytics_segments.png`` (the
clustered features projected on their first two SVD components, coloured by segment).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from _record import run_record  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402
from sklearn.decomposition import TruncatedSVD  # noqa: E402

from agora.analytics import segments  # noqa: E402
from agora.config import BUILTIN_EVENT_TYPES  # noqa: E402
from agora.db.engine import make_engine, migrate, session_factory, transaction  # noqa: E402
from agora.ingest.registry import chunk_dataset, load_any  # noqa: E402
from agora.ingest.service import add_dataset  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
RESULTS = REPO / "bench" / "results"
console = Console(soft_wrap=True)
EVENT_TYPES = (*BUILTIN_EVENT_TYPES, "ask", "answer", "accept")


def run(name: str, path: Path, fmt: str, db: Path) -> tuple[dict, segments.Segmentation]:
    """Import ``path`` into a fresh SQLite store, then build and store its segments."""
    engine = make_engine(f"sqlite:///{db}")
    migrate(engine)
    sessions = session_factory(engine)
    start = time.perf_counter()
    dataset = load_any(path, fmt)
    with transaction(sessions) as session:
        for part in chunk_dataset(dataset, 20_000):
            add_dataset(session, part, EVENT_TYPES, max_future_seconds=1e9)
    t_import = time.perf_counter() - start
    start = time.perf_counter()
    with transaction(sessions) as session:
        result = segments.build_segments(session, store=True)
    t_build = time.perf_counter() - start
    with sessions() as session:
        stored = segments.stored_segments(session)
    engine.dispose()
    counts = dataset.counts()
    out = {
        "dataset": name,
        "users_in_store": counts.get("users", 0),
        "events": counts.get("events", 0),
        "users_segmented": len(result.users),
        "k": result.k,
        "silhouette": result.silhouette,
        "silhouette_by_k": result.silhouettes,
        "sizes": [s.size for s in result.segments],
        "segments": [{"group_id": s.group_id, **s.attributes()} for s in result.segments],
        "stored_groups": len(stored),
        "seconds": {
            "import": round(t_import, 2),
            "build_and_store": round(t_build, 2),
            **{k: round(v, 3) for k, v in result.seconds.items()},
        },
    }
    return out, result


def show(out: dict) -> None:
    sil = "n/a" if out["silhouette"] is None else f"{out['silhouette']:.3f}"
    table = Table(
        title=f"{out['dataset']}: {out['users_segmented']} users, k={out['k']} "
        f"(silhouette {sil}), build+store {out['seconds']['build_and_store']:.1f} s"
    )
    for column in ("segment", "label", "size", "median events", "top tags (lift)", "top types"):
        table.add_column(column)
    for s in out["segments"]:
        table.add_row(
            s["group_id"],
            s["label"],
            str(s["size"]),
            f"{s['median_events']:g}",
            ", ".join(f"{t['tag']} ({t['lift']:.2f})" for t in s["top_tags"]),
            ", ".join(f"{t['type']} {t['share']:.2f}" for t in s["top_event_types"]),
        )
    console.print(table)
    console.print(
        "silhouette by k: "
        + ", ".join(f"{k}: {v:.3f}" for k, v in sorted(out["silhouette_by_k"].items()))
    )
    console.print("seconds: " + ", ".join(f"{k} {v}" for k, v in out["seconds"].items()))


def plot(results: list[tuple[dict, segments.Segmentation]], path: Path) -> None:
    fig, axes = plt.subplots(1, len(results), figsize=(6.5 * len(results), 5.5), squeeze=False)
    for ax, (out, seg) in zip(axes[0], results, strict=True):
        xy = TruncatedSVD(2, random_state=0).fit_transform(seg.embedding)
        order = {s.group_id: n for n, s in enumerate(seg.segments)}
        label_of = {u: order[s.group_id] for s in seg.segments for u in s.members}
        colours = np.array([label_of[u] for u in seg.users])
        for n, s in enumerate(seg.segments):
            mask = colours == n
            ax.scatter(xy[mask, 0], xy[mask, 1], s=4, alpha=0.5, label=f"{s.label} ({s.size})")
        ax.set_title(f"{out['dataset']}: k={out['k']}, silhouette {out['silhouette']:.3f}")
        ax.set_xlabel("SVD 1 of the standardised features")
        ax.set_ylabel("SVD 2")
        ax.legend(fontsize=7, markerscale=3, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--skip-movielens", action="store_true", help="Only the Cardano dump.")
    args = ap.parse_args()
    jobs = [("cardano-se", REPO / "data" / "cardano-se", "stackexchange")]
    if not args.skip_movielens:
        jobs.append(("movielens-1m (users 1-2999)", DATA / "movielens-1m" / "ml-1m", "movielens"))
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for n, (name, path, fmt) in enumerate(jobs):
            out, seg = run(name, path, fmt, Path(tmp) / f"store{n}.db")
            show(out)
            results.append((out, seg))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "analytics_segments.json").write_text(
        json.dumps(
            {"run": run_record(vars(args)), "results": [out for out, _ in results]}, indent=2
        )
        + "\n"
    )
    plot(results, RESULTS / "analytics_segments.png")
    console.print(f"wrote {RESULTS / 'analytics_segments.json'} and analytics_segments.png")


if __name__ == "__main__":
    main()
