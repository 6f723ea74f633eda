"""``agora serve`` on a store at volume: the first feed page after start, and route latency
under wrk with the refresher off, in a thread of the server, and in a process of its own.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/serve_scale.py --pg-url URL --data-dir DIR \
        [--users 1000000] [--items 200000] [--baseline REV] [--seconds 20] [-c 8] [--rounds 1]

The store is one built and trained beforehand (docs/postgresql-at-volume.md: ``bench/
scale_community.py``, ``agora import --bulk``, ``agora train --models als,trending``, ``agora
engagement replay``); ``--data-dir`` holds its models. Users and items are named ``u<k>`` and
``i<k>`` (bench/serve_load.lua's requests). Every server is a real ``agora serve`` (one worker),
started with the feed's ready records, marks and wanted users emptied, so each starts where a
freshly trained store starts, and stopped with SIGTERM. Each round runs, one after the other,
so that they see the same machine:

* ``first_page``: for ``--baseline REV`` (checked out with ``git worktree add``) and this
  checkout, with the refresher off: the seconds until ``/health`` answers, then, after
  ``--settle`` seconds (the start-up's warm-up done), the first feed pages of three users who
  have no ready record, one after the other (the first pays what the server had not built);
* ``route``: this checkout with ``refresh_in_serve`` off, with the refresher in a thread of
  the server (``refresher_process`` false: what ``agora serve`` did before), and in a child
  process (the default): after ``--settle`` seconds (the refresher in its first full pass over
  every user), wrk on ``GET /users/{u}/recommendations`` for ``--seconds``, then on
  bench/serve_load.lua's mix of feed pages and event writes (``--modes``: ``recs``, ``mixed``;
  the mix's writes want engagement replayed on the store first); the CPU seconds the server process
  and the refresher process used during each, and their resident memory after them. Every
  other round runs the three in the reverse order.

* ``statistics``: this checkout with the refresher off, one client: ``--requests``
  recommendations, then as many first feed pages, of random users, one at a time, on the
  store as the bulk import leaves it now (``event_ids``, ``users``, ``items`` and
  ``social_edges`` analysed) and as it left them before (never analysed: their statistics
  deleted; the step analyses them again when it ends).

The load average (1 minute) is recorded before and after each measure. Prints a table and
writes ``--out`` (bench/results/serve_scale.json): ``first_page``, ``route`` and ``statistics``
rows.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import httpx  # noqa: E402
import numpy as np  # noqa: E402
import serve_load  # noqa: E402
from _record import REPO, baseline_tree, environment, run_record, write_report  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402

RESULTS = REPO / "bench" / "results"
#: The feed's tables a refresher fills: emptied before each server, so each starts alike.
FEED_STATE = ("feed_candidates", "feed_refresh_marks", "feed_refresh_wanted")
#: How the refresher runs in each ``route`` row (``AGORA_FEED``).
REFRESHERS = {
    "off": {"refresh_in_serve": False},
    "thread": {"refresh_in_serve": True, "refresher_process": False},
    "process": {"refresh_in_serve": True, "refresher_process": True},
}
#: The tables ``agora import --bulk`` analyses besides ``events`` (agora.ingest.bulk.ANALYZED).
STATISTICS_TABLES = ("event_ids", "users", "items", "social_edges")
#: The routes the ``statistics`` step asks for one user at a time.
ONE_BY_ONE = {
    "recommendations": "/users/{user}/recommendations",
    "feed": "/users/{user}/feed?n=20",
}
#: wrk's modes (bench/serve_load.lua) and their rows' names.
MODES = {"recs": "recommendations", "mixed": "mixed"}
STEPS = ["first_page", "route", "statistics"]
console = Console()


def load() -> float:
    return round(os.getloadavg()[0], 2)


def server_env(tree: Path, args: argparse.Namespace, feed: dict[str, Any]) -> dict[str, str]:
    """The environment of an ``agora serve`` of ``tree`` on the bench's store."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGORA_")}
    env.update(
        PYTHONPATH=str(tree / "src"),
        AGORA_DATABASE_URL=args.pg_url,
        AGORA_DATA_DIR=str(args.data_dir),
        AGORA_API_KEY=serve_load.KEY,
        AGORA_BACKGROUND_SECONDS="0",
        AGORA_FEED=json.dumps(feed),
        OPENBLAS_NUM_THREADS="1",
    )
    return env


def empty_feed_state(url: str) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {', '.join(FEED_STATE)}"))
    engine.dispose()


def start(tree: Path, args: argparse.Namespace, feed: dict[str, Any], log: Path) -> tuple:
    """An ``agora serve`` of ``tree`` answering /health: (process, its URL, seconds it took)."""
    empty_feed_state(args.pg_url)
    port = serve_load.free_port()
    command = [sys.executable, "-m", "agora.cli.main", "serve", "--host", "127.0.0.1", "--port",
               str(port)]  # fmt: skip
    t0 = time.perf_counter()
    proc = serve_load.start(command, server_env(tree, args, feed), port, log)
    return proc, f"http://127.0.0.1:{port}", round(time.perf_counter() - t0, 2)


def page_seconds(url: str, user: str) -> float:
    t0 = time.perf_counter()
    serve_load.feed_page(url, user)
    return round(time.perf_counter() - t0, 3)


def first_page(tree: Path, code: str, args: argparse.Namespace, rng: random.Random) -> dict:
    """One ``first_page`` row (see the module docstring)."""
    log = args.workdir / f"first-{code.split()[0]}.log"
    load_before = load()
    proc, url, up = start(tree, args, REFRESHERS["off"], log)
    try:
        time.sleep(args.settle)
        users = [f"u{rng.randrange(args.users)}" for _ in range(3)]
        pages = [page_seconds(url, user) for user in users]
    finally:
        serve_load.stop(proc)
    warmed = [line for line in log.read_text().splitlines() if "feed warmed" in line]
    return {
        "code": code,
        "health_s": up,
        "settle_s": args.settle,
        "pages_s": pages,
        "warm_up": json.loads(warmed[0])["message"] if warmed else None,
        "load_before": load_before,
        "load_after": load(),
    }


def tree_cpu(pid: int) -> tuple[float, float]:
    """CPU seconds so far of the server process alone and of its children (the refresher)."""
    total = serve_load.cpu_seconds(pid)
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return own, total - own


def rss_mib(pid: int) -> dict[str, float]:
    """Resident memory (MiB) of the server process and of its children (the refresher)."""

    def of(p: int) -> float:
        for line in Path(f"/proc/{p}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    children = sum(of(p) for p in serve_load.process_tree(pid) if p != pid)
    return {"server": round(of(pid)), "refresher": round(children)}


def route(refresher: str, args: argparse.Namespace) -> dict:
    """One ``route`` row (see the module docstring)."""
    log = args.workdir / f"route-{refresher}.log"
    proc, url, _ = start(REPO, args, REFRESHERS[refresher], log)
    wrk_args = argparse.Namespace(
        threads=2, connections=args.connections, timeout=30, users=args.users, items=args.items
    )
    row: dict[str, Any] = {"refresher": refresher}
    try:
        time.sleep(args.settle)
        for mode in args.modes:
            name = MODES[mode]
            row[f"{name}_load_before"] = load()
            cpu_before = tree_cpu(proc.pid)
            result = serve_load.figures(serve_load.run_wrk(url, mode, args.seconds, wrk_args))
            cpu_after = tree_cpu(proc.pid)
            row[name] = result
            row[f"{name}_cpu_s"] = {
                "server": round(cpu_after[0] - cpu_before[0], 1),
                "refresher": round(cpu_after[1] - cpu_before[1], 1),
            }
            row[f"{name}_load_after"] = load()
        row["rss_mib"] = rss_mib(proc.pid)
    finally:
        serve_load.stop(proc)
    return row


def forget_statistics(url: str) -> None:
    """The planner's statistics of the tables a bulk import fills besides ``events``, as the
    import left them before it analysed them (never analysed; this machine's PostgreSQL runs
    no autovacuum)."""
    engine = create_engine(url)
    with engine.begin() as conn:
        for table in STATISTICS_TABLES:
            conn.execute(text(f"DELETE FROM pg_statistic WHERE starelid = '{table}'::regclass"))
            conn.execute(
                text(f"UPDATE pg_class SET reltuples = -1 WHERE oid = '{table}'::regclass")
            )
    engine.dispose()


def analyse(url: str) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text(f"ANALYZE {', '.join(STATISTICS_TABLES)}"))
    engine.dispose()


def one_by_one(url: str, route: str, users: list[str]) -> dict[str, Any]:
    """``route`` of each user in turn (one client): mean and percentiles, milliseconds."""
    took = []
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {serve_load.KEY}"}) as http:
        for user in users:
            t0 = time.perf_counter()
            answer = http.get(route.format(user=user), timeout=300)
            took.append((time.perf_counter() - t0) * 1000)
            if answer.status_code != 200:
                raise SystemExit(f"{route} of {user}: {answer.status_code} {answer.text[:300]}")
    ms = np.array(took)
    return {
        "count": len(ms),
        "mean_ms": round(float(ms.mean()), 1),
        **{f"p{q}_ms": round(float(np.percentile(ms, q)), 1) for q in (50, 90, 99)},
    }


def statistics(analysed: bool, args: argparse.Namespace, rng: random.Random) -> dict:
    """One ``statistics`` row: this checkout, refresher off, one client, the tables analysed
    or not (see the module docstring)."""
    (analyse if analysed else forget_statistics)(args.pg_url)
    log = args.workdir / f"statistics-{analysed}.log"
    load_before = load()
    proc, url, _ = start(REPO, args, REFRESHERS["off"], log)
    row: dict[str, Any] = {"analysed": analysed, "load_before": load_before}
    try:
        time.sleep(args.settle)
        for name, route in ONE_BY_ONE.items():
            users = [f"u{rng.randrange(args.users)}" for _ in range(args.requests)]
            row[name] = one_by_one(url, route, users)
    finally:
        serve_load.stop(proc)
        analyse(args.pg_url)  # the store as the import leaves it now
    row["load_after"] = load()
    return row


def tables(report: dict) -> list[Table]:
    first = Table(title="First feed page after start (refresher off)")
    for column in ("code", "round", "/health s", "settle s", "first pages s", "load"):
        first.add_column(column)
    for row in report["first_page"]:
        first.add_row(
            row["code"], str(row["round"]), f"{row['health_s']:.1f}", f"{row['settle_s']:.0f}",
            " / ".join(f"{s:.2f}" for s in row["pages_s"]),
            f"{row['load_before']:.1f} / {row['load_after']:.1f}",
        )  # fmt: skip
    routes = Table(title="Route latency under wrk, by where the refresher runs")
    for column in ("refresher", "round", "route", "requests/s", "p50 ms", "p99 ms", "errors",
                   "CPU s server / refresher", "load"):  # fmt: skip
        routes.add_column(column)
    for row in report["route"]:
        for name in (n for n in MODES.values() if n in row):
            figs, cpu = row[name], row[f"{name}_cpu_s"]
            routes.add_row(
                row["refresher"], str(row["round"]), name, f"{figs['throughput_rps']:.1f}",
                f"{figs['p50_ms']:.0f}", f"{figs['p99_ms']:.0f}", str(figs["errors"]),
                f"{cpu['server']:.1f} / {cpu['refresher']:.1f}",
                f"{row[f'{name}_load_before']:.1f} / {row[f'{name}_load_after']:.1f}",
            )  # fmt: skip
    stats = Table(title="One client, refresher off: the bulk-filled tables analysed or not")
    for column in ("analysed", "round", "route", "mean ms", "p50 ms", "p90 ms", "p99 ms", "load"):
        stats.add_column(column)
    for row in report["statistics"]:
        for name in ONE_BY_ONE:
            figs = row[name]
            stats.add_row(
                "yes" if row["analysed"] else "no", str(row["round"]), name,
                *(f"{figs[k]:.0f}" for k in ("mean_ms", "p50_ms", "p90_ms", "p99_ms")),
                f"{row['load_before']:.1f} / {row['load_after']:.1f}",
            )  # fmt: skip
    return [first, routes, stats]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pg-url", required=True)
    ap.add_argument("--data-dir", type=Path, required=True, help="the store's AGORA_DATA_DIR")
    ap.add_argument("--users", type=int, default=1_000_000)
    ap.add_argument("--items", type=int, default=200_000)
    ap.add_argument("--baseline", help="a git revision whose first page is measured too")
    ap.add_argument("--seconds", type=int, default=20, help="each wrk run")
    ap.add_argument("-c", "--connections", type=int, default=8, help="wrk -c")
    ap.add_argument("--settle", type=float, default=60.0, help="seconds after /health answers")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--modes", nargs="+", choices=list(MODES), default=list(MODES))
    ap.add_argument("--steps", nargs="+", choices=STEPS, default=STEPS)
    ap.add_argument("--requests", type=int, default=100, help="per route, statistics step")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/agora-serve-scale"))
    ap.add_argument("--out", type=Path, default=RESULTS / "serve_scale.json")
    args = ap.parse_args()
    if not shutil.which("wrk"):
        console.print(serve_load.WRK_MISSING)
        sys.exit(2)
    args.workdir.mkdir(parents=True, exist_ok=True)
    trees = {"this checkout": REPO}
    if args.baseline:
        trees = {f"baseline {args.baseline}": baseline_tree(args.baseline, args.workdir), **trees}
    rng = random.Random(0)
    report: dict[str, Any] = {step: [] for step in STEPS}
    for round_no in range(1, args.rounds + 1):
        if "first_page" in args.steps:
            for code, tree in trees.items():
                row = {**first_page(tree, code, args, rng), "round": round_no}
                report["first_page"].append(row)
                console.print(row)
        if "route" in args.steps:  # every other round in the reverse order: drift cancels
            for refresher in list(REFRESHERS)[:: 1 if round_no % 2 else -1]:
                row = {**route(refresher, args), "round": round_no}
                report["route"].append(row)
                console.print({k: v for k, v in row.items() if not isinstance(v, dict)})
        if "statistics" in args.steps:
            for analysed in (False, True):
                row = {**statistics(analysed, args, rng), "round": round_no}
                report["statistics"].append(row)
                console.print(row)
    for table in tables(report):
        console.print(table)
    settings = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    report["run"] = run_record(settings=settings)
    report["server_env"] = environment(server_env(REPO, args, {}))
    write_report(args.out, report)
    console.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
