"""Write a large community as an Agora import file (JSON Lines), streamed, scaled from real
statistics as bench/serve_load.py scales its community.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/scale_community.py OUT.jsonl \
        [--events 20000000] [--users 1000000] [--items 200000] [--seed 0]

What it writes, in this order (``docs/import-format.md``):
* ``--items`` item records: tags (1-3 ML-1M genres drawn by genre frequency), an author among
  ``--creators`` creators with Zipf(1.3) sized catalogues, ``created`` spread over ``--days``
  days before the file's clock (more of them recent: the age is uniform on the square root);
* ``follow`` edges of the first ``--follow-users`` users, each following as many users as a
  draw from the LastFM HetRec friends degree distribution (all users would be 10M+ edges,
  which the import holds in memory as records: the events are what is at volume here);
* exactly ``--events`` events: every user has one at least, the rest are shared out in
  proportion to a draw from ML-1M's user activity distribution (the train split of
  ml1m-general) per user; each event's item is drawn by item weights from ML-1M's item
  popularity (with multiplicative jitter, so the long tail keeps its shape); its time lies
  between the item's creation and the file's clock; types: 70% view, 15% like, 8% click,
  3% bookmark, 2% share, 2% comment. Users are only named by their events (bare rows).

Users are generated in blocks of 20,000 (numpy, vectorised) and written at once, so memory
stays flat whatever the size. A progress bar counts events. Prints the counts and the time
taken; writes nothing else.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402
from quality import BENCHMARKS, ml1m_movies  # noqa: E402
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn  # noqa: E402

from agora.evaluation.splits import load_split  # noqa: E402

TYPES = np.array(["view", "like", "click", "bookmark", "share", "comment"])
TYPE_P = np.array([0.70, 0.15, 0.08, 0.03, 0.02, 0.02])
BLOCK = 20_000


def real_statistics() -> dict[str, np.ndarray]:
    """ML-1M's item popularity and user activity, its genres' frequencies, LastFM's degrees."""
    ml = load_split(BENCHMARKS / "ml1m-general")
    genres = Counter(g for _, gs, _ in (ml1m_movies(ml.item_ids) or []) for g in gs)
    friends = load_split(BENCHMARKS / "lastfm-social").social
    degree = np.array(list(Counter(friends[:, 0]).values())) if friends is not None else [10]
    return {
        "item_popularity": np.diff(sp.csc_matrix(ml.train.matrix).indptr).astype(np.float64),
        "user_activity": np.diff(ml.train.matrix.indptr).astype(np.float64),
        "genres": np.array(list(genres) or ["Drama"]),
        "genre_p": np.array(list(genres.values()) or [1], dtype=np.float64),
        "degree": np.asarray(degree),
    }


def write_community(path: Path, args: argparse.Namespace) -> dict[str, int]:
    """Write the file (see the module docstring); returns the record counts."""
    rng = np.random.default_rng(args.seed)
    stats = real_statistics()
    now = datetime.now(UTC).replace(microsecond=0).timestamp() - 3600  # clear of the clock
    span = args.days * 86400.0
    weights = rng.choice(stats["item_popularity"] + 1.0, args.items)
    weights *= rng.lognormal(0.0, 0.3, args.items)
    cdf = np.cumsum(weights) / weights.sum()
    created = now - span * rng.random(args.items) ** 2
    creator_of = rng.zipf(1.3, args.items) % args.creators
    genre_p = stats["genre_p"] / stats["genre_p"].sum()
    activity = rng.choice(stats["user_activity"], args.users)
    per_user = 1 + rng.multinomial(args.events - args.users, activity / activity.sum())
    counts = {"items": args.items, "edges": 0, "events": 0}
    columns = [BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    with path.open("w", encoding="utf-8") as out, Progress(*columns) as progress:
        for i in range(args.items):
            tags = sorted(set(rng.choice(stats["genres"], rng.integers(1, 4), p=genre_p)))
            stamp = datetime.fromtimestamp(float(created[i]), UTC).isoformat()
            out.write(
                f'{{"kind":"item","item_id":"i{i}","author_id":"c{creator_of[i]}",'
                f'"title":"Post {i}","tags":{_json_list(tags)},"created":"{stamp}"}}\n'
            )
        for u in range(min(args.follow_users, args.users)):
            for v in set(rng.integers(0, args.users, int(rng.choice(stats["degree"]))).tolist()):
                if v != u:
                    out.write(
                        f'{{"kind":"edge","source_id":"u{u}","target_id":"u{v}","type":"follow"}}\n'
                    )
                    counts["edges"] += 1
        task = progress.add_task("events", total=args.events)
        for start in range(0, args.users, BLOCK):
            block = per_user[start : start + BLOCK]
            users = np.repeat(np.arange(start, start + len(block)), block)
            items = np.searchsorted(cdf, rng.random(len(users)))
            born = created[items]
            stamps = (born + (now - born) * rng.random(len(users))).astype(np.int64)
            types = rng.choice(len(TYPES), len(users), p=TYPE_P)
            first = counts["events"]
            lines = [
                f'{{"event_id":"e{first + n}","user_id":"u{u}","item_id":"i{i}",'
                f'"type":"{TYPES[t]}","timestamp":{s}}}\n'
                for n, (u, i, t, s) in enumerate(
                    zip(
                        users.tolist(), items.tolist(), types.tolist(), stamps.tolist(), strict=True
                    )
                )
            ]
            out.write("".join(lines))
            counts["events"] += len(lines)
            progress.advance(task, len(lines))
    return counts


def _json_list(values: list[str]) -> str:
    return "[" + ",".join(f'"{v}"' for v in values) + "]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--events", type=int, default=20_000_000)
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--items", type=int, default=200_000)
    parser.add_argument("--creators", type=int, default=20_000)
    parser.add_argument("--follow-users", type=int, default=50_000)
    parser.add_argument("--days", type=float, default=730.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.events < args.users:
        sys.exit("--events must be at least --users (every user has an event)")
    started = time.perf_counter()
    counts = write_community(args.out, args)
    seconds = time.perf_counter() - started
    size = args.out.stat().st_size / 1e6
    print(
        f"{args.out}: {counts['events']:,} events of {args.users:,} users on {counts['items']:,} "
        f"items, {counts['edges']:,} follow edges; {size:,.0f} MB in {seconds:,.1f} s"
    )


if __name__ == "__main__":
    main()
