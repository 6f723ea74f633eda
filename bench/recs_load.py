"""Load test of ``GET /users/{id}/recommendations`` on a real ``agora serve`` (1 worker) with wrk,
this checkout beside a baseline revision, on bench/serve_load.py's community.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/recs_load.py --baseline main [--seconds 30]

Needs wrk and the SQLite community serve_load.py builds (``--source``, default
/tmp/agora-serve-load/sqlite: 100k items, 15k users, 1.05M events, ``trending`` and ``als``
trained). It is copied once into ``--workdir`` (SQLite's backup API; the trained models with it),
so the runs never write to serve_load's store. Then:

1. ``agora worker --once`` of this checkout makes every user's feed candidates ready (the
   records the new route answers from), as a platform's refresher keeps them;
2. the baseline (``git worktree`` of ``--baseline`` under ``--workdir``, its ``src`` on
   PYTHONPATH) is served on the copy: ``--warmup`` seconds of wrk, then ``--seconds`` measured;
3. this checkout is served the same way: a ``cold`` run right after the warm-up (most users not
   yet seen by the worker: their state and record are read on first use), then every active
   user asked once (``--warm-threads`` clients), then the ``warm`` run (the worker holds every
   user, as a long-running one does);
4. after each run of this checkout, ``--sample`` random users are asked once more and their
   ``X-Recommendations`` headers counted (``ready`` / ``computed``).

wrk runs bench/serve_load.lua in its ``recs`` mode (random users among the ``--users`` active
ones, ``n`` left at its default of 10). Prints one table and writes bench/results/recs_load.json:
per run ``rps`` (2xx answers/s), ``p50_ms``/``p99_ms`` (per-request latency the script
measures), ``errors`` (non-2xx, socket errors and timeouts), ``sources`` (the header sample),
and ``speedup`` (warm rps / baseline rps). The machine is shared: compare the runs of one report,
not figures from different times.
"""

from __future__ import annotations

import argparse
import random
import shutil
import sqlite3
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from _record import baseline_tree, environment, run_record, write_report
from quality import RESULTS
from rich.console import Console
from rich.table import Table
from serve_load import (
    KEY,
    WRK_MISSING,
    agora_env,
    figures,
    free_port,
    refresh_all,
    run_wrk,
    serve_args,
    start,
    stop,
    wrk_command,
)

console = Console()


def copy_community(source: Path, data: Path) -> None:
    """serve_load's SQLite community (store and trained models) into ``data``, once."""
    if (data / "agora.db").exists():
        return
    if not (source / "community.json").exists():
        raise SystemExit(f"no community in {source}: run bench/serve_load.py --db sqlite first")
    data.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(source / "agora.db") as src, sqlite3.connect(data / "agora.db") as dst:
        src.backup(dst)
    shutil.copytree(source / "models", data / "models")
    shutil.copy(source / "community.json", data / "community.json")


def client(url: str) -> httpx.Client:
    """A keep-alive client of the server at ``url`` with the bench key (thread-safe)."""
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {KEY}"}, timeout=120)


def recs(http: httpx.Client, user: str) -> httpx.Response:
    return http.get(f"/users/{user}/recommendations")


def sources(url: str, args: argparse.Namespace) -> dict[str, int]:
    """``X-Recommendations`` of ``args.sample`` random active users (``absent``: no header)."""
    picked = random.Random(0).sample(range(args.users), args.sample)
    with client(url) as http:
        found = Counter(recs(http, f"u{u}").headers.get("x-recommendations", "absent")
                        for u in picked)  # fmt: skip
    return dict(found)


def warm_all(url: str, args: argparse.Namespace) -> float:
    """Ask for every active user's recommendations once (seconds it took)."""
    t0 = time.perf_counter()
    with client(url) as http, ThreadPoolExecutor(args.warm_threads) as pool:
        codes = Counter(pool.map(lambda u: recs(http, f"u{u}").status_code, range(args.users)))
    if set(codes) != {200}:
        raise SystemExit(f"warming answered {dict(codes)}")
    return time.perf_counter() - t0


def run(figs: dict) -> dict:
    kind = figs["by_kind"].get("recommendations", {})
    return {
        "rps": figs["throughput_rps"],
        "p50_ms": kind.get("p50_ms"),
        "p99_ms": kind.get("p99_ms"),
        "errors": figs["errors"],
        "requests": figs["requests"],
    }


def serve(label: str, env: dict[str, str], args: argparse.Namespace) -> dict:
    """One server on the copy: warm-up, measured runs (cold and warm for this checkout)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "agora.cli.main", *serve_args(port, 1)]
    server = start(command, env, port, Path(args.workdir) / f"serve-{label}.log")
    out: dict = {}
    try:
        with client(url) as http:
            first = recs(http, "u0")
        if first.status_code != 200:
            raise SystemExit(f"{label}: {first.text[:500]}")
        run_wrk(url, "recs", args.warmup, args)
        if label == "baseline":
            out["baseline"] = run(figures(run_wrk(url, "recs", args.seconds, args)))
            return out
        out["cold"] = run(figures(run_wrk(url, "recs", args.seconds, args)))
        out["cold"]["sources"] = sources(url, args)
        seconds = warm_all(url, args)
        console.print(f"{label}: every active user asked once in {seconds:.0f} s")
        out["warm"] = run(figures(run_wrk(url, "recs", args.seconds, args)))
        out["warm"]["sources"] = sources(url, args)
        out["warm"]["warm_all_seconds"] = round(seconds, 1)
    finally:
        stop(server)
    return out


def table(runs: dict, args: argparse.Namespace) -> Table:
    out = Table(
        title=f"GET /users/{{id}}/recommendations, agora serve (1 worker, SQLite): wrk "
        f"{args.seconds} s, {args.threads} threads, {args.connections} connections"
    )
    for column in ("run", "rps", "p50 ms", "p99 ms", "errors", "X-Recommendations sample"):
        out.add_column(column, no_wrap=True)
    for name, r in runs.items():
        out.add_row(
            name,
            f"{r['rps']:.1f}",
            f"{r['p50_ms']:.1f}" if r["p50_ms"] is not None else "-",
            f"{r['p99_ms']:.1f}" if r["p99_ms"] is not None else "-",
            str(r["errors"]),
            " ".join(f"{k}={v}" for k, v in sorted(r.get("sources", {}).items())) or "-",
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", required=True, help="git revision served as the baseline")
    ap.add_argument("--seconds", type=int, default=30, help="each measured wrk run")
    ap.add_argument("--warmup", type=int, default=5, help="wrk load before measuring")
    ap.add_argument("--threads", type=int, default=2, help="wrk -t")
    ap.add_argument("-c", "--connections", type=int, default=32, help="wrk -c")
    ap.add_argument("--timeout", type=int, default=30, help="wrk --timeout (seconds)")
    ap.add_argument("--users", type=int, default=10_000, help="active users of the community")
    ap.add_argument("--items", type=int, default=100_000)
    ap.add_argument("--sample", type=int, default=200, help="users whose header is counted")
    ap.add_argument("--warm-threads", type=int, default=8, help="clients asking every user")
    ap.add_argument("--source", default="/tmp/agora-serve-load/sqlite")
    ap.add_argument("--workdir", default="/tmp/agora-recs-load")
    ap.add_argument("--out", default=str(RESULTS / "recs_load.json"))
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        print(WRK_MISSING, file=sys.stderr)
        sys.exit(2)
    work = Path(args.workdir)
    data = work / "sqlite"
    copy_community(Path(args.source), data)
    new_env = agora_env(data, None, 0.0)
    tree = baseline_tree(args.baseline, work)
    old_env = {**new_env, "PYTHONPATH": str(tree / "src")}
    t0 = time.perf_counter()
    refresh_all(new_env)
    console.print(f"every user's candidates made ready in {time.perf_counter() - t0:.0f} s")
    runs = {**serve("baseline", old_env, args), **serve("new", new_env, args)}
    base = runs["baseline"]["rps"]
    speedup = round(runs["warm"]["rps"] / base, 1) if base else None
    Console(width=max(console.width, 140)).print(table(runs, args))
    console.print(f"warm / baseline: {speedup}x")
    report = {
        "runs": runs,
        "speedup": speedup,
        "baseline_rev": args.baseline,
        "baseline_commit": tree.name.removeprefix("baseline-"),
        "run": run_record(
            {
                **vars(args),
                "server_command": ["agora", *serve_args("PORT", 1)],
                "wrk_command": wrk_command("URL", "recs", args.seconds, args, "RUN_ID", "EPOCH"),
                "server_env": environment(new_env),
            }
        ),
    }
    console.print(f"wrote {write_report(args.out, report)}")


if __name__ == "__main__":
    main()
