"""How long making every user's feed candidates ready takes (``agora worker --once``), with the
users split between 1, 2, ... refresher processes (``feed.refresher_shards``), side by side.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/refresh_all.py [--db sqlite postgresql] \
        [--shards 1 2] [--rounds 2]

Uses the community of bench/serve_load.py (100k items, 15k users, 1.05M events; built and
cached by the same code when missing). Each round runs every (database, shard count) once, the
shard counts taking turns, so a slower moment of a shared machine falls on both; every run is
reported, not the best. Prints a table (seconds per run, their median, users per second) and
writes bench/results/refresh_all.json with each run's seconds and the user count.

Why: issue 12's target is every user refreshed in 60 s or less on this 2-core machine; one
refresher process is one core's work.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _record import run_record, write_report
from rich.console import Console
from rich.table import Table
from serve_load import RESULTS, prepare

console = Console()


def refresh_once(env: dict[str, str], shards: int) -> tuple[float, int]:
    """``agora worker --once`` with ``shards`` refreshers: (seconds, users it reports)."""
    env = {**env, "AGORA_FEED": json.dumps({"refresher_shards": shards})}
    t0 = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "agora.cli.main", "worker", "--once"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - t0
    users = sum(
        int(line.split()[0].replace(",", ""))
        for line in done.stdout.splitlines()
        if "users' candidates refreshed in" in line
    )
    return seconds, users


def main() -> None:
    ap = argparse.ArgumentParser(description="agora worker --once, 1 to N refresher processes.")
    ap.add_argument("--db", nargs="+", choices=["sqlite", "postgresql"],
                    default=["sqlite", "postgresql"])  # fmt: skip
    ap.add_argument("--shards", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--users", type=int, default=10_000, help="active users (plus 5,000 creators)")
    ap.add_argument("--items", type=int, default=100_000)
    ap.add_argument("--pg-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/agora_bench")
    ap.add_argument("--workdir", default="/tmp/agora-serve-load")
    ap.add_argument("--background-seconds", type=float, default=0.0)
    ap.add_argument("--out", default=str(RESULTS / "refresh_all.json"))
    args = ap.parse_args()
    envs = {db: prepare(db, args)[0] for db in args.db}
    runs: dict[tuple[str, int], list[float]] = {(db, n): [] for db in args.db for n in args.shards}
    users: dict[str, int] = {}
    for round_no in range(args.rounds):
        for db in args.db:
            for shards in args.shards:
                seconds, count = refresh_once(envs[db], shards)
                runs[db, shards].append(round(seconds, 1))
                users[db] = count
                console.print(
                    f"round {round_no + 1}: {db}, {shards} refresher(s): {count:,} users in "
                    f"{seconds:.1f} s"
                )
    table = Table(title="agora worker --once: every user's feed candidates made ready")
    for column in ("db", "refreshers", "seconds per run", "median s", "users/s"):
        table.add_column(column, justify="left" if column == "db" else "right")
    cells = []
    for (db, shards), seconds in runs.items():
        median = statistics.median(seconds)
        cells.append(
            {
                "db": db,
                "refresher_shards": shards,
                "seconds": seconds,
                "median_seconds": round(median, 1),
                "users": users[db],
                "users_per_second": round(users[db] / median, 1),
            }
        )
        table.add_row(
            db,
            str(shards),
            ", ".join(f"{s:.1f}" for s in seconds),
            f"{median:.1f}",
            f"{users[db] / median:.0f}",
        )
    console.print(table)
    write_report(Path(args.out), {"cells": cells, "run": run_record(vars(args))})
    console.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
