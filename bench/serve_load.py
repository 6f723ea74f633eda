"""Load test of a real ``agora serve`` with wrk: feed pages mixed with event writes, 100k items,
15k users, 1.05M events, beside the ceiling of the same serving stack.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/serve_load.py [--seconds 30] \
        [--workers 1 2] [--db sqlite postgresql] [--threads 2] [-c 32]

Needs wrk (Debian package ``wrk``; without it the script says so and exits 2). For each cell of
``--workers`` x ``--db`` it:

1. uses the community of that database, built once and cached under ``--workdir`` with a
   marker naming its sizes: a SQLite file, or the PostgreSQL database of ``--pg-url`` (dropped
   and rebuilt when the marker or its events are missing; it never touches another database).
   After the bulk insert, ``agora train`` (``trending`` and ``als``) and ``agora engagement
   replay`` bring it to a live platform's state (see ``PREPARE``);
2. starts ``agora serve --workers N`` of this checkout on a free 127.0.0.1 port, warms it with
   a first page per worker and ``--warmup`` seconds of load, then runs wrk (``--threads``,
   ``-c``, ``--seconds``) with bench/serve_load.lua: 90% feed pages
   (``GET /users/{u}/feed?n=20``, random users; half of them, when the wrk thread holds a
   cursor from an earlier answer, that session's next page) and 10% single events
   (``POST /events``); then the same wrk on ``GET /users/{u}/recommendations`` alone; then
   reads the VmRSS of each worker process and stops the server. Before the server starts,
   ``agora prune-impressions --older-than-days 0`` removes what earlier runs added to the
   impressions table (the store as built has none) and ``agora worker --once`` makes every
   user's feed candidates ready (timed); during the runs a
   separate ``agora worker`` keeps them ready (``--refresher worker``, the default: the servers
   run with ``refresh_in_serve`` false) or the servers' own refresher threads do
   (``--refresher serve``, what ``agora serve`` does alone); ``--refresher-shards N`` splits
   the users between N refresher processes, for both;
3. starts the stack's ceiling, bench/_ceiling_app.py (FastAPI answering a real feed page fetched
   from that server, prebuilt), on uvicorn with the same worker count and the same event loop
   and HTTP implementation (uvicorn's ``auto``, as ``agora serve``), and runs the same wrk mix.

The Lua script times each kind itself (the request id carries kind and send time, echoed by the
server) and reads first pages' ``Server-Timing`` header (the server's own time). Prints one
table (rows: workers x database) and writes bench/results/serve_load.json, a cell per row with
``throughput_rps`` (2xx answers/s), ``p50_ms``/``p95_ms``/``p99_ms`` (wrk's, every kind),
``errors`` (non-2xx answers, socket errors and timeouts), ``ceiling_rps``, ``ratio``
(throughput / ceiling), ``by_kind`` (first_page, next_page, event: rps, percentiles, errors),
``first_page_server_p50_ms``, ``recommendations`` (rps, percentiles, errors),
``refresh_all_seconds`` (``agora worker --once`` before the cell: every user's candidates made
ready), ``rss_mb`` (one figure per worker) and ``cpu``: the cores the server's processes and
the separate refresher's used during the measured mix, per request and per event written
(``/proc``'s user and system time of each process tree). Server logs go to ``--workdir``.
Events the runs post stay in the cached stores (a few thousand a run, beside 1.05M).

The servers run with ``AGORA_BACKGROUND_SECONDS=--background-seconds`` (0 by default: the
periodic background jobs run only when a request wakes them; engagement still counts each
posted event after its write). The bulk-inserted community has 100k posts whose sentiment was
never scored, a backlog a live platform never has (it scores posts as they arrive); at the
default 15 s every worker would spend 20 s of each minute scoring it (8 posts/s here).

How the community is scaled from ml1m-general's train split (6,033 users x 3,123 items):
* item popularity: each of the 100,000 items draws its weight from the empirical ML-1M item
  popularity distribution (with multiplicative jitter), so the long tail keeps its shape;
* user activity: each of the 10,000 active users draws an event count from the empirical ML-1M
  user activity distribution (capped at 400) and picks items by the item weights (1.05M
  events); 5,000 more users are the creators;
* tags: 1-3 ML-1M genres per item, drawn by genre frequency; authors: 5,000 creators with
  Zipf(1.3) sized catalogues; item dates spread over 60 days (2% in the last 3 days);
* follows: each user follows a number of users drawn from the LastFM friends degree
  distribution (lastfm-social social.tsv).
The fixture is bulk-inserted with SQLAlchemy core after the normal migrations (building it is
not what is measured); everything after that goes through the real CLI and HTTP API.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import httpx  # noqa: E402
import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402
import uvicorn  # noqa: E402
from _record import environment, run_record, write_report  # noqa: E402
from quality import BENCHMARKS, RESULTS, ml1m_movies  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402
from sqlalchemy import create_engine, func, insert, select, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402
from sqlalchemy.exc import SQLAlchemyError  # noqa: E402

from agora.db.engine import make_engine, migrate  # noqa: E402
from agora.db.tables import Event, Item, SocialEdge, User  # noqa: E402
from agora.evaluation.splits import load_split  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench"
LUA = BENCH / "serve_load.lua"
KEY = "load-test-key"
MODELS = '["trending", "als"]'
WRK_MISSING = "wrk not found: apt-get install wrk"
#: Databases this script never drops, whatever --pg-url says (the test suite's and the default).
SHARED_DATABASES = {"test", "postgres", "template0", "template1"}
#: After the bulk insert, the commands that bring the store where a live platform's is: models
#: trained, engagement (points, badges) counted. Without the replay, ``agora serve``'s first
#: event write starts a catch-up on 1.05M events that holds SQLite's write lock for minutes.
PREPARE = (["train", "--no-validate"], ["engagement", "replay"])
CEILING_WARMUP_SECONDS = 3
PERCENTILES = ("p50_ms", "p95_ms", "p99_ms")
console = Console()


def build_community(db_url: str, n_users: int, n_items: int, seed: int = 0) -> dict[str, int]:
    """Bulk-insert the scaled community described in the module docstring."""
    rng = np.random.default_rng(seed)
    ml = load_split(BENCHMARKS / "ml1m-general")
    item_pop = np.diff(sp.csc_matrix(ml.train.matrix).indptr).astype(np.float64)
    user_act = np.diff(ml.train.matrix.indptr)
    genres = Counter(g for _, gs, _ in (ml1m_movies(ml.item_ids) or []) for g in gs)
    genre_names = np.array(list(genres))
    genre_p = np.array(list(genres.values()), dtype=np.float64)
    genre_p /= genre_p.sum()
    friends = load_split(BENCHMARKS / "lastfm-social").social
    degree = np.array(list(Counter(friends[:, 0]).values())) if friends is not None else [10]

    now = datetime.now(UTC)
    weights = rng.choice(item_pop + 1.0, n_items) * rng.lognormal(0.0, 0.3, n_items)
    cdf = np.cumsum(weights) / weights.sum()
    n_creators = 5_000
    creator_of = rng.zipf(1.3, n_items) % n_creators
    age_days = np.where(
        rng.random(n_items) < 0.02, rng.uniform(0, 3, n_items), rng.uniform(3, 60, n_items)
    )  # noqa: E501
    engine = make_engine(db_url)
    migrate(engine)
    with engine.begin() as conn:
        conn.execute(
            insert(User),
            [
                {
                    "id": u + 1,
                    "external_id": f"u{u}",
                    "created": now - timedelta(days=90),
                    "attributes": {},
                }  # noqa: E501
                for u in range(n_users + n_creators)
            ],
        )
        conn.execute(
            insert(Item),
            [
                {
                    "id": i + 1,
                    "external_id": f"i{i}",
                    "author_id": n_users + int(creator_of[i]) + 1,
                    "title": f"Post {i}",
                    "body": "",
                    "tags": sorted(
                        set(rng.choice(genre_names, rng.integers(1, 4), p=genre_p).tolist())
                    ),  # noqa: E501
                    "language": "en",
                    "created": now - timedelta(days=float(age_days[i])),
                    "media": {},
                    "attributes": {},
                }
                for i in range(n_items)
            ],
        )
        n_events = 0
        rows = []
        for u in range(n_users):
            k = int(min(rng.choice(user_act), 400))
            items = np.unique(np.searchsorted(cdf, rng.random(k)))
            for i in items:
                age = float(age_days[i]) * rng.random()
                rows.append(
                    {"event_id": f"e{n_events}", "user_id": u + 1, "item_id": int(i) + 1,
                     "type": "like" if rng.random() < 0.3 else "view", "value": None,
                     "timestamp": now - timedelta(days=age), "context": {}}
                )  # fmt: skip
                n_events += 1
            if len(rows) > 50_000:
                conn.execute(insert(Event), rows)
                rows = []
        if rows:
            conn.execute(insert(Event), rows)
        edges = set()
        for u in range(n_users):
            for v in rng.integers(0, n_users + n_creators, int(rng.choice(degree))):
                if v != u:
                    edges.add((u + 1, int(v) + 1))
        conn.execute(
            insert(SocialEdge),
            [
                {"source_id": a, "target_id": b, "type": "follow", "weight": 1.0, "created": now}
                for a, b in edges
            ],
        )
    engine.dispose()
    return {
        "users": n_users + n_creators,
        "items": n_items,
        "events": n_events,
        "edges": len(edges),
    }  # noqa: E501


def stored_events(url: str) -> int | None:
    """Events in the store at ``url``, or None when it cannot be read (absent, not migrated)."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(Event)).scalar_one()
    except SQLAlchemyError:
        return None
    finally:
        engine.dispose()


def recreate_database(url: str) -> None:
    """Drop and create the PostgreSQL database named by ``url`` (never a shared one)."""
    target = make_url(url)
    name = target.database or ""
    if name in SHARED_DATABASES:
        raise SystemExit(f"refusing to drop the database {name!r}: give --pg-url its own one")
    admin = create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()


def agora_env(data_dir: Path, database_url: str | None, background: float) -> dict[str, str]:
    """The environment of the bench's ``agora`` commands: this checkout's code, the bench key
    and models, one BLAS thread, the background period, the data folder and database."""
    env = dict(os.environ)
    env.pop("AGORA_DATABASE_URL", None)
    env.update(
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO / "src"), env.get("PYTHONPATH")])),
        AGORA_DATA_DIR=str(data_dir),
        AGORA_API_KEY=KEY,
        AGORA_MODELS=MODELS,
        AGORA_BACKGROUND_SECONDS=f"{background:g}",
        OPENBLAS_NUM_THREADS="1",
    )
    if database_url:
        env["AGORA_DATABASE_URL"] = database_url
    return env


def prepare(db: str, args: argparse.Namespace) -> tuple[dict[str, str], dict[str, int]]:
    """The environment of ``db``'s cells and the community's sizes; builds and trains the
    community first unless the cache (marker and store) already holds it."""
    data = Path(args.workdir) / db
    url = args.pg_url if db == "postgresql" else f"sqlite:///{data / 'agora.db'}"
    env = agora_env(data, url if db == "postgresql" else None, args.background_seconds)
    marker = data / "community.json"
    wanted = {"users": args.users, "items": args.items, "database": url}
    if marker.exists():
        held = json.loads(marker.read_text())
        events = stored_events(url)
        if {k: held.get(k) for k in wanted} == wanted and (events or 0) >= held["sizes"]["events"]:
            return env, held["sizes"]
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(parents=True)
    if db == "postgresql":
        recreate_database(url)
    t0 = time.perf_counter()
    sizes = build_community(url, args.users, args.items)
    if db == "postgresql":  # planner statistics, as autovacuum would have them on a live store
        engine = create_engine(url, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text("ANALYZE"))
        engine.dispose()
    console.print(f"{db}: built {sizes} in {time.perf_counter() - t0:.0f} s")
    for step in PREPARE:
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "agora.cli.main", *step], env=env, check=True)
        console.print(f"{db}: agora {' '.join(step)} in {time.perf_counter() - t0:.0f} s")
    marker.write_text(json.dumps({**wanted, "sizes": sizes}))
    return env, sizes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_args(port: int | str, workers: int | str) -> list[str]:
    return ["serve", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]


def ceiling_command(port: int | str, workers: int | str) -> list[str]:
    """uvicorn on the ceiling app, with ``agora serve``'s loop and HTTP implementation."""
    return [sys.executable, "-m", "uvicorn", "_ceiling_app:app", "--app-dir", str(BENCH),
            "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
            "--loop", "auto", "--http", "auto",
            "--no-access-log", "--log-level", "warning"]  # fmt: skip


def start(command: list[str], env: dict[str, str], port: int, log: Path) -> subprocess.Popen:
    """Start a server (its own process group, output to ``log``); wait until /health answers."""
    with log.open("w") as out:
        proc = subprocess.Popen(
            command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    deadline = time.monotonic() + 180
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code in (200, 503):
                return proc
        except httpx.TransportError:
            time.sleep(0.2)
    stop(proc)
    raise SystemExit(f"server did not start ({' '.join(command[:4])}): {log.read_text()[-2000:]}")


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM (graceful), then SIGKILL to the process group if it lingers."""
    proc.terminate()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=60)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # workers left behind
    proc.wait()


def worker_rss_mb(pid: int, workers: int) -> list[float]:
    """VmRSS (MiB) of each uvicorn worker of the server ``pid``: the process itself with one
    worker, its spawned children with several."""
    pids = [pid]
    if workers > 1:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        spawned = [c for c in children if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes()]
        pids = [int(c) for c in spawned]
    out = []
    for p in pids:
        for line in Path(f"/proc/{p}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                out.append(round(int(line.split()[1]) / 1024, 1))
    return out


def process_tree(pid: int) -> list[int]:
    """``pid`` and every process below it (uvicorn's workers, a refresher's shards)."""
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        for task in Path(f"/proc/{current}/task").glob("*"):
            with contextlib.suppress(OSError):
                todo += [int(c) for c in (task / "children").read_text().split()]
    return tree


def cpu_seconds(pid: int | None) -> float:
    """CPU time (user + system, seconds) used so far by ``pid`` and the processes below it."""
    if pid is None:
        return 0.0
    total = 0
    for p in process_tree(pid):
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return total / os.sysconf("SC_CLK_TCK")


def wrk_command(
    url: str, mode: str, seconds: int, args: argparse.Namespace, run_id: str, epoch: str
) -> list[str]:
    """wrk with the bench's script; ``mode`` is ``mixed`` or ``recs`` (see serve_load.lua),
    ``run_id`` makes event ids unique across runs, ``epoch`` is the events' first time."""
    return ["wrk", "-t", str(args.threads), "-c", str(args.connections), "-d", f"{seconds}s",
            "--timeout", f"{args.timeout}s", "-H", f"Authorization: Bearer {KEY}",
            "-s", str(LUA), url, "--", mode, str(args.users), str(args.items), run_id,
            epoch]  # fmt: skip


def run_wrk(url: str, mode: str, seconds: int, args: argparse.Namespace) -> dict:
    """The JSON object serve_load.lua's done() prints for one wrk run."""
    now = time.time()
    command = wrk_command(url, mode, seconds, args, str(int(now * 1000)), f"{now:.3f}")
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=seconds + args.timeout + 60
    )
    for line in done.stdout.splitlines():
        if line.startswith("serve_load_json "):
            return json.loads(line.partition(" ")[2])
    raise SystemExit(f"wrk gave no result (exit {done.returncode}): {done.stderr[-2000:]}")


def figures(result: dict) -> dict:
    """A wrk run's report: 2xx throughput, wrk's percentiles, errors, per-kind figures."""
    seconds = result["duration_s"]
    failed = sum(result["non_2xx"].values())
    by_kind = {
        kind: {
            "rps": round((s["count"] - s["errors"]) / seconds, 1),
            "count": s["count"],
            **{p: round(s[p], 2) for p in PERCENTILES},
            "errors": s["errors"],
        }
        for kind, s in result["kinds"].items()
    }
    server = result["first_page_server_ms"]
    return {
        "throughput_rps": round((result["requests"] - failed) / seconds, 1),
        **{p: round(result["latency_ms"][p], 2) for p in PERCENTILES},
        "errors": failed + sum(result["socket_errors"].values()),
        "requests": result["requests"],
        "seconds": round(seconds, 2),
        "non_2xx": result["non_2xx"],
        "socket_errors": result["socket_errors"],
        "unmatched": result["unmatched"],
        "by_kind": by_kind,
        "first_page_server_p50_ms": round(server["p50_ms"], 2) if server["count"] else None,
    }


def feed_page(url: str, user: str = "u0") -> bytes:
    """A real 20-item first page from the server at ``url`` (the ceiling app's answer)."""
    page = httpx.get(
        f"{url}/users/{user}/feed",
        params={"n": 20},
        headers={"Authorization": f"Bearer {KEY}"},
        timeout=120,
    )
    if page.status_code != 200:
        raise SystemExit(f"feed page: {page.status_code} {page.text[:500]}")
    return page.content


def forget_impressions(env: dict[str, str]) -> None:
    """``agora prune-impressions --older-than-days 0``: the impressions of earlier runs go, so
    every cell starts from the store as built (a run adds about a million rows, and refreshes
    and writes slow down as the table grows)."""
    subprocess.run(
        [sys.executable, "-m", "agora.cli.main", "prune-impressions", "--older-than-days", "0"],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )


def refresh_all(env: dict[str, str]) -> float:
    """``agora worker --once``: every user's feed candidates made ready (seconds it took), so
    the measured runs serve ready candidates, as a platform does after its refresher ran."""
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "agora.cli.main", "worker", "--once"],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - t0


def run_cell(db: str, workers: int, env: dict[str, str], args: argparse.Namespace) -> dict:
    """One row of the table: ``agora serve`` under the mix and on recommendations, then the
    ceiling app under the same mix."""
    work = Path(args.workdir)
    forget_impressions(env)
    env = {**env, "AGORA_FEED": json.dumps({"refresher_shards": args.refresher_shards})}
    refresh_seconds = refresh_all(env)
    console.print(f"{db}: every user's candidates refreshed in {refresh_seconds:.1f} s")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    console.print(f"{db}, {workers} worker(s): agora serve on {url}")
    command = [sys.executable, "-m", "agora.cli.main", *serve_args(port, workers)]
    refresher = None
    if args.refresher == "worker":  # the servers only serve; agora worker refreshes
        feed = {"refresh_in_serve": False, "refresher_shards": args.refresher_shards}
        env = {**env, "AGORA_FEED": json.dumps(feed)}
        refresher = subprocess.Popen(
            [sys.executable, "-m", "agora.cli.main", "worker"],
            env=env,
            stdout=(work / f"worker-{db}-{workers}w.log").open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = start(command, env, port, work / f"serve-{db}-{workers}w.log")
    try:
        with ThreadPoolExecutor(workers) as pool:  # a first page per worker, alone: cold start
            page = next(pool.map(lambda n: feed_page(url, f"u{n}"), range(workers)))
        run_wrk(url, "mixed", args.warmup, args)
        refresher_pid = refresher.pid if refresher is not None else None
        used = (cpu_seconds(server.pid), cpu_seconds(refresher_pid))
        mixed = figures(run_wrk(url, "mixed", args.seconds, args))
        used = (cpu_seconds(server.pid) - used[0], cpu_seconds(refresher_pid) - used[1])
        recs = figures(run_wrk(url, "recs", args.seconds, args))
        rss = worker_rss_mb(server.pid, workers)
    finally:
        stop(server)
        if refresher is not None:
            stop(refresher)
    page_file = work / "ceiling_page.json"
    page_file.write_bytes(page)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    console.print(f"{db}, {workers} worker(s): ceiling app on {url}")
    ceiling_env = {**env, "SERVE_LOAD_PAGE": str(page_file)}
    server = start(
        ceiling_command(port, workers), ceiling_env, port, work / f"ceiling-{workers}w.log"
    )
    try:
        run_wrk(url, "mixed", CEILING_WARMUP_SECONDS, args)
        ceiling = figures(run_wrk(url, "mixed", args.seconds, args))
    finally:
        stop(server)
    recommendations = recs["by_kind"].get("recommendations", {})
    return {
        "db": db,
        "workers": workers,
        **mixed,
        "ceiling_rps": ceiling["throughput_rps"],
        "ratio": round(mixed["throughput_rps"] / ceiling["throughput_rps"], 5)
        if ceiling["throughput_rps"]
        else None,
        "ceiling": {k: ceiling[k] for k in ("throughput_rps", *PERCENTILES, "errors")},
        "recommendations": {
            "rps": recs["throughput_rps"],
            **{p: recommendations.get(p) for p in PERCENTILES},
            "errors": recs["errors"],
        },
        "rss_mb": rss,
        "cpu": cpu_use(mixed, *used, refresher is not None),
        "refresher": args.refresher,
        "refresher_shards": args.refresher_shards,
        "refresh_all_seconds": round(refresh_seconds, 1),
    }


def cpu_use(mixed: dict, server: float, refresher: float, separate: bool) -> dict:
    """Where the cores went during the measured mix: the server's processes (all workers) per
    answered request, and the separate refresher's per event written (it refreshes the users
    the events made dirty); None for the refresher when the servers' own threads refresh."""
    seconds = mixed["seconds"]
    events = mixed["by_kind"].get("event", {}).get("count", 0)
    return {
        "server_cores": round(server / seconds, 2),
        "server_ms_per_request": round(1000 * server / max(mixed["requests"], 1), 2),
        "refresher_cores": round(refresher / seconds, 2) if separate else None,
        "refresher_ms_per_event": round(1000 * refresher / max(events, 1), 2) if separate else None,
    }


def _cpu(ms: float | None, cores: float | None) -> str:
    return "-" if ms is None or cores is None else f"{ms:.2f} ({cores:.2f} cores)"


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.0f}" if value >= 100 else f"{value:.1f}"


def _pair(figs: dict) -> str:
    return f"{_ms(figs.get('p50_ms'))}/{_ms(figs.get('p99_ms'))}" if figs else "-"


def table(cells: list[dict], args: argparse.Namespace) -> Table:
    out = Table(
        title=f"agora serve under wrk: {args.seconds} s runs, {args.threads} threads, "
        f"{args.connections} connections; latencies in ms (p50/p99)"
    )
    columns = ["db", "workers", "rps", "p50/p95/p99", "errors", "ceiling rps", "ratio",
               "first page", "next page", "event", "first page server p50", "recs rps",
               "recs", "RSS MiB", "server CPU ms/request", "refresher CPU ms/event",
               "refresh all s"]  # fmt: skip
    for column in columns:
        out.add_column(column, no_wrap=True)
    for c in cells:
        kinds = c["by_kind"]
        out.add_row(
            c["db"],
            str(c["workers"]),
            f"{c['throughput_rps']:.1f}",
            "/".join(_ms(c[p]) for p in PERCENTILES),
            str(c["errors"]),
            f"{c['ceiling_rps']:.0f}",
            f"{c['ratio']:.2%}" if c["ratio"] is not None else "-",
            _pair(kinds.get("first_page", {})),
            _pair(kinds.get("next_page", {})),
            _pair(kinds.get("event", {})),
            _ms(c["first_page_server_p50_ms"]),
            f"{c['recommendations']['rps']:.1f}",
            _pair(c["recommendations"]),
            " ".join(f"{r:.0f}" for r in c["rss_mb"]),
            _cpu(c["cpu"]["server_ms_per_request"], c["cpu"]["server_cores"]),
            _cpu(c["cpu"]["refresher_ms_per_event"], c["cpu"]["refresher_cores"]),
            f"{c['refresh_all_seconds']:.1f}",
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description="agora serve under wrk, beside its stack's ceiling.")
    ap.add_argument("--seconds", type=int, default=30, help="each measured wrk run")
    ap.add_argument(
        "--warmup",
        type=int,
        default=30,
        help="wrk load before measuring (a starting worker holds its users meanwhile: 5-7 s "
        "alone, about 20 s under load)",
    )
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="agora serve --workers")
    ap.add_argument("--db", nargs="+", choices=["sqlite", "postgresql"],
                    default=["sqlite", "postgresql"])  # fmt: skip
    ap.add_argument("--threads", type=int, default=2, help="wrk -t")
    ap.add_argument("-c", "--connections", type=int, default=32, help="wrk -c")
    ap.add_argument("--timeout", type=int, default=30, help="wrk --timeout (seconds)")
    ap.add_argument(
        "--background-seconds",
        type=float,
        default=0.0,
        help="AGORA_BACKGROUND_SECONDS of the servers (see the module docstring)",
    )
    ap.add_argument(
        "--refresher",
        choices=["worker", "serve"],
        default="worker",
        help="who keeps candidates ready during the runs: a separate `agora worker` process "
        "(the servers run with refresh_in_serve false), or the servers' own thread",
    )
    ap.add_argument(
        "--refresher-shards",
        type=int,
        default=1,
        help="feed.refresher_shards: how many refresher processes split the users (for "
        "`agora worker --once` before each cell and the `agora worker` during it)",
    )
    ap.add_argument("--users", type=int, default=10_000, help="active users (plus 5,000 creators)")
    ap.add_argument("--items", type=int, default=100_000)
    ap.add_argument("--pg-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/agora_bench")
    ap.add_argument("--workdir", default="/tmp/agora-serve-load")
    ap.add_argument("--out", default=str(RESULTS / "serve_load.json"))
    args = ap.parse_args()
    if args.refresher == "serve" and args.refresher_shards > 1:
        ap.error("--refresher serve runs one refresher per server: --refresher-shards must be 1")
    if shutil.which("wrk") is None:
        print(WRK_MISSING, file=sys.stderr)
        sys.exit(2)
    cells, community, envs = [], {}, {}
    for db in args.db:
        envs[db], community[db] = prepare(db, args)
        for workers in args.workers:
            cells.append(run_cell(db, workers, envs[db], args))
    Console(width=max(console.width, 200)).print(table(cells, args))  # one line per row
    report = {
        "cells": cells,
        "community": community,
        "run": run_record(
            {
                **vars(args),
                "server_command": ["agora", *serve_args("PORT", "N")],
                "ceiling_command": ["uvicorn", *ceiling_command("PORT", "N")[3:]],
                "wrk_command": wrk_command(
                    "URL", "mixed|recs", args.seconds, args, "RUN_ID", "EPOCH"
                ),
                "server_env": {db: environment(env) for db, env in envs.items()},
                "uvicorn": {
                    "version": uvicorn.__version__,
                    "loop": "uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
                    "http": "httptools" if importlib.util.find_spec("httptools") else "h11",
                },
            }
        ),
    }
    console.print(f"wrote {write_report(args.out, report)}")


if __name__ == "__main__":
    main()
