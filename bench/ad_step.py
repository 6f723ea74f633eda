"""Cost of the feed's ad step per page (issue 12: at most 1 ms), this checkout beside an older
revision, on the bench community with a handful of running campaigns.

    OPENBLAS_NUM_THREADS=1 PYTHONPATH=src .venv/bin/python bench/ad_step.py \
        [--pages 2000] [--campaigns 6] [--baseline REV] [--workdir /tmp/agora-ad-step]

1. The store: a copy of bench/serve_load.py's SQLite community (100k items, 15k users, 1.05M
   events; ``--source``, never written), or, when that is not built, a smaller one made by its
   ``build_community`` (``--users``, ``--items``). Into the copy go ``--campaigns`` running
   campaigns (2-3 creatives each; every other one targets a genre tag; budgets that never run
   out, so every page auctions) and 14 days of their ad history (``--history`` impressions per
   campaign, 2% of them clicked), so the CTRs the old code counts per page are realistic.
2. ``--pages`` pages for random users (active ones, drawn with replacement, one seed), each a
   page of 20 random items with their tags (what the ad step reads of a page).
3. Each arm runs in a subprocess on its own copy of that store, with the market's default
   settings (holdout 10%, pacing on): this checkout times what ``GET /users/{id}/feed`` spends
   on ads (the running creatives for the organic filter, then ``feed.views._ads``: its
   transaction, the user's in-memory feed state, ``MarketCache.serve``), with the feed cache's
   state tail and the ad book's thread running as in ``agora serve``, after the page itself
   loaded the user's state (untimed). ``--baseline REV`` times the same step of revision REV
   (a ``git worktree`` of it under ``--workdir``, imported in the subprocess): the running
   creatives' query, then ``serve_ads`` in a write transaction and a savepoint, as its feed
   view did. The first ``--warmup`` pages of each arm are not counted.

Prints one table (per arm: wall-clock p50/p95/p99/mean ms, pages/s = 1000 / mean, the timed
thread's CPU ms at p50 and p99 (what the step costs whatever else runs on the machine), ads per
page) and writes bench/results/ad_step.json (``arms``: name, revision, figures; ``run``: the run
record).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
SOURCE = Path("/tmp/agora-serve-load/sqlite/agora.db")
PAGE = 20
TARGET_MS = 1.0


# -- the store -------------------------------------------------------------------------------
def prepared_store(args: argparse.Namespace) -> Path:
    """The community with campaigns and their history, made once per settings under workdir."""
    marker = {
        "source": str(args.source),
        "campaigns": args.campaigns,
        "history": args.history,
        "users": args.users,
        "items": args.items,
    }
    path = args.workdir / "prepared.db"
    done = args.workdir / "prepared.json"
    if path.exists() and done.exists() and json.loads(done.read_text()) == marker:
        return path
    path.unlink(missing_ok=True)
    if args.source.exists():
        shutil.copyfile(args.source, path)
    else:
        from serve_load import build_community

        from agora.db.engine import make_engine, migrate

        print(f"{args.source} is not built: making a smaller community ({args.users} users)")
        engine = make_engine(f"sqlite:///{path}")
        migrate(engine)
        engine.dispose()
        build_community(f"sqlite:///{path}", args.users, args.items)
    add_campaigns(path, args.campaigns, args.history)
    done.write_text(json.dumps(marker))
    return path


def add_campaigns(path: Path, n: int, history: int) -> None:
    """``n`` running campaigns on random items, with ``history`` impressions each over the
    last 14 days (2% clicked)."""
    from sqlalchemy import func, select

    from agora.db.engine import make_engine, migrate, session_factory, transaction
    from agora.db.tables import Item, User
    from agora.market import service
    from agora.market.models import AdClick, AdImpression
    from agora.market.schemas import CampaignIn

    rng = np.random.default_rng(1)
    engine = make_engine(f"sqlite:///{path}")
    migrate(engine)
    sessions = session_factory(engine)
    now = datetime.now(UTC)
    with transaction(sessions) as session:
        n_items = session.scalar(select(func.max(Item.id)))
        picks = [int(pk) for pk in rng.choice(np.arange(1, n_items + 1), 3 * n, replace=False)]
        items = dict(
            session.execute(select(Item.id, Item.external_id).where(Item.id.in_(picks))).all()
        )
        tags = dict(session.execute(select(Item.id, Item.tags).where(Item.id.in_(picks))).all())
        users = list(session.scalars(select(User.id).limit(20_000)))
        for k in range(n):
            mine = [pk for pk in picks[3 * k : 3 * k + 2 + k % 2] if pk in items]
            target = sorted({t for pk in mine for t in tags[pk] or []})[:1] if k % 2 else []
            spec = CampaignIn(
                campaign_id=f"bench-{k}",
                advertiser=f"Advertiser {k}",
                items=[items[pk] for pk in mine],
                bid=round(0.2 + 0.3 * k, 2),
                daily_budget=1e7,
                frequency_cap=1000,
                target_tags=target,
            )
            row, _ = service.create_campaign(session, spec, now - timedelta(days=15))
            rows = []
            for j in range(history):
                served = now - timedelta(seconds=float(rng.uniform(3600, 14 * 86400)))
                rows.append(
                    {
                        "campaign_id": row.id,
                        "user_id": int(users[j % len(users)]),
                        "item_id": mine[j % len(mine)],
                        "day": served.date(),
                        "nth": 1 + j // len(users),
                        "position": 3,
                        "price": 0.1,
                        "ctr": 0.02,
                        "served": served,
                    }
                )
            session.execute(AdImpression.__table__.insert(), rows)
            ids = session.execute(
                select(AdImpression.id, AdImpression.user_id, AdImpression.served).where(
                    AdImpression.campaign_id == row.id
                )
            ).all()
            clicked = [ids[i] for i in rng.choice(len(ids), len(ids) // 50, replace=False)]
            session.execute(
                AdClick.__table__.insert(),
                [
                    {
                        "impression_id": i,
                        "campaign_id": row.id,
                        "user_id": u,
                        "cost": 0.1,
                        "day": s.date(),
                        "clicked": s,
                    }
                    for i, u, s in clicked
                ],
            )
    engine.dispose()


def pages(path: Path, n: int, seed: int) -> list[dict]:
    """``n`` (user, page of 20 (item, tags)) for random active users."""
    from sqlalchemy import func, select

    from agora.db.engine import make_engine
    from agora.db.tables import Event, Item, User

    rng = np.random.default_rng(seed)
    engine = make_engine(f"sqlite:///{path}")
    with engine.connect() as db:
        users = list(
            db.execute(
                select(User.external_id).where(
                    User.id.in_(select(Event.user_id).group_by(Event.user_id))
                )
            ).scalars()
        )
        top = db.scalar(select(func.max(Item.id)))
        out = []
        for _ in range(n):
            pks = [int(pk) for pk in rng.choice(np.arange(1, top + 1), PAGE, replace=False)]
            rows = db.execute(select(Item.external_id, Item.tags).where(Item.id.in_(pks))).all()
            out.append(
                {
                    "user": users[int(rng.integers(len(users)))],
                    "items": [[item, list(tags or [])] for item, tags in rows],
                }
            )
    engine.dispose()
    return out


# -- the arms (each in a subprocess) ---------------------------------------------------------
def time_new(url: str, work: list[dict]) -> tuple[list[tuple[float, float]], list[int]]:
    """This checkout: what GET /users/{id}/feed spends on ads."""
    from agora.config import Settings
    from agora.db.engine import make_engine, session_factory
    from agora.feed.cache import FeedCache
    from agora.feed.service import FeedItem, FeedPage
    from agora.feed.views import _ads
    from agora.market.config import market_config
    from agora.market.serving import MarketCache

    engine = make_engine(url)
    sessions = session_factory(engine)
    settings = Settings()
    cache = FeedCache(sessions=sessions)
    cache.states.start()
    market = MarketCache(sessions, market_config(settings))
    market.start()
    times, ads = [], []
    try:
        for spec in work:
            now = datetime.now(UTC)
            page = FeedPage(
                user_id=spec["user"],
                session="bench",
                page=1,
                items=[
                    FeedItem(item_id=i, score=0.0, source="collaborative", reason="", tags=t)
                    for i, t in spec["items"]
                ],
                next_cursor="bench.2",
                sources={"collaborative": len(spec["items"])},
                model=None,
            )
            with sessions() as read:  # what the page itself loaded (not the ad step)
                cache.catalogue.get(read)
                cache.states.get(read, spec["user"], now)
            start, cpu = time.perf_counter(), time.thread_time()
            with sessions() as session:
                running = market.running_creatives(session, now)
            placed = _ads(sessions, market, cache, page, now) if running else []
            times.append((time.perf_counter() - start, time.thread_time() - cpu))
            ads.append(len(placed))
    finally:
        market.stop()
        cache.states.stop()
        engine.dispose()
    return times, ads


def time_old(url: str, work: list[dict]) -> tuple[list[tuple[float, float]], list[int]]:
    """An older revision: its feed view's ad step (running creatives, then serve_ads in a write
    transaction and a savepoint)."""
    from agora.config import Settings
    from agora.db.engine import make_engine, session_factory, transaction
    from agora.market import service as market

    engine = make_engine(url)
    sessions = session_factory(engine)
    settings = Settings()
    times, ads = [], []
    for spec in work:
        now = datetime.now(UTC)
        organic = [(i, t) for i, t in spec["items"]]
        start, cpu = time.perf_counter(), time.thread_time()
        with transaction(sessions) as session:
            running = market.running_creatives(session, now)
        placed = []
        if running:
            with transaction(sessions, writes=True) as session, session.begin_nested():
                placed = market.serve_ads(session, spec["user"], organic, settings.market, now)
        times.append((time.perf_counter() - start, time.thread_time() - cpu))
        ads.append(len(placed))
    engine.dispose()
    return times, ads


def arm_main(arm: str, url: str, work_path: Path, out: Path) -> None:
    work = json.loads(work_path.read_text())
    times, ads = (time_new if arm == "new" else time_old)(url, work)
    out.write_text(json.dumps({"seconds": times, "ads": ads}))


# -- the parent ------------------------------------------------------------------------------
def figures(seconds: list[list[float]], ads: list[int], warmup: int) -> dict:
    """Wall-clock percentiles, and the CPU time of the timed thread (what the step costs the
    machine, whatever else runs on it)."""
    ms = np.asarray(seconds[warmup:]) * 1000
    wall, cpu = ms[:, 0], ms[:, 1]
    return {
        "pages": int(wall.size),
        "p50_ms": round(float(np.percentile(wall, 50)), 3),
        "p95_ms": round(float(np.percentile(wall, 95)), 3),
        "p99_ms": round(float(np.percentile(wall, 99)), 3),
        "mean_ms": round(float(wall.mean()), 3),
        "pages_per_s": round(float(1000 / wall.mean()), 1),
        "cpu_p50_ms": round(float(np.percentile(cpu, 50)), 3),
        "cpu_p99_ms": round(float(np.percentile(cpu, 99)), 3),
        "ads_per_page": round(float(np.mean(ads[warmup:])), 3),
    }


def run_arm(arm: str, src: Path, store: Path, work_path: Path, args: argparse.Namespace) -> dict:
    """Copy the prepared store, run one arm in a subprocess on it, return its figures."""
    db = args.workdir / f"{arm}.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    shutil.copyfile(store, db)
    out = args.workdir / f"{arm}.json"
    env = {**os.environ, "PYTHONPATH": str(src), "OPENBLAS_NUM_THREADS": "1"}
    subprocess.run(
        [
            sys.executable,
            str(Path(__file__).resolve()),
            "--arm",
            "new" if src == REPO / "src" else "old",
            "--url",
            f"sqlite:///{db}",
            "--work",
            str(work_path),
            "--out",
            str(out),
        ],
        env=env,
        check=True,
        cwd=str(args.workdir),
    )
    result = json.loads(out.read_text())
    return figures(result["seconds"], result["ads"], args.warmup)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--campaigns", type=int, default=6)
    parser.add_argument("--history", type=int, default=20_000)
    parser.add_argument("--baseline", help="a git revision to time beside this checkout")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--source", type=Path, default=SOURCE)
    parser.add_argument("--users", type=int, default=3000, help="without --source's store")
    parser.add_argument("--items", type=int, default=20_000, help="without --source's store")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/agora-ad-step"))
    parser.add_argument("--out-json", type=Path, default=REPO / "bench/results/ad_step.json")
    parser.add_argument("--arm", choices=["new", "old"], help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.arm:
        arm_main(args.arm, args.url, args.work, args.out)
        return

    from _record import baseline_tree, run_record
    from rich.console import Console
    from rich.table import Table

    args.workdir.mkdir(parents=True, exist_ok=True)
    store = prepared_store(args)
    work_path = args.workdir / "pages.json"
    work_path.write_text(json.dumps(pages(store, args.pages + args.warmup, args.seed)))

    def commit_of(tree: Path) -> str:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=tree, capture_output=True, text=True, check=True
        ).stdout.strip()

    head = commit_of(REPO)
    arms = []
    if args.baseline:
        tree = baseline_tree(args.baseline, args.workdir)
        src, commit = tree / "src", commit_of(tree)
        arms.append({"name": f"baseline {args.baseline}", "revision": commit, "src": src})
    arms.append({"name": "this checkout", "revision": head, "src": REPO / "src"})
    for arm in arms:
        print(f"timing {arm['name']} ({arm['revision'][:12]}) ...", flush=True)
        arm["figures"] = run_arm(arm["name"], arm["src"], store, work_path, args)

    table = Table(title=f"ad step per feed page ({args.pages} pages, {args.campaigns} campaigns)")
    columns = ("arm", "revision", "p50 ms", "p95 ms", "p99 ms", "mean ms", "pages/s")
    for col in (*columns, "cpu p50", "cpu p99", "ads/page"):
        table.add_column(col, justify="left" if col in ("arm", "revision") else "right")
    for arm in arms:
        f = arm["figures"]
        table.add_row(
            arm["name"],
            arm["revision"][:12],
            *(f"{f[k]:.3f}" for k in ("p50_ms", "p95_ms", "p99_ms", "mean_ms")),
            f"{f['pages_per_s']:.0f}",
            f"{f['cpu_p50_ms']:.3f}",
            f"{f['cpu_p99_ms']:.3f}",
            f"{f['ads_per_page']:.2f}",
        )
    Console(width=150).print(table)
    new = arms[-1]["figures"]
    met = new["p50_ms"] <= TARGET_MS and new["p99_ms"] <= TARGET_MS
    print(f"target p50 and p99 <= {TARGET_MS} ms: {'met' if met else 'NOT met'}")
    args.out_json.parent.mkdir(parents=True, exist_ok=True)
    args.out_json.write_text(
        json.dumps(
            {
                "target_ms": TARGET_MS,
                "target_met": met,
                "arms": [
                    {"name": a["name"], "revision": a["revision"], **a["figures"]} for a in arms
                ],
                "run": run_record(
                    {k: str(v) for k, v in vars(args).items() if k not in ("arm", "url")}
                ),
            },
            indent=1,
        )
        + "\n"
    )
    print(f"wrote {args.out_json}")


if __name__ == "__main__":
    main()
