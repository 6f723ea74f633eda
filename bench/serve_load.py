"""Load test of a real ``agora serve``: feed reads mixed with event writes, 100k items, 10k users.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/serve_load.py [--seconds 30] [--workers 1]

With no arguments it builds (once, cached under ``--workdir``) a synthetic community scaled from
real statistics, trains ``trending`` and ``als`` with ``agora train``, starts ``agora serve`` on a
free 127.0.0.1 port, warms it up, then runs ``--concurrency`` clients for ``--seconds``: each
request is a feed page (``GET /users/{u}/feed?n=20``, 90%; the next page of the same session
half of the time) or one event (``POST /events``, 10%). Prints throughput and p50/p95/p99 and
writes bench/results/serve_load.json (``throughput_rps``, ``p50_ms``, ``p95_ms``, ``p99_ms``,
``errors``, and the same per request kind). ``--profile`` also profiles ``build_feed`` in this
process on the same store (where the time goes) into bench/results/serve_profile.txt.

How the community is scaled from ml1m-general's train split (6,033 users x 3,123 items):
* item popularity: each of the 100,000 items draws its weight from the empirical ML-1M item
  popularity distribution (with multiplicative jitter), so the long tail keeps its shape;
* user activity: each of the 10,000 users draws an event count from the empirical ML-1M user
  activity distribution (capped at 400) and picks items by the item weights;
* tags: 1-3 ML-1M genres per item, drawn by genre frequency; authors: 5,000 creators with
  Zipf(1.3) sized catalogues; item dates spread over 60 days (2% in the last 3 days);
* follows: each user follows a number of users drawn from the LastFM friends degree
  distribution (lastfm-social social.tsv).
The fixture is bulk-inserted with SQLAlchemy core after the normal migrations (building it is
not what is measured); everything after that goes through the real CLI and HTTP API.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import socket
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import httpx  # noqa: E402
import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402
from _record import environment, run_record  # noqa: E402
from quality import BENCHMARKS, RESULTS, ml1m_movies  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402
from sqlalchemy import insert  # noqa: E402

from agora.db.engine import make_engine, migrate  # noqa: E402
from agora.db.tables import Event, Item, SocialEdge, User  # noqa: E402
from agora.evaluation.splits import load_split  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
KEY = "load-test-key"
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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_command(port: int, workers: int) -> list[str]:
    return ["serve", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]


def start_server(env: dict[str, str], port: int, workers: int) -> subprocess.Popen:
    proc = subprocess.Popen(
        [str(BIN / "agora"), *server_command(port, workers)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code in (200, 503):
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"server did not start: {proc.stderr.read().decode()[-2000:]}")


class Connection:
    """One keep-alive HTTP/1.1 connection speaking just enough HTTP for this server: a lean
    client, so the load generator (on the same two cores) takes little of the server's CPU."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes, bytes]:
        """(status, header block, body) of one request on this connection."""
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\n"
            f"Authorization: Bearer {KEY}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        self.writer.write(head.encode() + body)
        header = await self.reader.readuntil(b"\r\n\r\n")
        status = int(header[9:12])
        length = CONTENT_LENGTH.search(header)
        data = await self.reader.readexactly(int(length.group(1))) if length else b""
        return status, header, data

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


CONTENT_LENGTH = re.compile(rb"(?i)\r\ncontent-length: *(\d+)")
NEXT_CURSOR = re.compile(rb'"next_cursor":"([^"]+)"')
CACHE_MISS = b"x-feed-cache: miss"
#: Request kinds reported: a first page (ranked: the uncached path), a next page served from the
#: session's prefetched ranking (the cached path), a next page that had to be ranked (its
#: prefetch ran out or the user's state changed), and an event write.
KINDS = ("first_page", "next_page_cached", "next_page_ranked", "event")


async def run_load(
    base: str, users: int, items: int, seconds: float, concurrency: int, seed: int
) -> dict[str, list]:
    """Closed-loop clients; returns per kind the latencies (ms) and the error count."""
    host, port = base.removeprefix("http://").split(":")
    out: dict[str, list] = {kind: [] for kind in (*KINDS, "errors")}
    stop = time.perf_counter() + seconds

    async def client(worker: int) -> None:
        rng = np.random.default_rng(seed + worker)
        cursors: dict[str, str] = {}
        conn = Connection(host, int(port))
        n = 0
        try:
            while time.perf_counter() < stop:
                user = f"u{int(rng.integers(0, users))}"
                n += 1
                if rng.random() < 0.1:
                    kind = "event"
                    item = f"i{int(rng.integers(0, items))}"
                    body = {"event_id": f"load-{worker}-{n}-{seed}", "user_id": user,
                            "item_id": item, "type": "like"}  # fmt: skip
                    t0 = time.perf_counter()
                    status, _, data = await conn.request(
                        "POST", "/events", json.dumps(body).encode()
                    )
                else:
                    path = f"/users/{user}/feed?n=20"
                    kind = "first_page"
                    if cursors and rng.random() < 0.5:
                        user, cursor = cursors.popitem()
                        path = f"/users/{user}/feed?n=20&cursor={cursor}"
                        kind = "next_page_cached"
                    t0 = time.perf_counter()
                    status, header, data = await conn.request("GET", path)
                    if status == 200:
                        cursors[user] = NEXT_CURSOR.search(data).group(1).decode()
                        if kind == "next_page_cached" and CACHE_MISS in header:
                            kind = "next_page_ranked"
                ms = (time.perf_counter() - t0) * 1000
                if status >= 400:
                    out["errors"].append(f"{kind} {status} {data[:200]!r}")
                else:
                    out[kind].append(ms)
        finally:
            conn.close()

    await asyncio.gather(*(client(w) for w in range(concurrency)))
    return out


def summary(ms: list[float], seconds: float) -> dict[str, float]:
    if not ms:
        return {"count": 0}
    p50, p95, p99 = np.percentile(ms, [50, 95, 99])
    return {
        "count": len(ms),
        "rps": round(len(ms) / seconds, 1),
        "p50_ms": round(float(p50), 2),
        "p95_ms": round(float(p95), 2),
        "p99_ms": round(float(p99), 2),
    }


def profile_feed(work: Path, users: int, requests: int = 200) -> str:
    """cProfile of ``build_feed`` in this process against the same store and models: where a
    feed request's time goes, without HTTP (top functions by cumulative time)."""
    import cProfile
    import io
    import pstats

    from agora.config import Settings
    from agora.db.engine import session_factory
    from agora.feed.cache import FeedCache
    from agora.feed.service import build_feed
    from agora.serving.service import ModelStore

    settings = Settings(data_dir=work)
    engine = make_engine(settings.resolved_database_url)
    sessions = session_factory(engine)
    models = ModelStore(settings.model_dir)
    models.reload()
    models.warm()
    cache = FeedCache()
    rng = np.random.default_rng(3)

    def one() -> None:
        with sessions() as session:
            user = f"u{int(rng.integers(0, users))}"
            now = datetime.now(UTC)
            build_feed(session, models, user, 20, None, settings.feed, settings.event_weights,
                       now, cache=cache)  # fmt: skip
            session.rollback()

    for _ in range(20):
        one()  # catalogue, item index
    profiler = cProfile.Profile()
    t0 = time.perf_counter()
    profiler.enable()
    for _ in range(requests):
        one()
    profiler.disable()
    per = (time.perf_counter() - t0) / requests * 1000
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(30)
    engine.dispose()
    return (
        f"first feed pages, {requests} random users, {per:.1f} ms each under cProfile\n"
        + out.getvalue()
    )


def main() -> None:
    ap = argparse.ArgumentParser(description="Mixed feed/event load against agora serve.")
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--workers", type=int, default=1, help="agora serve --workers")
    ap.add_argument("--profile", action="store_true", help="also profile build_feed in-process")
    ap.add_argument("--users", type=int, default=10_000)
    ap.add_argument("--items", type=int, default=100_000)
    ap.add_argument("--workdir", default="/tmp/agora-serve-load")
    ap.add_argument("--out", default=str(RESULTS / "serve_load.json"))
    args = ap.parse_args()
    work = Path(args.workdir)
    db = work / "agora.db"
    env = {**os.environ, "AGORA_DATA_DIR": str(work), "AGORA_API_KEY": KEY,
           "AGORA_MODELS": '["trending", "als"]', "OPENBLAS_NUM_THREADS": "1"}  # fmt: skip
    if not db.exists():
        work.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        sizes = build_community(f"sqlite:///{db}", args.users, args.items)
        console.print(f"built {sizes} in {time.perf_counter() - t0:.0f} s")
        t0 = time.perf_counter()
        subprocess.run([str(BIN / "agora"), "train", "--no-validate"], env=env, check=True)
        console.print(f"trained in {time.perf_counter() - t0:.0f} s")
    port = free_port()
    server = start_server(env, port, args.workers)
    base = f"http://127.0.0.1:{port}"
    try:
        asyncio.run(run_load(base, args.users, args.items, 5.0, 8, seed=1))  # warm-up: models load
        result = asyncio.run(
            run_load(base, args.users, args.items, args.seconds, args.concurrency, seed=2)
        )
    finally:
        server.terminate()
        server.wait(timeout=30)
    all_ms = [ms for kind in KINDS for ms in result[kind]]
    report = {
        **summary(all_ms, args.seconds),
        "throughput_rps": round(len(all_ms) / args.seconds, 1),
        "errors": len(result["errors"]),
        "error_examples": result["errors"][:5],
        "by_kind": {k: summary(result[k], args.seconds) for k in KINDS},
        "seconds": args.seconds,
        "concurrency": args.concurrency,
        "users": args.users,
        "items": args.items,
        "run": run_record(
            {
                **vars(args),
                "server_command": ["agora", *server_command(port, args.workers)],
                "server_env": environment(env),
                "database": "SQLite (WAL)",
            }
        ),
    }
    table = Table(
        title=f"{args.seconds:.0f} s, {args.concurrency} clients, {args.workers} worker(s)"
    )
    for col in ["kind", "count", "rps", "p50 ms", "p95 ms", "p99 ms"]:
        table.add_column(col)
    for kind, s in [("all", report), *report["by_kind"].items()]:
        table.add_row(
            kind, *(str(s.get(c, "")) for c in ("count", "rps", "p50_ms", "p95_ms", "p99_ms"))
        )  # noqa: E501
    console.print(table)
    console.print(f"errors: {report['errors']}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1))
    console.print(f"wrote {out}")
    if args.profile:
        text = profile_feed(work, args.users)
        out.with_name("serve_profile.txt").write_text(text)
        console.print(text[:3000])


if __name__ == "__main__":
    main()
