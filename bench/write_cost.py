"""CPU per write on the two write paths of a served worker: a one-event ``POST /events`` (with
the work that runs after its answer) and an impression row written by the feed's buffer.

    OPENBLAS_NUM_THREADS=1 PYTHONPATH=src .venv/bin/python bench/write_cost.py \
        [--baseline REV] [--db sqlite postgresql] [--rounds 6] [--requests 150] [--batches 10] \
        [--rows 3000] [--flushes 2] [--engagement]

Stores: for SQLite, a copy per arm of a copy of bench/serve_load.py's community (``--source``,
100k items, 15k users, 1.05M events; never written); for PostgreSQL, a small community
(``--pg-users`` users, ``--pg-items`` items, ``--pg-events`` events) loaded once through the
app's own ``POST /events`` into its own database (``--pg-url``, never a shared one), copied per
arm (``CREATE DATABASE ... TEMPLATE``). Every run starts from fresh copies.

Each arm (this checkout; with ``--baseline REV`` also revision REV, a git worktree under
``--workdir``) runs in its own subprocess, importing its own source tree, and serves the app in
process (FastAPI's TestClient, lifespan on: the feed state tail, the impression flusher...;
refresher and background jobs off). The arms alternate round by round; in a round each does:

- ``--requests`` one-event ``POST /events`` (an existing user and item, "view" or "like", a
  unique id, the time now): CPU of the whole process per request (``time.process_time``), the
  tasks run after the answer included. Engagement's after-write step is left out unless
  ``--engagement`` (another change owns it; it costs more than the rest together);
- ``--batches`` ``POST /events`` of 100 such events: CPU per event;
- ``--flushes`` writes of ``--rows`` impression rows (pages of 20, random users and items, as
  ``agora.feed.online`` builds them) by an ``ImpressionBuffer`` on the app's sessions: CPU of
  ``flush()`` per row.

Prints a table (mean over all rounds, and new/old) and writes bench/results/write_cost.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
KEY = "load-test-key"
MODELS = ["trending", "als"]
HEADERS = {"Authorization": f"Bearer {KEY}"}
REPLY = "write_cost_json "
SHARED_DATABASES = {"test", "postgres", "template0", "template1", "agora_bench"}


# -- an arm: one source tree, one store, served in this process --------------------------------
def arm_main(name: str, data_dir: Path, database_url: str | None, engagement: bool) -> None:
    """Serve the app of the tree on ``PYTHONPATH`` and answer the main process's commands
    (one JSON object a line on stdin, one ``write_cost_json`` line each on stdout)."""
    from fastapi.testclient import TestClient
    from sqlalchemy import select

    from agora.api.app import create_app
    from agora.config import FeedConfig, Settings
    from agora.db.tables import Item, User
    from agora.feed.impressions import ImpressionBuffer

    settings = Settings(
        data_dir=data_dir,
        database_url=database_url,
        api_key=KEY,
        models=MODELS,
        background_seconds=0,
        feed=FeedConfig(refresh_in_serve=False),
    )
    app = create_app(settings)
    if not engagement:
        app.state.after_event_writes = [
            derive
            for derive in app.state.after_event_writes
            if "engagement" not in getattr(derive, "__qualname__", "")
        ]
    rng = random.Random(name)
    with TestClient(app) as client:
        with app.state.sessions() as session:
            users = list(session.scalars(select(User.id).order_by(User.id).limit(20_000)))
            items = list(session.scalars(select(Item.id).order_by(Item.id).limit(200_000)))
        buffer = ImpressionBuffer(app.state.sessions, flush_seconds=3600, max_rows=10**7)
        sequence = iter(range(10**9))

        def event(command: dict[str, Any]) -> dict[str, Any]:
            return {
                "event_id": f"write-cost-{name}-{next(sequence)}",
                "user_id": f"u{rng.randrange(command['users'])}",
                "item_id": f"i{rng.randrange(command['items'])}",
                "type": "like" if rng.random() < 0.3 else "view",
                "timestamp": time.time(),
            }

        def post(body: Any) -> float:
            started = time.process_time()
            answer = client.post("/events", json=body, headers=HEADERS)
            spent = time.process_time() - started
            if answer.status_code != 201:
                raise SystemExit(f"POST /events answered {answer.status_code}: {answer.text}")
            return spent

        def impressions(n: int) -> list[dict[str, Any]]:
            now, rows = datetime.now(UTC), []
            while len(rows) < n:
                user, browsing = rng.choice(users), f"{rng.getrandbits(128):032x}"
                rows += [
                    {
                        "user_id": user,
                        "item_id": rng.choice(items),
                        "session": browsing,
                        "position": position,
                        "source": rng.choice(("als", "trending", "fresh", "social")),
                        "served": now,
                    }
                    for position in range(20)
                ]
            return rows[:n]

        def flush(n: int) -> float:
            buffer.add(impressions(n))
            started = time.process_time()
            written = buffer.flush()
            spent = time.process_time() - started
            if written != n:
                raise SystemExit(f"the buffer wrote {written} of {n} impression rows")
            return spent

        for line in sys.stdin:
            command = json.loads(line)
            op = command["op"]
            if op == "events":
                result = [post(event(command)) for _ in range(command["n"])]
            elif op == "batches":
                result = [
                    post([event(command) for _ in range(100)]) / 100 for _ in range(command["n"])
                ]
            elif op == "impressions":
                result = [flush(command["rows"]) / command["rows"] for _ in range(command["n"])]
            elif op == "quiet":  # the models' warm-up thread and the first writes are behind
                while any(t.name == "agora-warm" for t in threading.enumerate()):
                    time.sleep(0.2)
                result = []
            else:
                raise SystemExit(f"unknown command {op!r}")
            print(REPLY + json.dumps(result), flush=True)


class Arm:
    """A running arm subprocess."""

    def __init__(self, name: str, src: Path, data_dir: Path, url: str | None, engagement: bool):
        self.name = name
        command = [sys.executable, str(Path(__file__).resolve()), "--arm", name,
                   "--arm-data", str(data_dir)]  # fmt: skip
        if url:
            command += ["--arm-url", url]
        if engagement:
            command.append("--engagement")
        env = {**os.environ, "PYTHONPATH": str(src), "OPENBLAS_NUM_THREADS": "1"}
        self.proc = subprocess.Popen(
            command, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )

    def ask(self, **command: Any) -> list[float]:
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()
        for line in self.proc.stdout:
            if line.startswith(REPLY):
                return json.loads(line[len(REPLY) :])
        raise SystemExit(f"arm {self.name} ended (exit code {self.proc.wait()})")

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        self.proc.wait(timeout=60)


# -- stores ------------------------------------------------------------------------------------
def sqlite_copy(source: Path, target: Path) -> Path:
    """A fresh copy of the community folder ``source`` (store and models) at ``target``."""
    if not (source / "agora.db").exists():
        raise SystemExit(f"no community in {source}: cp -r /tmp/agora-serve-load/sqlite {source}")
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(source, target)
    return target


def _admin(url: str):  # noqa: ANN202 - an Engine
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url

    return create_engine(make_url(url).set(database="postgres"), isolation_level="AUTOCOMMIT")


def _database(url: str) -> str:
    from sqlalchemy.engine import make_url

    name = make_url(url).database or ""
    if name in SHARED_DATABASES:
        raise SystemExit(f"refusing to write the database {name!r}: give --pg-url its own one")
    return name


def pg_community(args: argparse.Namespace) -> None:
    """Load the small PostgreSQL community through the app's ``POST /events`` (once: a marker
    table says it is there)."""
    from fastapi.testclient import TestClient
    from sqlalchemy import create_engine, inspect, text

    from agora.api.app import create_app
    from agora.config import FeedConfig, Settings

    name = _database(args.pg_url)
    admin = _admin(args.pg_url)
    with admin.connect() as conn:
        exists = conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name})
        if exists.first() is None:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    engine = create_engine(args.pg_url)
    ready = inspect(engine).has_table("write_cost_ready")
    engine.dispose()
    if ready:
        return
    print(f"loading {args.pg_events:,} events into {name} ...", flush=True)
    settings = Settings(
        data_dir=args.workdir / "pg-load",
        database_url=args.pg_url,
        api_key=KEY,
        background_seconds=0,
        feed=FeedConfig(refresh_in_serve=False),
    )
    rng = random.Random(0)
    with TestClient(create_app(settings)) as client:
        for start in range(0, args.pg_events, 1000):
            batch = [
                {
                    "event_id": f"community-{k}",
                    "user_id": f"u{rng.randrange(args.pg_users)}",
                    "item_id": f"i{int(rng.paretovariate(1.2)) % args.pg_items}",
                    "type": "like" if rng.random() < 0.3 else "view",
                    "timestamp": time.time() - rng.uniform(0, 30 * 86400),
                }
                for k in range(start, min(start + 1000, args.pg_events))
            ]
            client.post("/events", json=batch, headers=HEADERS).raise_for_status()
    engine = create_engine(args.pg_url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE write_cost_ready (id int)"))
    engine.dispose()


def pg_copy(base_url: str, arm: str) -> str:
    """A fresh copy of the PostgreSQL community for ``arm``; its URL."""
    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    base = _database(base_url)
    name = f"{base}_{arm}"
    admin = _admin(base_url)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{base}"'))
    admin.dispose()
    return make_url(base_url).set(database=name).render_as_string(hide_password=False)


# -- the run -----------------------------------------------------------------------------------
def run_db(db: str, trees: list[tuple[str, Path]], args: argparse.Namespace) -> dict:
    """Every arm on ``db``, alternating round by round; figures per arm."""
    arms = []
    for index, (name, src) in enumerate(trees):
        slot = f"arm{index}"
        if db == "sqlite":
            data, url = sqlite_copy(args.source, args.workdir / f"sqlite-{slot}"), None
            users, items = args.users, 100_000
        else:
            data, url = args.workdir / f"pg-{slot}", pg_copy(args.pg_url, slot)
            users, items = args.pg_users, args.pg_items
        arms.append((Arm(name, src, data, url, args.engagement), users, items))
    figures: dict[str, dict[str, list[float]]] = {
        arm.name: {"event_ms": [], "batch_event_us": [], "impression_row_us": []}
        for arm, _, _ in arms
    }
    try:
        for arm, users, items in arms:  # warm up: first requests, models, caches
            arm.ask(op="events", n=30, users=users, items=items)
            arm.ask(op="batches", n=2, users=users, items=items)
            arm.ask(op="impressions", n=1, rows=500)
            arm.ask(op="quiet")
        for round_no in range(args.rounds):
            order = arms if round_no % 2 == 0 else arms[::-1]
            for arm, users, items in order:
                mine = figures[arm.name]
                events = arm.ask(op="events", n=args.requests, users=users, items=items)
                mine["event_ms"] += [s * 1000 for s in events]
                batches = arm.ask(op="batches", n=args.batches, users=users, items=items)
                mine["batch_event_us"] += [s * 1e6 for s in batches]
                rows = arm.ask(op="impressions", n=args.flushes, rows=args.rows)
                mine["impression_row_us"] += [s * 1e6 for s in rows]
            print(f"{db}: round {round_no + 1}/{args.rounds} done", flush=True)
    finally:
        for arm, _, _ in arms:
            arm.close()
    return {
        name: {
            "event_cpu_ms_mean": round(statistics.fmean(f["event_ms"]), 3),
            "event_cpu_ms_p50": round(statistics.median(f["event_ms"]), 3),
            "batch_cpu_us_per_event": round(statistics.fmean(f["batch_event_us"]), 2),
            "impression_cpu_us_per_row": round(statistics.fmean(f["impression_row_us"]), 2),
            "samples": {k: len(v) for k, v in f.items()},
        }
        for name, f in figures.items()
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--baseline", help="also measure the code of this git revision (old/new)")
    ap.add_argument("--db", nargs="+", choices=["sqlite", "postgresql"],
                    default=["sqlite", "postgresql"])  # fmt: skip
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--requests", type=int, default=150, help="one-event requests per round")
    ap.add_argument("--batches", type=int, default=10, help="100-event requests per round")
    ap.add_argument("--rows", type=int, default=3000, help="impression rows per flush")
    ap.add_argument("--flushes", type=int, default=2, help="impression flushes per round")
    ap.add_argument("--engagement", action="store_true",
                    help="keep engagement's after-write step in one-event requests")  # fmt: skip
    ap.add_argument("--source", type=Path, default=Path("/tmp/writes-community"),
                    help="SQLite community folder, copied per arm (never written)")  # fmt: skip
    ap.add_argument("--users", type=int, default=10_000, help="active users of --source")
    ap.add_argument("--pg-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/writes_bench")
    ap.add_argument("--pg-users", type=int, default=2000)
    ap.add_argument("--pg-items", type=int, default=20_000)
    ap.add_argument("--pg-events", type=int, default=100_000)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/writes-work"))
    ap.add_argument("--out", type=Path, default=RESULTS / "write_cost.json")
    ap.add_argument("--arm", help=argparse.SUPPRESS)
    ap.add_argument("--arm-data", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--arm-url", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.arm:
        arm_main(args.arm, args.arm_data, args.arm_url, args.engagement)
        return

    from _record import baseline_tree, run_record, write_report
    from rich.console import Console
    from rich.table import Table

    args.workdir.mkdir(parents=True, exist_ok=True)
    trees = [("new", REPO / "src")]
    if args.baseline:
        trees.insert(0, ("old", baseline_tree(args.baseline, args.workdir) / "src"))
    if "postgresql" in args.db:
        pg_community(args)
    cells = {db: run_db(db, trees, args) for db in args.db}

    table = Table(title="CPU per write (process time; mean over all rounds)")
    for column in ("db", "arm", "1-event POST ms", "p50 ms", "batch us/event", "impression us/row"):
        table.add_column(column, justify="left" if column in ("db", "arm") else "right")
    for db, arms in cells.items():
        for name, f in arms.items():
            table.add_row(db, name, f"{f['event_cpu_ms_mean']:.3f}", f"{f['event_cpu_ms_p50']:.3f}",
                          f"{f['batch_cpu_us_per_event']:.1f}",
                          f"{f['impression_cpu_us_per_row']:.1f}")  # fmt: skip
        if "old" in arms:
            old, new = arms["old"], arms["new"]
            table.add_row(db, "new/old", *(f"{new[k] / old[k]:.2f}" for k in (
                "event_cpu_ms_mean", "event_cpu_ms_p50", "batch_cpu_us_per_event",
                "impression_cpu_us_per_row")))  # fmt: skip
    Console(width=140).print(table)
    report = {"cells": cells, "run": run_record(vars(args))}
    Console().print(f"wrote {write_report(args.out, report)}")


if __name__ == "__main__":
    main()
