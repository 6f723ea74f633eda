"""Load test of ``POST /events`` on a real ``agora serve``: 100-event batches driven by ``wrk``.

    PYTHONPATH=src OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/ingest_load.py \
        [--db sqlite postgresql] [--workers 1 2] [--seconds 20] [--connections 8] [--baseline REV]

The store is the scaled community of bench/serve_load.py (its builder, 10,000 users + 5,000
creators, 100,000 items, about 1.05M events), built once per database and cached: a SQLite file
under ``--workdir`` and the PostgreSQL database ``agora_ingest_bench`` (created here on
``--postgres``, trust auth), with the engagement ledger caught up (``agora engagement replay``),
as on a live server. Every measured run starts from a fresh copy (a file copy; ``CREATE DATABASE
... TEMPLATE``), so runs do not inherit one another's rows.

For each database x workers (and, with ``--baseline REV``, for the source tree of git revision
REV next to this tree, in the same run) it starts ``agora serve``, warms it up for 3 s, then
runs ``wrk`` (2 threads, ``--connections``) for ``--seconds`` with bench/ingest_load.lua: JSON
lists of ``--batch`` distinct events. Reported: events/s acknowledged (the answers' ``accepted``
over wrk's duration), requests/s, request p50/p90/p99, errors (non-2xx answers, socket errors,
timeouts) and whether the store holds every acknowledged event afterwards (stored >= accepted:
wrk stops counting answers still in flight at the end). Prints a rich table and writes
bench/results/ingest_load.json. The servers run with their default settings, background jobs
included (the engagement catch-up competes for the same two cores); runs stay under a minute
per server, before the sentiment job's first turn. Needs ``wrk`` (``apt-get install wrk``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from io import BytesIO
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from _record import environment, run_record, write_report  # noqa: E402
from quality import RESULTS  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402
from serve_load import build_community, free_port, serve_args, start, stop  # noqa: E402
from sqlalchemy import create_engine, func, select, text  # noqa: E402

from agora.db.tables import Event  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
LUA = Path(__file__).with_name("ingest_load.lua")
KEY = "ingest-load-key"
BASE_DB = "agora_ingest_bench"
console = Console(width=120)


def prepared_store(db: str, work: Path, postgres: str, users: int, items: int) -> str:
    """URL of the cached community on ``db`` (built, then engagement replayed, on first use)."""
    ready = work / f"{db}.ready"
    if db == "sqlite":
        path = work / "sqlite" / "agora.db"
        url = f"sqlite:///{path}"
        if ready.exists():
            return url
        path.unlink(missing_ok=True)
        path.parent.mkdir(parents=True, exist_ok=True)
    else:
        url = f"{postgres}/{BASE_DB}"
        admin = create_engine(f"{postgres}/postgres", isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            exists = conn.scalar(
                text("SELECT 1 FROM pg_database WHERE datname = :d"), {"d": BASE_DB}
            )
            if exists and ready.exists():
                return url
            conn.execute(text(f'DROP DATABASE IF EXISTS "{BASE_DB}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{BASE_DB}"'))
        admin.dispose()
    t0 = time.perf_counter()
    sizes = build_community(url, users, items)
    if db == "postgresql":  # the builder sets explicit ids: move the sequences past them
        engine = create_engine(url)
        with engine.begin() as conn:
            for table in ("users", "items"):
                conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                  f"(SELECT max(id) FROM {table}))"))  # fmt: skip
        engine.dispose()
    env = {**os.environ, "AGORA_DATABASE_URL": url, "AGORA_DATA_DIR": str(work / db),
           "PYTHONPATH": str(REPO / "src")}  # fmt: skip
    subprocess.run([str(BIN / "agora"), "engagement", "replay"], env=env, check=True,
                   stdout=subprocess.DEVNULL)  # fmt: skip
    ready.write_text(json.dumps(sizes))
    console.print(f"built {db} store {sizes} in {time.perf_counter() - t0:.0f} s")
    return url


def fresh_copy(db: str, base_url: str, work: Path, postgres: str) -> str:
    """URL of a new copy of the cached store, for one measured run."""
    if db == "sqlite":
        run = work / "run" / "agora.db"
        shutil.rmtree(run.parent, ignore_errors=True)
        run.parent.mkdir(parents=True)
        shutil.copyfile(base_url.removeprefix("sqlite:///"), run)
        return f"sqlite:///{run}"
    name = f"{BASE_DB}_run"
    admin = create_engine(f"{postgres}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{BASE_DB}"'))
    admin.dispose()
    return f"{postgres}/{name}"


def source_tree(rev: str, work: Path) -> Path:
    """The ``src`` folder of git revision ``rev``, extracted once under ``work``."""
    target = work / f"src-{rev}"
    if not (target / "src").is_dir():
        archive = subprocess.run(["git", "archive", rev, "src"], cwd=REPO, check=True,
                                 capture_output=True).stdout  # fmt: skip
        with tarfile.open(fileobj=BytesIO(archive)) as tar:
            tar.extractall(target, filter="data")
    return target / "src"


def wrk(base: str, seconds: float, connections: int, tag: str, args: argparse.Namespace) -> dict:
    """One wrk run of bench/ingest_load.lua; the figures its done() prints."""
    cmd = ["wrk", "-t2", f"-c{connections}", f"-d{round(seconds)}s", "--timeout", "30s",
           "-H", f"Authorization: Bearer {KEY}", "-s", str(LUA), base, "--",
           tag, str(args.users), str(args.items), str(args.batch)]  # fmt: skip
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    line = next(ln for ln in out.splitlines() if ln.startswith("INGEST_LOAD "))
    return json.loads(line.removeprefix("INGEST_LOAD "))


def stored_events(url: str, tag: str) -> int:
    engine = create_engine(url)
    with engine.connect() as conn:
        n = conn.scalar(select(func.count()).where(Event.event_id.like(f"{tag}-%")))
    engine.dispose()
    return int(n or 0)


def measure(db: str, workers: int, src: Path, url: str, args: argparse.Namespace) -> dict:
    """Start a server on ``url`` running the code in ``src``, warm it up, measure it."""
    work = Path(args.workdir)
    env = {**os.environ, "PYTHONPATH": str(src), "AGORA_DATA_DIR": str(work / "run"),
           "AGORA_DATABASE_URL": url, "AGORA_API_KEY": KEY,
           "OPENBLAS_NUM_THREADS": "1"}  # fmt: skip
    port = free_port()
    command = [sys.executable, "-m", "agora.cli.main", *serve_args(port, workers)]
    server_log = work / f"ingest-{db}-{workers}w.log"
    server = start(command, env, port, server_log)
    base = f"http://127.0.0.1:{port}"
    tag = f"load{int(time.time())}"
    try:
        wrk(base, 3, args.connections, f"warm{tag}", args)
        result = wrk(base, args.seconds, args.connections, tag, args)
    finally:
        stop(server)  # SIGTERM: the work behind its answers finishes first
    result["stored"] = stored_events(url, tag)  # >= accepted: wrk stops counting in-flight ones
    result["all_kept"] = result["stored"] >= result["accepted"]
    result["events_per_s"] = round(result["accepted"] / result["seconds"], 1)
    result["requests_per_s"] = round(result["requests"] / result["seconds"], 1)
    result["errors"] = result["failed"] + result["socket_errors"] + result["timeouts"]
    result["server_command"] = ["agora", *serve_args(port, workers)]
    result["server_env"] = environment(env)
    if result["errors"]:
        tail = server_log.read_text(errors="replace").splitlines()[-20:]
        result["server_log_tail"] = [line[:300] for line in tail]
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description="POST /events load (wrk) against agora serve.")
    ap.add_argument("--db", nargs="+", choices=["sqlite", "postgresql"],
                    default=["sqlite", "postgresql"])  # fmt: skip
    ap.add_argument("--workers", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--batch", type=int, default=100, help="events per request")
    ap.add_argument("--baseline", help="also measure the code of this git revision (before/after)")
    ap.add_argument("--users", type=int, default=10_000)
    ap.add_argument("--items", type=int, default=100_000)
    ap.add_argument("--postgres", default="postgresql+psycopg://postgres@127.0.0.1:5432")
    ap.add_argument("--workdir", default="/tmp/agora-ingest-load")
    ap.add_argument("--out", default=str(RESULTS / "ingest_load.json"))
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        console.print("wrk is missing: apt-get install wrk")
        raise SystemExit(2)
    work = Path(args.workdir)
    codes = [("current", REPO / "src")]
    if args.baseline:
        codes.insert(0, (args.baseline, source_tree(args.baseline, work)))
    rows = []
    for db in args.db:
        base_url = prepared_store(db, work, args.postgres, args.users, args.items)
        for workers in args.workers:
            for code, src in codes:
                url = fresh_copy(db, base_url, work, args.postgres)
                result = measure(db, workers, src, url, args)
                rows.append({"db": db, "workers": workers, "code": code, **result})
                console.print(
                    f"{db} x{workers} {code}: {result['events_per_s']:,.0f} events/s, "
                    f"p99 {result['p99_ms']} ms, errors {result['errors']}"
                )
    table = Table(title=f"POST /events, {args.batch} events per request, wrk -t2 "
                        f"-c{args.connections}, {args.seconds:.0f} s")  # fmt: skip
    for col in ["db", "workers", "code", "events/s", "requests/s", "p50 ms", "p99 ms", "errors",
                "stored ≥ acknowledged"]:  # fmt: skip
        table.add_column(col)
    for r in rows:
        table.add_row(r["db"], str(r["workers"]), r["code"], f"{r['events_per_s']:,.0f}",
                      str(r["requests_per_s"]), str(r["p50_ms"]), str(r["p99_ms"]),
                      str(r["errors"]), f"{'yes' if r['all_kept'] else 'NO'} "
                      f"({r['stored']}/{r['accepted']})")  # fmt: skip
    console.print(table)
    report = {
        "results": rows,
        "run": run_record(
            {**vars(args), "database_sqlite": "SQLite (WAL)", "lua": str(LUA.relative_to(REPO))}
        ),  # fmt: skip
    }
    out = write_report(args.out, report)
    console.print(f"wrote {out}")


if __name__ == "__main__":
    main()
