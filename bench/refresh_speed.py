"""How fast the feed refresher keeps candidates current on the serve_load community (100k items,
15k users, 1.05M events): a full refresh of everybody, and a dirty user after a new event.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/refresh_speed.py [--baseline REV] \
        [--db sqlite postgresql] [--events 20] [--redis-url redis://127.0.0.1:6379/13]

Needs the stores bench/serve_load.py builds and caches under ``--source`` (run it once first);
it never writes to them. For each source tree (this checkout, and with ``--baseline REV`` that
revision, checked out with ``git worktree add`` under ``--workdir`` and run by subprocess with
``PYTHONPATH`` pointing at it, in the same run so both see the same machine load):

1. **full**: ``Refresher.refresh_all`` over every active user, timed twice in one process:
   the first pass (as ``agora worker --once``: it also reads the whole catalogue and builds
   the item index) and a second (a running refresher's periodic full refresh); records into
   Redis (``--redis-url``; the namespace is cleared first). SQLite: on a copy of the bench
   file (made once per run with SQLite's backup API); PostgreSQL (when serve_load built it):
   the bench database itself, read only (the records go to Redis under a namespace of this
   bench).
2. **dirty** (SQLite copy): ``agora serve`` of that tree with its refresher (same Redis), one
   warm-up event, then ``--events`` likes of random active users posted one at a time over
   HTTP; per event, the time until the user's record in Redis counts one event more.
3. **dirty during full** (SQLite copy): the same while the served refresher runs a full
   refresh (its ``full`` mark deleted first; events posted over its first ``--during``
   seconds).

Prints a table and writes bench/results/refresh_speed.json: per tree and database
``full_seconds`` (first pass), ``full_warm_seconds`` (second), ``users``, ``record_bytes``
(mean), and per dirty phase ``p50_s``, ``max_s``
and every latency.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import httpx  # noqa: E402
import numpy as np  # noqa: E402
import redis  # noqa: E402
from _record import REPO, baseline_tree, run_record  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402
from serve_load import KEY, MODELS, agora_env, free_port, start, stop  # noqa: E402

RESULTS = REPO / "bench" / "results"
BENCH_NAMESPACE = "refresh-speed"
COLUMNS = ("store / tree", "users", "full s", "again s", "ms/user again", "record KB",
           "dirty p50 s", "dirty max s", "in full p50 s", "in full max s")  # fmt: skip
console = Console(width=150)


# -- one tree, in its own process (PYTHONPATH = that tree's src) ------------------------------
def run_full(database_url: str, models_dir: str, redis_url: str, namespace: str | None) -> dict:
    """Time ``refresh_all`` of the tree on ``PYTHONPATH`` (records into Redis)."""
    from agora.config import get_settings
    from agora.db.engine import make_engine, session_factory
    from agora.feed.candidates import Candidates
    from agora.feed.refresher import Refresher
    from agora.feed.store import RedisCandidates
    from agora.feed.store import namespace as store_namespace
    from agora.serving.service import ModelStore

    settings = get_settings()
    sessions = session_factory(make_engine(database_url))
    ns = namespace or store_namespace(sessions)
    store = RedisCandidates(redis_url, ns)
    keys = list(store.redis.scan_iter(f"{store.prefix}*", count=10_000))
    for start_at in range(0, len(keys), 10_000):
        store.redis.delete(*keys[start_at : start_at + 10_000])
    models = ModelStore(Path(models_dir))
    models.reload()
    refresher = Refresher(
        sessions, models, store, settings.feed, settings.event_weights,
        full_refresh_seconds=settings.feed.full_refresh_seconds,
    )  # fmt: skip
    t0 = time.perf_counter()
    users = refresher.refresh_all()
    seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    refresher.refresh_all()  # again: the catalogue and item index are in memory now
    warm = time.perf_counter() - t0
    keys = list(store.redis.scan_iter(f"{store.prefix}cand:*", count=10_000))
    pipe = store.redis.pipeline(transaction=False)
    for key in keys:
        pipe.strlen(key)
    sizes = pipe.execute()
    sample = store.redis.get(keys[len(keys) // 2]) if keys else None
    record = Candidates.from_bytes(sample) if sample else None
    return {
        "full_seconds": seconds,
        "full_warm_seconds": warm,
        "users": users,
        "records": len(keys),
        "record_bytes": float(np.mean(sizes)) if sizes else 0.0,
        "primary_length": len(record.primary[0]) if record else 0,
        "namespace": ns,
    }


# -- the parent: trees, stores, servers ---------------------------------------------------------
def copy_sqlite(source: Path, target: Path) -> None:
    """The bench SQLite store and its models, copied (SQLite's backup API: a consistent copy
    even while serve_load writes to it)."""
    target.mkdir(parents=True, exist_ok=True)
    (target / "agora.db").unlink(missing_ok=True)
    src = sqlite3.connect(f"file:{source / 'agora.db'}?mode=ro", uri=True)
    dst = sqlite3.connect(target / "agora.db")
    src.backup(dst)
    dst.close()
    src.close()
    subprocess.run(["rm", "-rf", str(target / "models")], check=True)
    subprocess.run(["cp", "-r", str(source / "models"), str(target / "models")], check=True)


def tree_env(tree: Path, data_dir: Path, database_url: str | None, redis_url: str) -> dict:
    env = agora_env(data_dir, database_url, 0.0)
    env["PYTHONPATH"] = str(tree / "src")
    env["AGORA_REDIS_URL"] = redis_url
    return env


def full(tree: Path, env: dict, database_url: str, models_dir: Path, args, ns: str | None) -> dict:
    command = [sys.executable, str(Path(__file__).resolve()), "--run-full", database_url,
               str(models_dir), args.redis_url, ns or ""]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"refresh in {tree} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def record_events(client: redis.Redis, key: str) -> int | None:
    raw = client.get(key)
    return json.loads(raw.partition(b"\n")[0])["events"] if raw is not None else None


def post_and_wait(base: str, client: redis.Redis, prefix: str, user: tuple[int, str], item: str,
                  n: int, timeout: float = 120.0) -> float:  # fmt: skip
    """Post a like of ``user`` on ``item``; seconds until their record counts it."""
    pk, external = user
    key = f"{prefix}cand:{pk}"
    before = record_events(client, key)
    event = {"event_id": f"refresh-speed-{time.time_ns()}-{n}", "user_id": external,
             "item_id": item, "type": "like"}  # fmt: skip
    t0 = time.perf_counter()
    answer = httpx.post(f"{base}/events", json=event, headers={"Authorization": f"Bearer {KEY}"})
    answer.raise_for_status()
    while time.perf_counter() - t0 < timeout:
        now = record_events(client, key)
        if now is not None and now != before:
            return time.perf_counter() - t0
        time.sleep(0.005)
    return float("inf")


def dirty(tree: Path, env: dict, data_dir: Path, ns: str, args) -> dict:
    """Dirty-user latency against ``agora serve`` of ``tree`` (idle, then during a full one)."""
    con = sqlite3.connect(f"file:{data_dir / 'agora.db'}?mode=ro", uri=True)
    users = con.execute(
        "SELECT DISTINCT u.id, u.external_id FROM users u JOIN events e ON e.user_id = u.id"
    ).fetchall()
    items = [r[0] for r in con.execute("SELECT external_id FROM items ORDER BY id LIMIT 20000")]
    con.close()
    rng = random.Random(0)
    client = redis.Redis.from_url(args.redis_url)
    prefix = f"agora:feed:{ns}:"
    port = free_port()
    command = [sys.executable, "-m", "agora.cli.main", "serve", "--host", "127.0.0.1",
               "--port", str(port)]  # fmt: skip
    log = args.workdir / f"serve-{tree.name}.log"
    server = start(command, env, port, log)
    base = f"http://127.0.0.1:{port}"
    try:
        post_and_wait(base, client, prefix, rng.choice(users), rng.choice(items), -1)  # warm-up
        idle = [
            post_and_wait(base, client, prefix, rng.choice(users), rng.choice(items), n)
            for n in range(args.events)
        ]
        client.delete(f"{prefix}mark:full")  # the next round is a full refresh
        time.sleep(1.0)
        during, t0 = [], time.perf_counter()
        while time.perf_counter() - t0 < args.during:
            during.append(
                post_and_wait(base, client, prefix, rng.choice(users), rng.choice(items), 1000)
            )
            time.sleep(1.0)
    finally:
        stop(server)
    return {"idle": latencies(idle), "during_full": latencies(during)}


def latencies(values: list[float]) -> dict:
    return {
        "p50_s": float(np.median(values)) if values else None,
        "max_s": max(values) if values else None,
        "seconds": values,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description="Feed refresher: full refresh and dirty latency.")
    ap.add_argument("--baseline", help="a git revision to run beside this checkout")
    ap.add_argument("--db", nargs="+", default=["sqlite", "postgresql"])
    ap.add_argument("--events", type=int, default=20)
    ap.add_argument("--during", type=float, default=20.0, help="seconds of events in a full one")
    ap.add_argument("--source", type=Path, default=Path("/tmp/agora-serve-load"))
    ap.add_argument("--pg-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/agora_bench")
    ap.add_argument("--redis-url", default="redis://127.0.0.1:6379/13")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/agora-refresh-speed"))
    ap.add_argument("--out", type=Path, default=RESULTS / "refresh_speed.json")
    ap.add_argument("--run-full", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.run_full:
        url, models_dir, redis_url, ns = args.run_full
        print(json.dumps(run_full(url, models_dir, redis_url, ns or None)))
        return
    args.workdir.mkdir(parents=True, exist_ok=True)
    trees = {"current": REPO}
    if args.baseline:
        trees = {f"baseline {args.baseline}": baseline_tree(args.baseline, args.workdir), **trees}
    results: dict[str, dict] = {}
    for db in args.db:
        source = args.source / db
        if not (source / "community.json").exists():
            console.print(f"{db}: no bench store under {source} (run bench/serve_load.py); skipped")
            continue
        if db == "sqlite":
            data_dir = args.workdir / "sqlite"
            copy_sqlite(source, data_dir)
            url, ns = f"sqlite:///{(data_dir / 'agora.db').resolve()}", None
        else:
            data_dir, url, ns = source, args.pg_url, BENCH_NAMESPACE
        for name, tree in trees.items():
            env = tree_env(tree, data_dir, url if db == "postgresql" else None, args.redis_url)
            cell = full(tree, env, url, data_dir / "models", args, ns)
            console.print(f"{db} {name}: full refresh {cell['full_seconds']:.1f} s")
            if db == "sqlite":
                cell.update(dirty(tree, env, data_dir, cell["namespace"], args))
            results[f"{db} {name}"] = cell
    console.print(table(results))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    settings = {"models": MODELS, "events": args.events, "during": args.during, "trees": {
        name: str(tree) for name, tree in trees.items()}}  # fmt: skip
    args.out.write_text(json.dumps({"run": run_record(settings), "cells": results}, indent=2))
    console.print(f"wrote {args.out}")


def table(results: dict[str, dict]) -> Table:
    out = Table(title="feed refresher on the serve_load community", min_width=110)
    for column in COLUMNS:
        out.add_column(column, justify="left" if column == "store / tree" else "right")

    def s(value: float | None) -> str:
        return "-" if value is None else f"{value:.2f}"

    for name, cell in results.items():
        idle, during = cell.get("idle", {}), cell.get("during_full", {})
        out.add_row(
            name, f"{cell['users']:,}", f"{cell['full_seconds']:.1f}",
            f"{cell['full_warm_seconds']:.1f}",
            f"{1000 * cell['full_warm_seconds'] / max(cell['users'], 1):.2f}",
            f"{cell['record_bytes'] / 1024:.1f}", s(idle.get("p50_s")), s(idle.get("max_s")),
            s(during.get("p50_s")), s(during.get("max_s")),
        )  # fmt: skip
    return out


if __name__ == "__main__":
    main()
