"""What Agora's serving stack gives before any of Agora's work: the floor of each piece a route
is made of, under wrk, beside two of ``agora serve``'s own routes.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/stack_floor.py [--seconds 8] \
        [--workers 1 2] [--db sqlite postgresql] [--connections 1 32]

Needs wrk (Debian package ``wrk``; without it the script says so and exits 2) and the bench
community of bench/serve_load.py (run it first; its stores are used read-only, but for
``floor_writes``, a table of this script's, dropped at the end). For each database and worker
count it starts bench/_floor_app.py on uvicorn with ``agora serve``'s loop and HTTP settings
(see its docstring: a constant answer from an async route and from a thread-pool route, one
Core read, two ORM reads, one committed insert), then ``agora serve`` itself (refresher off,
background jobs off) for ``GET /health`` and ``GET /users/u5/feed/settings`` (a thread-pool
route reading one user's settings), and drives each path with wrk at each ``--connections``
(``-t`` is 2, or 1 for one connection). Per run: 2xx answers per second, wrk's p50 and p99
(ms), errors (non-2xx, socket errors, timeouts) and the server's CPU per answer (ms, every
process of the server). Prints one table and writes bench/results/stack_floor.json.

Why: bench/serve_load.py's target, 1,000 mixed requests/s on 2 cores, is a budget of about
2 ms of the machine per request, wrk's share included; this bench shows how much of it the
stack's parts take by themselves.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from _record import run_record, write_report
from rich.console import Console
from rich.table import Table
from serve_load import (
    BENCH,
    KEY,
    RESULTS,
    WRK_MISSING,
    agora_env,
    free_port,
    serve_args,
    start,
    stop,
)
from sqlalchemy import create_engine, text

console = Console()
FLOOR_PATHS = [("GET", "/async"), ("GET", "/sync"), ("GET", "/core"), ("GET", "/orm"),
               ("POST", "/write")]  # fmt: skip
AGORA_PATHS = [("GET", "/health"), ("GET", "/users/u5/feed/settings")]
LATENCY = re.compile(r"^\s+(50|99)(?:\.000)?%\s+([0-9.]+)(us|ms|s)\s*$", re.MULTILINE)
UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def tree_cpu_seconds(pid: int) -> float:
    """User and system CPU of ``pid`` and every process below it, in seconds."""
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / 100.0
            for task in Path(f"/proc/{p}/task").iterdir():
                todo.extend(int(c) for c in (task / "children").read_text().split())
        except (OSError, IndexError):
            continue
    return total


def wrk(url: str, method: str, connections: int, seconds: int, server: int) -> dict:
    """One wrk run on ``url``: 2xx answers/s, p50/p99 ms, errors, server CPU per answer."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(f'wrk.method = "{method}"\n')
    command = ["wrk", "-t", str(min(2, connections)), "-c", str(connections), "-d", f"{seconds}s",
               "--timeout", "10s", "--latency", "-H", f"Authorization: Bearer {KEY}",
               "-s", script.name, url]  # fmt: skip
    cpu = tree_cpu_seconds(server)
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    cpu = tree_cpu_seconds(server) - cpu
    Path(script.name).unlink()
    answers = int(re.search(r"(\d+) requests in", out).group(1))
    took = re.search(r"requests in ([0-9.]+)(ms|s|m)", out)
    duration = float(took.group(1)) * {"ms": 0.001, "s": 1.0, "m": 60.0}[took.group(2)]
    failed = int(m.group(1)) if (m := re.search(r"Non-2xx or 3xx responses: (\d+)", out)) else 0
    socket = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = failed + (sum(int(g) for g in socket.groups()) if socket else 0)
    latency = {q: float(v) * UNITS[u] for q, v, u in LATENCY.findall(out)}
    ok = answers - failed
    return {
        "rps": round(ok / duration, 1),
        "p50_ms": round(latency.get("50", float("nan")), 2),
        "p99_ms": round(latency.get("99", float("nan")), 2),
        "errors": errors,
        "cpu_ms_per_answer": round(cpu * 1000 / ok, 3) if ok else None,
    }


def measure(
    name: str, command: Callable[[int], list[str]], env: dict[str, str],
    paths: list[tuple[str, str]], args: argparse.Namespace, log: Path,
) -> list[dict]:  # fmt: skip
    """Start ``command(port)`` on a free port, run wrk on each path at each connection count."""
    port = free_port()
    server = start(command(port), env, port, log)
    rows = []
    try:
        for method, path in paths:
            for connections in args.connections:
                url = f"http://127.0.0.1:{port}{path}"
                wrk(url, method, connections, 2, server.pid)  # warm-up
                row = {"server": name, "route": f"{method} {path}", "connections": connections}
                rows.append({**row, **wrk(url, method, connections, args.seconds, server.pid)})
                console.print(rows[-1])
    finally:
        stop(server)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=int, default=8, help="each measured wrk run")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--db", nargs="+", choices=["sqlite", "postgresql"],
                    default=["sqlite", "postgresql"])  # fmt: skip
    ap.add_argument("--connections", type=int, nargs="+", default=[1, 32], help="wrk -c")
    ap.add_argument("--pg-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/agora_bench")
    ap.add_argument("--workdir", default="/tmp/agora-serve-load")
    ap.add_argument("--out", default=str(RESULTS / "stack_floor.json"))
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        console.print(WRK_MISSING)
        sys.exit(2)
    cells = []
    for db in args.db:
        data = Path(args.workdir) / db
        if not (data / "community.json").exists():
            raise SystemExit(f"no bench community in {data}: run bench/serve_load.py --db {db}")
        url = args.pg_url if db == "postgresql" else f"sqlite:///{data / 'agora.db'}"
        env = agora_env(data, url if db == "postgresql" else None, 0)
        env["AGORA_FEED"] = '{"refresh_in_serve": false}'
        for workers in args.workers:

            def floor(port: int, workers: int = workers) -> list[str]:
                return [sys.executable, "-m", "uvicorn", "_floor_app:app",
                        "--app-dir", str(BENCH), "--host", "127.0.0.1", "--port", str(port),
                        "--workers", str(workers), "--loop", "auto", "--http", "auto",
                        "--no-access-log", "--log-level", "warning"]  # fmt: skip

            def agora(port: int, workers: int = workers) -> list[str]:
                return [sys.executable, "-m", "agora.cli.main", *serve_args(port, workers)]

            floor_env = {**env, "FLOOR_DATABASE_URL": url}
            for name, command, run_env, paths in (
                ("floor", floor, floor_env, FLOOR_PATHS),
                ("agora serve", agora, env, AGORA_PATHS),
            ):
                log = (
                    Path(args.workdir) / f"stack-floor-{name.replace(' ', '-')}-{db}-{workers}w.log"
                )
                for row in measure(name, command, run_env, paths, args, log):
                    cells.append({"db": db, "workers": workers, **row})
        engine = create_engine(url)
        with engine.begin() as conn:
            conn.execute(text("DROP TABLE IF EXISTS floor_writes"))
        engine.dispose()
    out = Table(title="The stack's floors under wrk (rps: 2xx answers/s; ms: wrk p50/p99)")
    for column in ("db", "workers", "server", "route", "-c", "rps", "p50/p99 ms", "errors",
                   "CPU ms/answer"):  # fmt: skip
        out.add_column(column, no_wrap=True)
    for c in cells:
        out.add_row(c["db"], str(c["workers"]), c["server"], c["route"], str(c["connections"]),
                    f"{c['rps']:,.0f}", f"{c['p50_ms']}/{c['p99_ms']}", str(c["errors"]),
                    str(c["cpu_ms_per_answer"]))  # fmt: skip
    console.print(out)
    report = {"cells": cells, "run": run_record(vars(args))}
    console.print(f"wrote {write_report(args.out, report)}")


if __name__ == "__main__":
    main()
