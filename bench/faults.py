"""Faults, measured: does ``POST /events`` lose or duplicate acknowledged events when the server
is killed, when PostgreSQL restarts under it, or when the disk fills?

    OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/faults.py [--faults kill9 pg-restart disk-full]
        [--db sqlite postgresql] [--events 20000] [--clients 4]

Each run posts ``--events`` events (unique ids, batches of 100) from ``--clients`` client
threads to a real ``agora serve --workers 2`` on a fresh store, injects its fault about a third
of the way in, and keeps going: a batch that got no 2xx is sent again (after a pause) until it
does. Then every batch is sent once more (a client that never heard an answer does that), and
the store is read:

* **lost**: events whose batch was acknowledged (201, or 200 when all of it was stored before)
  but that are not stored (must be 0);
* **duplicated**: stored rows beyond one per event id (must be 0);
* **clean errors**: answers during the fault that were a 503/507 with a JSON ``detail`` (what a
  client can act on), against **unclean** ones (any other 5xx, an answer slower than 30 s);
  connections refused (no server listens) and dropped without an answer (expected only when
  the server is killed) are counted apart.

The faults:

* ``kill9``: ``kill -9`` of the server's whole process group (the master and both workers),
  then a restart on the same store; SQLite and PostgreSQL.
* ``pg-restart``: PostgreSQL itself stops at once (``pg_ctl restart -m immediate``: a crash,
  recovered from its WAL) and comes back 5 s later, while the server runs on. It uses a cluster
  of its own (``initdb`` in a temporary folder, port ``--pg-port``, run as the ``postgres``
  user), never the shared server.
* ``disk-full``: the SQLite store sits on a small tmpfs (``mount -t tmpfs -o size=...``, needs
  root) whose free space a filler file eats; writes must fail cleanly, the file must pass
  ``PRAGMA integrity_check``, and writing must work again once space is freed.

Prints a table and writes ``bench/results/faults.json``; the stores and server logs stay in
``--workdir``. Not a test: it restarts things and
takes a few minutes.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import httpx  # noqa: E402
from _record import run_record, write_report  # noqa: E402
from quality import RESULTS  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402
from serve_load import free_port, serve_args, start  # noqa: E402
from sqlalchemy import create_engine, func, select, text  # noqa: E402

from agora.db.tables import Event  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
KEY = "faults-key"
BATCH = 100
SLOW_SECONDS = 30.0
console = Console(width=120)


@dataclass
class Tally:
    """What the clients saw, shared by their threads."""

    acknowledged: set[int] = field(default_factory=set)  # batch numbers answered 2xx
    answers: Counter = field(default_factory=Counter)  # "201", "503 clean", "500"...
    slowest: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def note(self, kind: str, seconds: float, batch: int | None = None) -> None:
        with self.lock:
            self.answers[kind] += 1
            self.slowest = max(self.slowest, seconds)
            if batch is not None:
                self.acknowledged.add(batch)


def batch_body(batch: int, users: int = 500, items: int = 2000) -> list[dict]:
    first = batch * BATCH
    return [
        {
            "event_id": f"f{first + k}",
            "user_id": f"u{(first + k) % users}",
            "item_id": f"i{(first + k) * 7 % items}",
            "type": "view",
        }
        for k in range(BATCH)
    ]


def post(client: httpx.Client, batch: int, tally: Tally) -> bool:
    """One attempt; returns whether the batch is acknowledged."""
    started = time.monotonic()
    try:
        answer = client.post("/events", json=batch_body(batch))
    except httpx.TimeoutException:
        tally.note("timeout (unclean)", time.monotonic() - started)
        return False
    except httpx.ConnectError:  # nothing listens (killed, restarting)
        tally.note("refused", time.monotonic() - started)
        return False
    except httpx.TransportError:  # a connection closed without an answer
        tally.note("dropped", time.monotonic() - started)
        return False
    seconds = time.monotonic() - started
    if answer.status_code in (200, 201):  # 200: every event of the batch was stored before
        tally.note(str(answer.status_code), seconds, batch)
        return True
    try:
        detail = bool(answer.json().get("detail"))
    except ValueError:
        detail = False
    clean = answer.status_code in (503, 507) and detail
    tally.note(f"{answer.status_code} {'clean' if clean else 'unclean'}", seconds)
    return False


def drive(base: str, batches: list[int], tally: Tally, clients: int) -> None:
    """``clients`` threads post their share of ``batches``, each batch until acknowledged."""

    def client_loop(mine: list[int]) -> None:
        headers = {"Authorization": f"Bearer {KEY}"}
        with httpx.Client(base_url=base, headers=headers, timeout=SLOW_SECONDS + 30) as client:
            for batch in mine:
                while not post(client, batch, tally):
                    time.sleep(0.5)

    threads = [
        threading.Thread(target=client_loop, args=(batches[i::clients],)) for i in range(clients)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def stored_counts(url: str) -> tuple[int, int, set[int]]:
    """Rows, distinct event ids, and the batches with every event stored."""
    engine = create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(select(func.count()).select_from(Event)).scalar_one()
        ids = [r[0] for r in conn.execute(select(Event.event_id))]
    engine.dispose()
    per_batch = Counter(int(i[1:]) // BATCH for i in ids if i.startswith("f"))
    return int(rows), len(set(ids)), {b for b, n in per_batch.items() if n == BATCH}


def server_env(data: Path, url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGORA_")}
    env.update(
        PYTHONPATH=str(REPO / "src"),
        AGORA_DATA_DIR=str(data),
        AGORA_DATABASE_URL=url,
        AGORA_API_KEY=KEY,
        AGORA_FEED='{"refresh_in_serve": false}',
        AGORA_BACKGROUND_SECONDS="0",
        OPENBLAS_NUM_THREADS="1",
    )
    return env


@contextlib.contextmanager
def serving(data: Path, url: str, log: Path) -> Iterator[tuple[str, Callable[[], None]]]:
    """``agora serve --workers 2`` on the store; yields its URL and a ``kill -9`` + restart."""
    port = free_port()
    env = server_env(data, url)
    command = [str(BIN / "agora"), *serve_args(port, 2)]
    procs = [start(command, env, port, log)]

    def kill_and_restart() -> None:
        os.killpg(procs[-1].pid, signal.SIGKILL)
        procs[-1].wait()
        time.sleep(2)  # clients meet a closed port meanwhile
        procs.append(start(command, env, port, log.with_suffix(".restart.log")))

    try:
        yield f"http://127.0.0.1:{port}", kill_and_restart
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(procs[-1].pid, signal.SIGKILL)
        procs[-1].wait()


def run(
    name: str, db: str, url: str, data: Path, fault: Callable[[Callable[[], None]], None],
    args: argparse.Namespace, after: Callable[[], dict] | None = None,
) -> dict:  # fmt: skip
    # the server's log lives beside the store's folder, never on the small disk of disk-full
    """Post every batch with ``fault`` injected a third of the way in, re-send everything, and
    count (see the module docstring)."""
    n = args.events // BATCH
    tally = Tally()
    data.mkdir(parents=True, exist_ok=True)
    log = Path(args.workdir) / f"{name}-{db}.log"
    with serving(data, url, log) as (base, kill_and_restart):
        started = time.monotonic()
        feeder = threading.Thread(target=drive, args=(base, list(range(n)), tally, args.clients))
        feeder.start()
        while len(tally.acknowledged) < n // 3 and feeder.is_alive():
            time.sleep(0.05)
        acknowledged_before = len(tally.acknowledged)
        fault(kill_and_restart)
        feeder.join()
        elapsed = time.monotonic() - started
        extra = after() if after else {}
        resend = Tally()
        drive(base, list(range(n)), resend, args.clients)  # everything once more
    rows, distinct, complete = stored_counts(url)
    lost = len(tally.acknowledged - complete)
    return {
        "fault": name,
        "db": db,
        "events": n * BATCH,
        "acknowledged_before_fault": acknowledged_before * BATCH,
        "lost": lost * BATCH,
        "duplicated": rows - distinct,
        "stored": rows,
        "answers": dict(tally.answers),
        "clean_errors": sum(v for k, v in tally.answers.items() if k.endswith(" clean")),
        "unclean_errors": sum(v for k, v in tally.answers.items() if k.endswith("unclean")),
        "refused": tally.answers.get("refused", 0),
        "dropped": tally.answers.get("dropped", 0),
        "slowest_answer_s": round(tally.slowest, 2),
        "seconds": round(elapsed, 1),
        "resend_answers": dict(resend.answers),
        **extra,
    }


# -- the faults -------------------------------------------------------------------------------
def kill9(db: str, work: Path, args: argparse.Namespace) -> dict:
    data = work / f"kill9-{db}"
    if db == "sqlite":
        url = f"sqlite:///{data / 'agora.db'}"
    else:
        url = fresh_database(args.postgres, "agora_faults")
    return run("kill9", db, url, data, lambda kill_and_restart: kill_and_restart(), args)


def fresh_database(server: str, name: str) -> str:
    admin = create_engine(f"{server}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return f"{server}/{name}"


def pg_bin(tool: str) -> str:
    found = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{tool}"))
    if not found:
        raise SystemExit(f"{tool} not found: apt-get install postgresql")
    return str(found[-1])


@contextlib.contextmanager
def own_cluster(work: Path, port: int) -> Iterator[Callable[[list[str]], None]]:
    """A PostgreSQL cluster of this bench's own (never the shared server); yields pg_ctl."""
    folder = work / "pg"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    shutil.chown(folder, "postgres", "postgres")
    os.chmod(work, 0o755)

    def as_postgres(command: list[str]) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", *command], check=True,
                       capture_output=True, text=True)  # fmt: skip

    def pg_ctl(action: list[str]) -> None:
        as_postgres([pg_bin("pg_ctl"), "-D", str(folder / "data"), "-w", "-t", "60",
                     "-l", str(folder / "log"), *action])  # fmt: skip

    as_postgres([pg_bin("initdb"), "-D", str(folder / "data"), "-U", "postgres",
                 "--auth=trust", "--no-sync"])  # fmt: skip
    with (folder / "data" / "postgresql.conf").open("a") as conf:  # every start, restarts too
        conf.write(f"port = {port}\nunix_socket_directories = '{folder}'\n"
                   "listen_addresses = '127.0.0.1'\nfsync = on\n")  # fmt: skip
    pg_ctl(["start"])
    try:
        yield pg_ctl
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            pg_ctl(["-m", "immediate", "stop"])


def pg_restart(db: str, work: Path, args: argparse.Namespace) -> dict:
    if os.geteuid() != 0:
        return {"fault": "pg-restart", "db": db, "skipped": "needs root (runuser postgres)"}
    with own_cluster(work, args.pg_port) as pg_ctl:
        server = f"postgresql+psycopg://postgres@127.0.0.1:{args.pg_port}"
        url = fresh_database(server, "agora_faults")

        def restart(_: Callable[[], None]) -> None:
            pg_ctl(["-m", "immediate", "stop"])  # a crash: recovery replays the WAL
            time.sleep(5)
            pg_ctl(["start"])

        return run("pg-restart", db, url, work / "pg-restart", restart, args)


def disk_full(db: str, work: Path, args: argparse.Namespace) -> dict:
    if os.geteuid() != 0:
        return {"fault": "disk-full", "db": db, "skipped": "needs root (mount -t tmpfs)"}
    mount = work / "small-disk"
    mount.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={args.disk_mb}m", "tmpfs", str(mount)],
                   check=True)  # fmt: skip
    try:
        data = mount / "data"
        url = f"sqlite:///{data / 'agora.db'}"
        filler = mount / "filler"

        def fill(_: Callable[[], None]) -> None:
            # 1 MB at a time until the disk refuses (ENOSPC: full)
            with filler.open("wb") as out, contextlib.suppress(OSError):
                while True:
                    out.write(b"\0" * (1 << 20))
                    out.flush()
            time.sleep(5)  # the clients meet the full disk
            filler.unlink()  # space again: the clients' retries must now succeed

        def integrity() -> dict:
            with contextlib.closing(sqlite3.connect(data / "agora.db")) as conn:
                return {"integrity_check": conn.execute("PRAGMA integrity_check").fetchone()[0]}

        return run("disk-full", db, url, data, fill, args, after=integrity)
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


FAULTS = {"kill9": kill9, "pg-restart": pg_restart, "disk-full": disk_full}
WHERE = {"kill9": ("sqlite", "postgresql"), "pg-restart": ("postgresql",), "disk-full": ("sqlite",)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--faults", nargs="+", choices=list(FAULTS), default=list(FAULTS))
    parser.add_argument("--db", nargs="+", choices=["sqlite", "postgresql"],
                        default=["sqlite", "postgresql"])  # fmt: skip
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--postgres", default="postgresql+psycopg://postgres@127.0.0.1:5432")
    parser.add_argument("--pg-port", type=int, default=55432, help="the own cluster's port")
    parser.add_argument("--disk-mb", type=int, default=48, help="the small disk's size")
    parser.add_argument("--workdir", default=str(Path(tempfile.gettempdir()) / "agora-faults"),
                        help="stores and server logs (emptied first)")  # fmt: skip
    parser.add_argument("--out", default=str(RESULTS / "faults.json"))
    args = parser.parse_args()
    rows = []
    work = Path(args.workdir)
    shutil.rmtree(work, ignore_errors=True)  # the stores and server logs of the last run
    work.mkdir(parents=True)
    for name in args.faults:
        for db in WHERE[name]:
            if db not in args.db:
                continue
            console.print(f"{name} on {db}...")
            rows.append(FAULTS[name](db, work, args))
            console.print(rows[-1])
    table = Table(title=f"faults: {args.events:,} events in batches of {BATCH}, "
                        f"{args.clients} clients, agora serve --workers 2")  # fmt: skip
    for column in ("fault", "db", "lost", "duplicated", "clean errors", "unclean errors",
                   "refused", "dropped", "slowest s", "stored"):  # fmt: skip
        table.add_column(column, justify="left" if column in ("fault", "db") else "right")
    for r in rows:
        if "skipped" in r:
            table.add_row(r["fault"], r["db"], f"skipped: {r['skipped']}", *[""] * 7)
            continue
        table.add_row(r["fault"], r["db"], str(r["lost"]), str(r["duplicated"]),
                      str(r["clean_errors"]), str(r["unclean_errors"]), str(r["refused"]),
                      str(r["dropped"]),
                      f"{r['slowest_answer_s']:.1f}", f"{r['stored']:,}")  # fmt: skip
    console.print(table)
    report = {"run": run_record(vars(args)), "rows": rows}
    console.print(f"wrote {write_report(args.out, report)}")


if __name__ == "__main__":
    main()
