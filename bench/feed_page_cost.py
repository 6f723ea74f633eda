"""What one feed page costs when nothing else is queued: server time and CPU per page.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/feed_page_cost.py [--pages 300] \
        [--db sqlite postgresql]

On the community of bench/serve_load.py (built there and cached under its ``--workdir``; run it
first), with every user's candidates ready, the app is served in process (FastAPI's
TestClient, refresher off, one request at a time) and asked ``--pages`` first pages
(``GET /users/{u}/feed?n=20``) twice over: users the worker has not seen yet (their state and
record are loaded on the way) and the same users again (held in memory). Per group: the
``Server-Timing`` app time (p50/p95, ms) and the process CPU per request (ms, the client's
share included: the in-process client is part of the process). Under load, the server time
serve_load reports adds the wait for a page slot to this.

Prints a table and writes bench/results/feed_page_cost.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import statistics
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from _record import run_record, write_report  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402
from serve_load import KEY, MODELS, RESULTS  # noqa: E402

from agora.api.app import create_app  # noqa: E402
from agora.config import FeedConfig, Settings  # noqa: E402

console = Console()
HEADERS = {"Authorization": f"Bearer {KEY}"}
SERVER_TIMING = re.compile(r"app;dur=([0-9.]+)")


def measure(client: TestClient, users: list[str]) -> dict:
    """Server time and process CPU of one first page per user, asked one after another."""
    server, cpu, sources = [], [], {}
    for user in users:
        started = time.process_time()
        answer = client.get(f"/users/{user}/feed?n=20", headers=HEADERS)
        cpu.append((time.process_time() - started) * 1000)
        answer.raise_for_status()
        server.append(float(SERVER_TIMING.search(answer.headers["server-timing"]).group(1)))
        kind = answer.headers.get("x-feed-candidates", "?")
        sources[kind] = sources.get(kind, 0) + 1
    server.sort()
    return {
        "pages": len(users),
        "server_p50_ms": round(statistics.median(server), 2),
        "server_p95_ms": round(server[int(0.95 * (len(server) - 1))], 2),
        "cpu_mean_ms": round(statistics.fmean(cpu), 2),
        "candidates": sources,
    }


def run_db(db: str, args: argparse.Namespace) -> dict:
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
    users = [f"u{i}" for i in random.Random(7).sample(range(args.users), args.pages)]
    with TestClient(create_app(settings)) as client:
        client.get("/users/warm-up/feed?n=20", headers=HEADERS)  # catalogue and models read
        first = measure(client, users)
        held = measure(client, users)
    return {"db": db, "first_seen": first, "held": held}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pages", type=int, default=300)
    ap.add_argument("--db", nargs="+", choices=["sqlite", "postgresql"],
                    default=["sqlite", "postgresql"])  # fmt: skip
    ap.add_argument("--users", type=int, default=10_000, help="serve_load's active users")
    ap.add_argument("--pg-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/agora_bench")
    ap.add_argument("--workdir", default="/tmp/agora-serve-load")
    ap.add_argument("--out", default=str(RESULTS / "feed_page_cost.json"))
    args = ap.parse_args()
    cells = [run_db(db, args) for db in args.db]
    table = Table(title="one feed page at a time (ms)")
    for column in ("db", "users", "server p50", "server p95", "CPU per page", "candidates"):
        table.add_column(column)
    for cell in cells:
        for group in ("first_seen", "held"):
            figs = cell[group]
            table.add_row(
                cell["db"], group.replace("_", " "), str(figs["server_p50_ms"]),
                str(figs["server_p95_ms"]), str(figs["cpu_mean_ms"]), str(figs["candidates"]),
            )  # fmt: skip
    console.print(table)
    report = {"cells": cells, "run": run_record(vars(args))}
    console.print(f"wrote {write_report(args.out, report)}")


if __name__ == "__main__":
    main()
