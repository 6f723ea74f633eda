"""CPU per feed ranking: :func:`agora.feed.online.rank_page` and the re-ranker inside it, this
checkout beside an older revision, on the bench community's real candidates.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/rank_cost.py [--users 300] [--rounds 8] \
        [--baseline REV] [--workdir /tmp/agora-rank-cost]

Each arm (this checkout; with ``--baseline REV`` also revision REV, a ``git worktree`` of it
under ``--workdir``) runs in a subprocess with its own source tree and loads, read-only, from
bench/serve_load.py's SQLite community (``--source``: 100k items, 15k users, every user's
candidates ready) what ``agora.feed.online.serve`` holds before it ranks a first page: the
catalogue snapshot, ``--users`` random active users' states (as read without writing: no
experiment arms), their ready records and the shared one, the ``topics`` and ``fresh`` sources
(one seeded draw per user) and the model's known items. It then times ``rank_page`` with the
arguments ``_rank`` passes (page 1, ``n=20``, the pages ahead), and ``rerank`` alone with the
arguments that arm's ``rank_page`` passed it, in CPU time (``time.process_time``) per call.
The arms take turns, one round over all users each (the order swapped every round), so both
see the same machine load. Both rank at the same instant over the same inputs, and their
pages (positions, sources, scores) are compared: any difference is reported. (The community's
users hide, mute, follow and dismiss nothing: those filters and boosts are not exercised.)

Prints a table (per arm: mean and p50 CPU ms per ``rank_page`` and per ``rerank`` call, and the
ratio to the baseline) and writes bench/results/rank_cost.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

REPO = Path(__file__).resolve().parents[1]
SOURCE = Path("/tmp/agora-serve-load/sqlite")
RESULTS = REPO / "bench" / "results"
PAGE = 20


# -- an arm (subprocess, its own source tree on PYTHONPATH) ---------------------------------
def read_only_sessions(db: Path) -> Any:
    """Sessions on the SQLite file opened read-only (the bench community is never written)."""
    from sqlalchemy import DateTime, create_engine
    from sqlalchemy.orm import sessionmaker

    from agora.db.engine import UtcSqliteDateTime

    uri = f"file:{db}?mode=ro"
    engine = create_engine(
        "sqlite://", creator=lambda: sqlite3.connect(uri, uri=True, check_same_thread=False)
    )
    engine.dialect.colspecs = {**engine.dialect.colspecs, DateTime: UtcSqliteDateTime}
    return sessionmaker(bind=engine)


def load_inputs(source: Path, users: list[str], stamp: float) -> list[tuple[str, tuple, dict]]:
    """Per user holding a ready record: ``rank_page``'s arguments as ``_rank`` builds them."""
    import numpy as np

    from agora.config import FeedConfig, Settings
    from agora.feed import online, sources
    from agora.feed.cache import FeedCache
    from agora.feed.candidates import EVERYONE, model_stamp
    from agora.feed.state import read_state
    from agora.feed.store import TableCandidates
    from agora.serving.service import ModelStore

    sessions = read_only_sessions(source / "agora.db")
    models = ModelStore(source / "models")
    models.reload()
    defaults, weights = FeedConfig(), Settings().event_weights
    cache = FeedCache(background=False, store=TableCandidates(sessions), sessions=sessions)
    cache.ready.on_want = lambda pk: None  # a stale record is served; nobody is queued
    stamp_models = model_stamp(models)
    k = defaults.candidates_per_source
    inputs = []
    with sessions() as session:
        snapshot = cache.catalogue.get(session)
        everyone, _ = cache.ready.find(EVERYONE, -1, stamp_models, snapshot)
        if everyone is None:
            raise SystemExit(f"no shared record in {source}: run agora worker --once there")
        recent = sources.recent_items(snapshot, stamp, k)
        fresh = recent[snapshot.created[recent] >= stamp - defaults.fresh_days * 86400.0]
        shown, engaged = online.fresh_stats(session, cache, snapshot, fresh, weights)
        for i, user_id in enumerate(users):
            user = read_state(session, user_id)
            if user is None:
                continue
            held, _ = cache.ready.find(user.pk, user.events, stamp_models, snapshot)
            if held is None:
                continue
            ctl = online.effective_controls(user, defaults)
            rng = np.random.default_rng(i)
            extra = {
                "topics": online.topic_candidates(snapshot, recent, ctl.followed_tags, k),
                "fresh": online.fresh_candidates(
                    fresh, shown, engaged, defaults.exploration_budget, rng, k
                ),
            }
            args = (
                snapshot, user, held, everyone, extra,
                lambda name, s=snapshot: cache.known.mask(models, name, s),
                ctl, defaults, np.empty(0, np.int64), np.empty(0, np.int64), PAGE, stamp,
            )  # fmt: skip
            inputs.append((user_id, args, {"ahead": 1 + online.PAGES_AHEAD}))
    return inputs


def arm_main() -> None:
    """Load the inputs, say how many, then answer the parent's commands line by line:
    ``round`` (time every user once), ``pages`` (the ranked pages), ``quit``."""
    from agora.feed import online

    spec = json.loads(sys.stdin.readline())
    inputs = load_inputs(Path(spec["source"]), spec["users"], spec["stamp"])
    reranks: list[tuple[tuple, dict]] = []
    real_rerank = online.rerank

    def recording(*args: Any, **kwargs: Any) -> Any:
        reranks.append((args, kwargs))
        return real_rerank(*args, **kwargs)

    online.rerank = recording  # what this arm's rank_page hands the re-ranker, once
    pages = [online.rank_page(*args, **kw) for _, args, kw in inputs]
    online.rerank = real_rerank
    reply({"users": [u for u, _, _ in inputs]})
    for line in sys.stdin:
        command = line.strip()
        if command == "round":
            rank_ms, rerank_ms = [], []
            for _, args, kw in inputs:
                started = time.process_time()
                online.rank_page(*args, **kw)
                rank_ms.append((time.process_time() - started) * 1000)
            for args, kw in reranks:
                started = time.process_time()
                real_rerank(*args, **kw)
                rerank_ms.append((time.process_time() - started) * 1000)
            reply({"rank_page": rank_ms, "rerank": rerank_ms})
        elif command == "pages":
            reply(
                [
                    [p.positions.tolist(), p.sources, [float(s).hex() for s in p.scores]]
                    for p in pages
                ]
            )
        else:
            return


def reply(value: Any) -> None:
    sys.stdout.write(json.dumps(value) + "\n")
    sys.stdout.flush()


# -- the parent ------------------------------------------------------------------------------
class Arm:
    """One source tree's subprocess."""

    def __init__(self, name: str, revision: str, src: Path, spec: dict):
        self.name, self.revision = name, revision
        env = {**os.environ, "PYTHONPATH": str(src), "OPENBLAS_NUM_THREADS": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--arm"],
            env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        self.send(json.dumps(spec))
        self.rank_ms: list[float] = []
        self.rerank_ms: list[float] = []

    def send(self, line: str) -> None:
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def ask(self, command: str) -> Any:
        self.send(command)
        return self.answer()

    def answer(self) -> Any:
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit(f"{self.name}: the subprocess ended (see its errors above)")
        return json.loads(line)

    def ready(self) -> list[str]:
        """The users it ranks, once it has loaded them."""
        return self.answer()["users"]

    def close(self) -> None:
        self.send("quit")
        self.proc.wait(timeout=60)


def figures(ms: list[float]) -> dict:
    return {
        "calls": len(ms),
        "mean_ms": round(statistics.fmean(ms), 3),
        "p50_ms": round(statistics.median(ms), 3),
        "p95_ms": round(sorted(ms)[int(0.95 * (len(ms) - 1))], 3),
    }


def commit_of(tree: Path) -> str:
    return subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=tree, capture_output=True, text=True, check=True
    ).stdout.strip()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--users", type=int, default=300, help="random active users ranked")
    ap.add_argument("--rounds", type=int, default=8, help="timed rounds per arm (turns taken)")
    ap.add_argument("--active", type=int, default=10_000, help="serve_load's active users")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--baseline", help="a git revision to time beside this checkout")
    ap.add_argument("--source", type=Path, default=SOURCE, help="the community (read only)")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/agora-rank-cost"))
    ap.add_argument("--out", type=Path, default=RESULTS / "rank_cost.json")
    ap.add_argument("--arm", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.arm:
        arm_main()
        return

    sys.path.insert(0, str(REPO / "bench"))
    from _record import baseline_tree, run_record, write_report
    from rich.console import Console
    from rich.table import Table

    if not (args.source / "agora.db").exists():
        raise SystemExit(f"no bench community in {args.source}: run bench/serve_load.py first")
    users = [f"u{i}" for i in random.Random(args.seed).sample(range(args.active), args.users)]
    spec = {"source": str(args.source), "users": users, "stamp": time.time()}
    trees = []
    if args.baseline:
        args.workdir.mkdir(parents=True, exist_ok=True)
        tree = baseline_tree(args.baseline, args.workdir)
        trees.append((f"baseline {args.baseline}", commit_of(tree), tree / "src"))
    trees.append(("this checkout", commit_of(REPO), REPO / "src"))
    arms = [Arm(name, revision, src, spec) for name, revision, src in trees]
    ranked = {arm.name: arm.ready() for arm in arms}
    for turn in range(args.rounds):
        for arm in arms[:: 1 if turn % 2 == 0 else -1]:
            times = arm.ask("round")
            arm.rank_ms += times["rank_page"]
            arm.rerank_ms += times["rerank"]
    pages = {arm.name: arm.ask("pages") for arm in arms}
    for arm in arms:
        arm.close()

    first = arms[0].name
    if any(ranked[arm.name] != ranked[first] for arm in arms):
        raise SystemExit("the arms ranked different users (their loaders disagree)")
    differ = [
        user
        for arm in arms[1:]
        for user, mine, theirs in zip(ranked[first], pages[first], pages[arm.name], strict=True)
        if mine != theirs
    ]
    cells = [
        {
            "arm": arm.name,
            "revision": arm.revision,
            "rank_page": figures(arm.rank_ms),
            "rerank": figures(arm.rerank_ms),
        }
        for arm in arms
    ]
    table = Table(title=f"CPU per call, {len(ranked[first])} users x {args.rounds} rounds (ms)")
    for column in ("arm", "revision", "rank_page mean", "p50", "p95", "rerank mean", "p50", "p95"):
        table.add_column(column, justify="left" if column in ("arm", "revision") else "right")
    for cell in cells:
        row = [cell["arm"], cell["revision"][:12]]
        for part in ("rank_page", "rerank"):
            row += [f"{cell[part][k]:.3f}" for k in ("mean_ms", "p50_ms", "p95_ms")]
        table.add_row(*row)
    console = Console(width=140)
    console.print(table)
    if len(cells) > 1:
        for part in ("rank_page", "rerank"):
            ratio = cells[-1][part]["mean_ms"] / cells[0][part]["mean_ms"]
            console.print(f"{part}: this checkout takes {ratio:.3f} x the baseline's CPU")
        console.print(
            f"pages identical for all {len(ranked[first])} users"
            if not differ
            else f"pages DIFFER for {len(differ)} users, e.g. {differ[:5]}"
        )
    report = {
        "users": len(ranked[first]),
        "rounds": args.rounds,
        "cells": cells,
        "pages_identical": not differ if len(cells) > 1 else None,
        "run": run_record(vars(args)),
    }
    console.print(f"wrote {write_report(args.out, report)}")


if __name__ == "__main__":
    main()
