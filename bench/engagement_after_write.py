"""CPU that engagement (points, badges, trust levels) spends after single-event writes.

    PYTHONPATH=src OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/engagement_after_write.py \
        [--db sqlite postgresql] [--events 300] [--rates 11 50] [--rounds 2] [--baseline REV]

The store is the bench community of bench/serve_load.py (10,000 users + 5,000 creators, 100,000
items, about 1.05M events, engagement caught up). SQLite: ``--source``'s ``agora.db`` is never
written; it is copied once to ``--workdir``. PostgreSQL: the community is built once, by
serve_load's builder, in the bench's own database ``--pg-url`` (dropped first), then replayed.
Each measured run is a fresh process serving the app in process (FastAPI's TestClient,
background jobs off: ``background_seconds=0``; no models) that posts ``--events`` single events
(``POST /events``, 30% likes, 70% views, random users and items, as bench/serve_load.lua does)
one after another at a steady ``--rate`` per second, then waits until engagement counts them
all. Each run is made twice, with the engagement catch-up after writes and without it (the
app's other after-write work kept); the engagement's CPU per event is the difference of the
two processes' CPU time (``time.process_time``, client included in both) over the events. Also
reported: the catch-ups after writes that applied events, and the time from sending an event
to the return of the catch-up that counted it (the lag; its commit follows at once). With
``--baseline REV`` the code of git revision REV (a worktree, see ``_record.baseline_tree``) runs
in the same run, alternating with this checkout's, on the same store. Prints a table and writes
bench/results/engagement_after_write.json.
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
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from _record import REPO, baseline_tree, run_record, write_report  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

RESULTS = REPO / "bench" / "results"
KEY = "engagement-bench-key"
USERS, ITEMS = 10_000, 100_000
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/engage_bench"
console = Console(width=140)


def sqlite_store(source: Path, workdir: Path) -> tuple[Path, str]:
    """The data folder and URL of the bench's own copy of the community's SQLite file (made
    once, reused)."""
    target = workdir / "store"
    if not (target / "agora.db").exists():
        target.mkdir(parents=True, exist_ok=True)
        for name in ("agora.db", "agora.db-wal"):
            if (source / name).exists():
                shutil.copyfile(source / name, target / name)
    return target, f"sqlite:///{target / 'agora.db'}"


def postgres_store(url: str, workdir: Path) -> tuple[Path, str]:
    """The data folder and URL of the community on PostgreSQL: built once in the database of
    ``url`` (dropped and created; never a shared one) by serve_load's builder, engagement
    replayed, and reused while its marker is there."""
    from serve_load import build_community, recreate_database
    from sqlalchemy import create_engine, text

    data = workdir / "postgresql"
    marker = data / "community.json"
    if marker.exists() and json.loads(marker.read_text()).get("database") == url:
        return data, url
    data.mkdir(parents=True, exist_ok=True)
    recreate_database(url)
    started = time.perf_counter()
    sizes = build_community(url, USERS, ITEMS)
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:  # planner statistics, as autovacuum would have them
        conn.execute(text("ANALYZE"))
    engine.dispose()
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "AGORA_DATABASE_URL": url,
           "AGORA_DATA_DIR": str(data)}  # fmt: skip
    subprocess.run([sys.executable, "-m", "agora.cli.main", "engagement", "replay"], env=env,
                   check=True, stdout=subprocess.DEVNULL)  # fmt: skip
    marker.write_text(json.dumps({"database": url, "sizes": sizes}))
    console.print(
        f"built the PostgreSQL community {sizes} in {time.perf_counter() - started:.0f} s"
    )
    return data, url


def one_run(
    store: Path, url: str, rate: float, events: int, engagement: bool, tag: str, seed: int
) -> dict:  # fmt: skip
    """In this process (the code on PYTHONPATH): post the events, wait until counted."""
    from datetime import UTC, datetime

    from fastapi.testclient import TestClient
    from sqlalchemy import select

    from agora.api.app import create_app
    from agora.config import FeedConfig, Settings
    from agora.db.engine import transaction
    from agora.db.tables import Event
    from agora.engagement import ledger
    from agora.engagement.models import EngagementState

    settings = Settings(
        data_dir=store,
        database_url=url,
        api_key=KEY,
        background_seconds=0,
        feed=FeedConfig(refresh_in_serve=False),
    )
    app = create_app(settings)
    sessions = app.state.sessions
    try:
        from agora.engagement.config import engagement_config

        rules = engagement_config(settings)
    except ImportError:  # a baseline revision from before the section moved to its domain
        rules = settings.engagement
    with transaction(sessions) as session:  # what an earlier run left pending: not measured
        ledger.catch_up(session, rules, datetime.now(UTC))
    if not engagement:  # the app's other after-write work stays
        app.state.after_event_writes = app.state.after_event_writes[-1:]
    counted: list[tuple[float, int]] = []  # (a catch-up after writes returned, its cursor)
    apply_after_write = ledger.apply_after_write

    def recorded(session, config, now):  # type: ignore[no-untyped-def]
        done = apply_after_write(session, config, now)
        counted.append((time.monotonic(), session.scalar(select(EngagementState.event_cursor))))
        return done

    ledger.apply_after_write = recorded
    rng = random.Random(seed)
    headers = {"Authorization": f"Bearer {KEY}"}
    sent: dict[str, float] = {}
    with TestClient(app) as client:
        client.get("/health")
        time.sleep(1.0)  # the app's threads settle
        cpu0, wall0 = time.process_time(), time.monotonic()
        for i in range(events):
            time.sleep(max(0.0, wall0 + i / rate - time.monotonic()))
            event_id = f"{tag}-{i}"
            body = {"event_id": event_id, "user_id": f"u{rng.randrange(USERS)}",
                    "item_id": f"i{rng.randrange(ITEMS)}",
                    "type": "like" if rng.random() < 0.3 else "view"}  # fmt: skip
            sent[event_id] = time.monotonic()
            answer = client.post("/events", json=body, headers=headers)
            assert answer.status_code == 201, answer.text
        posted = time.monotonic()
        with sessions() as session:
            ids = dict(session.execute(select(Event.event_id, Event.id).where(
                Event.event_id.in_(list(sent)))).all())  # fmt: skip
        last = max(ids.values())
        deadline = time.monotonic() + 60
        while engagement and not (counted and counted[-1][1] >= last):  # the cursor
            assert time.monotonic() < deadline, "the events were not counted within 60 s"
            time.sleep(0.005)
        cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    lags = []
    if engagement:
        for event_id, pk in ids.items():
            done = next(at for at, cursor in counted if cursor >= pk)
            lags.append((done - sent[event_id]) * 1000)
    lags.sort()
    cursors = [cursor for _, cursor in counted]
    return {
        "cpu_s": round(cpu, 4),
        "wall_s": round(wall, 3),
        "post_s": round(posted - wall0, 3),
        "catch_ups": len(set(cursors)),  # that applied events (cursors only grow)
        "catch_up_calls": len(counted),
        "lag_p50_ms": round(statistics.median(lags), 1) if lags else None,
        "lag_max_ms": round(lags[-1], 1) if lags else None,
    }


def spawn(code: tuple[str, Path, dict[str, str]], store: tuple[Path, str], rate: float,
          args: argparse.Namespace, engagement: bool, tag: str, seed: int) -> dict:  # fmt: skip
    """One measured run in a fresh process on ``code`` (its label, source tree and settings)."""
    _, src, settings = code
    env = {**os.environ, **settings, "PYTHONPATH": f"{src}{os.pathsep}{Path(__file__).parent}"}
    command = [sys.executable, __file__, "--child", json.dumps(
        {"store": str(store[0]), "url": store[1], "rate": rate, "events": args.events,
         "engagement": engagement, "tag": tag, "seed": seed})]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"the run failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def summary(on: list[dict], off: list[dict], events: int) -> dict:
    """Engagement CPU per event (on minus off, over the events) and the other figures."""
    per_round = [(a["cpu_s"] - b["cpu_s"]) / events * 1000 for a, b in zip(on, off, strict=True)]
    return {
        "engagement_cpu_ms_per_event": round(statistics.fmean(per_round), 2),
        "engagement_cpu_ms_per_event_rounds": [round(x, 2) for x in per_round],
        "cpu_ms_per_event_on": round(statistics.fmean(r["cpu_s"] for r in on) / events * 1000, 2),
        "cpu_ms_per_event_off": round(statistics.fmean(r["cpu_s"] for r in off) / events * 1000, 2),
        "catch_ups": round(statistics.fmean(r["catch_ups"] for r in on), 1),
        "rate_achieved": round(events / statistics.fmean(r["post_s"] for r in on), 1),
        "lag_p50_ms": max(r["lag_p50_ms"] for r in on),
        "lag_max_ms": max(r["lag_max_ms"] for r in on),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description="Engagement CPU per event after single writes.")
    ap.add_argument("--db", nargs="+", choices=["sqlite", "postgresql"], default=["sqlite"])
    ap.add_argument("--events", type=int, default=300, help="single-event writes per run")
    ap.add_argument("--rates", nargs="+", type=float, default=[11.0, 50.0], help="events/s")
    ap.add_argument("--rounds", type=int, default=2, help="runs per code, rate and arm")
    ap.add_argument("--baseline", help="also measure the code of this git revision (before/after)")
    ap.add_argument("--no-coalescing", action="store_true",
                    help="also this checkout with engagement_after_write_seconds=0")  # fmt: skip
    ap.add_argument("--source", default="/tmp/agora-serve-load/sqlite",
                    help="the SQLite bench community (read only: copied)")  # fmt: skip
    ap.add_argument("--pg-url", default=PG_URL,
                    help="the bench's own database (dropped, then built)")  # fmt: skip
    ap.add_argument("--workdir", default="/tmp/agora-engagement-bench")
    ap.add_argument("--out", default=str(RESULTS / "engagement_after_write.json"))
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        spec = json.loads(args.child)
        print(json.dumps(one_run(Path(spec.pop("store")), **spec)))
        return
    workdir = Path(args.workdir)
    codes: list[tuple[str, Path, dict[str, str]]] = [("current", REPO / "src", {})]
    if args.no_coalescing:
        codes.append(("current (0 s)", REPO / "src", {"AGORA_ENGAGEMENT_AFTER_WRITE_SECONDS": "0"}))
    if args.baseline:
        codes.insert(0, (args.baseline, baseline_tree(args.baseline, workdir) / "src", {}))
    rows = []
    stamp = int(time.time())
    for db in args.db:
        if db == "sqlite":
            store = sqlite_store(Path(args.source), workdir)
        else:
            store = postgres_store(args.pg_url, workdir)
        runs: dict[tuple[str, float, bool], list[dict]] = {}
        for round_no in range(args.rounds):
            for rate in args.rates:
                for code in codes:
                    for engagement in (True, False):
                        label, number = code[0], codes.index(code)
                        tag = f"eng{stamp}-{db}-{round_no}-{rate:g}-{number}-{int(engagement)}"
                        result = spawn(code, store, rate, args, engagement, tag, seed=round_no)
                        runs.setdefault((label, rate, engagement), []).append(result)
                        arm = "on" if engagement else "off"
                        console.print(f"{db} round {round_no} {rate:g}/s {label} engagement "
                                      f"{arm}: {result}")  # fmt: skip
        rows += [
            {"db": db, "code": code, "rate": rate, "runs": {"on": runs[(code, rate, True)],
             "off": runs[(code, rate, False)]}, **summary(runs[(code, rate, True)],
                                                         runs[(code, rate, False)], args.events)}
            for rate in args.rates
            for code, _, _ in codes
        ]  # fmt: skip
    table = Table(title=f"Engagement after single-event POST /events, {args.events} events per "
                        f"run, {args.rounds} rounds")  # fmt: skip
    for col in ("db", "code", "events/s asked (done)", "engagement CPU ms/event", "catch-ups",
                "CPU ms/event on / off", "lag p50 / max ms"):  # fmt: skip
        table.add_column(col)
    for r in rows:
        table.add_row(r["db"], r["code"], f"{r['rate']:g} ({r['rate_achieved']:g})",
                      f"{r['engagement_cpu_ms_per_event']:.2f}", f"{r['catch_ups']:g}",
                      f"{r['cpu_ms_per_event_on']:.2f} / {r['cpu_ms_per_event_off']:.2f}",
                      f"{r['lag_p50_ms']:g} / {r['lag_max_ms']:g}")  # fmt: skip
    console.print(table)
    report = {"results": rows, "run": run_record(vars(args))}
    console.print(f"wrote {write_report(args.out, report)}")


if __name__ == "__main__":
    main()
