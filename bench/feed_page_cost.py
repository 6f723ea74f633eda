"""What one feed page costs when nothing else is queued: server time and CPU per page.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/feed_page_cost.py [--pages 300] \
        [--db sqlite postgresql] [--baseline REV] [--rounds 2]

On the community of bench/serve_load.py (built there and cached under its ``--workdir``; run it
first), with every user's candidates ready, the app is served in process (FastAPI's
TestClient, refresher off, one request at a time) and asked ``--pages`` first pages
(``GET /users/{u}/feed?n=20``) twice over: users the worker has not seen yet (their state and
record are loaded on the way) and the same users again (held in memory), then each of those
sessions' second page (``cursor=``, its ``next_cursor``). Per group: the
``Server-Timing`` app time (p50/p95, ms) and the process CPU per request (ms, the client's
share included: the in-process client is part of the process). Under load, the server time
serve_load reports adds the wait for a page slot to this.

With ``--baseline REV`` the code of revision REV (a git worktree under ``--workdir``) is
measured too, each arm in a subprocess of its own importing its own tree; the arms take turns
for ``--rounds`` rounds (each round a new sample of users, the same for both arms), and the
table gives the mean of the rounds and new/old.

Prints a table and writes bench/results/feed_page_cost.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from _record import REPO, baseline_tree, run_record, write_report  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402
from serve_load import KEY, MODELS, RESULTS  # noqa: E402

from agora.api.app import create_app  # noqa: E402
from agora.config import FeedConfig, Settings  # noqa: E402

console = Console()
HEADERS = {"Authorization": f"Bearer {KEY}"}
SERVER_TIMING = re.compile(r"app;dur=([0-9.]+)")


def measure(client: TestClient, users: list[str], cursors: dict[str, str] | None = None) -> dict:
    """Server time and process CPU of one page per user, asked one after another: a first
    page, or with ``cursors`` the page after it (the first pages' next cursors are kept in
    ``cursors``, when given and empty)."""
    server, cpu, sources = [], [], {}
    follow = bool(cursors)
    for user in users:
        query = f"n=20&cursor={cursors[user]}" if follow else "n=20"
        started = time.process_time()
        answer = client.get(f"/users/{user}/feed?{query}", headers=HEADERS)
        cpu.append((time.process_time() - started) * 1000)
        answer.raise_for_status()
        if cursors is not None and not follow:
            cursors[user] = answer.json()["next_cursor"]
        server.append(float(SERVER_TIMING.search(answer.headers["server-timing"]).group(1)))
        kind = answer.headers.get("x-feed-ranking", "?")
        sources[kind] = sources.get(kind, 0) + 1
    server.sort()
    return {
        "pages": len(users),
        "server_p50_ms": round(statistics.median(server), 2),
        "server_p95_ms": round(server[int(0.95 * (len(server) - 1))], 2),
        "cpu_mean_ms": round(statistics.fmean(cpu), 2),
        "ranking": sources,
    }


def run_db(db: str, args: argparse.Namespace, seed: int) -> dict:
    data = Path(args.workdir) / db
    if not (data / "community.json").exists():
        raise SystemExit(f"no bench community in {data}: run bench/serve_load.py --db {db} first")
    settings = Settings(
        data_dir=data,
        database_url=args.pg_url if db == "postgresql" else None,
        api_key=KEY,
        models=json.loads(MODELS),
        background_seconds=0,
        feed=FeedConfig(refresh_in_serve=False),
    )
    users = [f"u{i}" for i in random.Random(seed).sample(range(args.users), args.pages)]
    cursors: dict[str, str] = {}
    with TestClient(create_app(settings)) as client:
        client.get("/users/warm-up/feed?n=20", headers=HEADERS)  # catalogue and models read
        first = measure(client, users)
        held = measure(client, users, cursors)
        following = measure(client, users, cursors)
    return {"db": db, "first_seen": first, "held": held, "next_page": following}


GROUPS = ("first_seen", "held", "next_page")
FIGURES = ("server_p50_ms", "server_p95_ms", "cpu_mean_ms")


def run_arm(tree: Path, db: str, args: argparse.Namespace, seed: int) -> dict:
    """One arm's measurement in a subprocess importing ``tree`` (its JSON line parsed)."""
    command = [sys.executable, str(Path(__file__)), "--arm", "--db", db, "--seed", str(seed),
               "--pages", str(args.pages), "--users", str(args.users), "--pg-url", args.pg_url,
               "--workdir", str(args.workdir)]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tree), str(Path(__file__).parent)])}
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    line = next(x for x in done.stdout.splitlines() if x.startswith("feed_page_cost_json "))
    return json.loads(line.partition(" ")[2])


def mean_cells(cells: list[dict]) -> dict:
    return {
        group: {f: round(statistics.fmean(c[group][f] for c in cells), 3) for f in FIGURES}
        | {"ranking": cells[-1][group]["ranking"]}
        for group in GROUPS
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pages", type=int, default=300)
    ap.add_argument("--db", nargs="+", choices=["sqlite", "postgresql"],
                    default=["sqlite", "postgresql"])  # fmt: skip
    ap.add_argument("--users", type=int, default=10_000, help="serve_load's active users")
    ap.add_argument("--pg-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/agora_bench")
    ap.add_argument("--workdir", default="/tmp/agora-serve-load")
    ap.add_argument("--baseline", help="also measure the code of this git revision (old/new)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--out", default=str(RESULTS / "feed_page_cost.json"))
    ap.add_argument("--arm", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--seed", type=int, default=7, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.arm:
        print("feed_page_cost_json", json.dumps(run_db(args.db[0], args, args.seed)))
        return
    trees = [("new", REPO / "src")]
    if args.baseline:
        trees.insert(0, ("old", baseline_tree(args.baseline, Path(args.workdir)) / "src"))
    cells: dict[str, dict[str, dict]] = {}
    for db in args.db:
        runs: dict[str, list[dict]] = {name: [] for name, _ in trees}
        for round_no in range(args.rounds):
            for name, tree in trees if round_no % 2 == 0 else trees[::-1]:
                runs[name].append(run_arm(tree, db, args, seed=7 + round_no))
        cells[db] = {name: mean_cells(found) for name, found in runs.items()}
    table = Table(title=f"one feed page at a time, mean of {args.rounds} rounds (ms)")
    for column in ("db", "arm", "pages", "server p50", "server p95", "CPU per page", "ranking"):
        table.add_column(column)
    for db, arms in cells.items():
        for name, groups in arms.items():
            for group, figs in groups.items():
                table.add_row(db, name, group.replace("_", " "), *(str(figs[f]) for f in FIGURES),
                              str(figs["ranking"]))  # fmt: skip
        if "old" in arms:
            for group in GROUPS:
                old, new = arms["old"][group], arms["new"][group]
                table.add_row(db, "new/old", group.replace("_", " "),
                              *(f"{new[f] / old[f]:.2f}" for f in FIGURES), "")  # fmt: skip
    console.print(table)
    report = {"cells": cells, "run": run_record(vars(args))}
    console.print(f"wrote {write_report(args.out, report)}")


if __name__ == "__main__":
    main()
