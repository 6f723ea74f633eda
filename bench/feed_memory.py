"""Memory of a real ``agora serve`` under feed traffic: many distinct users' first pages.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/feed_memory.py [--requests 7000] [--users 20000]

Builds (once, cached under ``--workdir``) a generated community: ``--users`` users with 5-30
likes each on 3,000 items (Zipf popularity, 1-3 of 12 tags, 400 authors), trains ``trending``,
``itemknn`` and ``als`` with ``agora train``. Then, for each cache configuration in ``RUNS``, it
starts ``agora serve`` (one worker, SQLite) with that configuration in ``AGORA_FEED``, asks
``--requests`` first pages (``GET /users/{u}/feed?n=20``) of distinct users over 4 keep-alive
connections, and samples the server's resident memory (``VmRSS`` of the process and its
children, from /proc) every ``--every`` requests. The results in bench/results/feed_memory.json
were measured before the offline/online split (then each first page ranked 3 pages and kept 2);
a worker now holds each user's state and ready record (``max_states``) and each browsing
session's shown items (``cache_max_sessions``).

Prints a table, writes bench/results/feed_memory.json (command, git revision, settings and
every sample per run) and bench/results/feed_memory.png (RSS over requests, one line per run).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import httpx  # noqa: E402
import numpy as np  # noqa: E402
from _record import run_record  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402
from sqlalchemy import insert  # noqa: E402

from agora.db.engine import make_engine, migrate  # noqa: E402
from agora.db.tables import Event, Item, User  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
BIN = Path(sys.executable).parent
KEY = "feed-memory-key"
TAGS = [f"topic{t}" for t in range(12)]
CONNECTIONS = 4
console = Console()

#: Cache configurations compared: the previous bounds (20,000 users and sessions, no lifetime
#: in process), this version's defaults, and the defaults with a short lifetime.
RUNS = {
    "count only (previous: 20,000, no TTL)": {
        "cache_max_users": 20_000,
        "cache_max_sessions": 20_000,
        "cache_ttl_seconds": 1e9,
    },
    "defaults (5,000, TTL 600 s)": {},
    "defaults with TTL 30 s": {"cache_ttl_seconds": 30.0},
}


def build_community(db_url: str, n_users: int, n_items: int = 3000, seed: int = 0) -> int:
    """Bulk-insert the generated community; returns the number of events."""
    rng = np.random.default_rng(seed)
    now = datetime.now(UTC)
    engine = make_engine(db_url)
    migrate(engine)
    authors = [f"author{a}" for a in range(400)]
    popularity = 1.0 / np.arange(1, n_items + 1) ** 0.9
    popularity /= popularity.sum()
    with engine.begin() as conn:
        conn.execute(
            insert(User),
            [
                {"external_id": name, "created": now - timedelta(days=90), "attributes": {}}
                for name in [*authors, *(f"u{u}" for u in range(n_users))]
            ],
        )
        pks = dict(conn.execute(User.__table__.select().with_only_columns(
            User.external_id, User.id)).all())  # fmt: skip
        conn.execute(
            insert(Item),
            [
                {
                    "external_id": f"i{i}",
                    "author_id": pks[authors[int(rng.integers(len(authors)))]],
                    "title": f"Generated post {i}",
                    "body": "",
                    "tags": list(rng.choice(TAGS, int(rng.integers(1, 4)), replace=False)),
                    "created": now - timedelta(days=float(rng.uniform(0.1, 60))),
                    "media": {},
                    "attributes": {},
                }
                for i in range(n_items)
            ],
        )
        items = dict(conn.execute(Item.__table__.select().with_only_columns(
            Item.external_id, Item.id)).all())  # fmt: skip
        events = []
        for u in range(n_users):
            picks = rng.choice(n_items, int(rng.integers(5, 31)), replace=False, p=popularity)
            events += [
                {
                    "event_id": f"u{u}-i{i}",
                    "user_id": pks[f"u{u}"],
                    "item_id": items[f"i{i}"],
                    "type": "like",
                    "value": None,
                    "timestamp": now - timedelta(days=float(rng.uniform(0, 30))),
                    "context": {},
                }
                for i in picks
            ]
        for start in range(0, len(events), 20_000):
            conn.execute(insert(Event), events[start : start + 20_000])
    engine.dispose()
    return len(events)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and its children, in MiB (from /proc)."""
    total = 0
    pids = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        pids += [int(p) for p in children.read_text().split()]
    for p in pids:
        for line in Path(f"/proc/{p}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total / 1024


def start_server(env: dict[str, str], port: int) -> subprocess.Popen:
    command = [str(BIN / "agora"), "serve", "--host", "127.0.0.1", "--port", str(port)]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code in (200, 503):
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"server did not start: {proc.stderr.read().decode()[-2000:]}")


def run(
    env: dict[str, str], feed: dict, users: list[str], every: int, warm: list[str]
) -> list[dict]:
    """Serve first pages of ``users`` with ``feed`` settings (after ``warm``'s: models loaded,
    catalogue read); RSS samples every ``every``."""
    port = free_port()
    proc = start_server({**env, "AGORA_FEED": json.dumps(feed)}, port)
    base = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {KEY}"}
    clients = [httpx.Client(base_url=base, headers=headers, timeout=60) for _ in range(CONNECTIONS)]
    errors = 0

    def first_page(arg: tuple[int, str]) -> bool:
        slot, user = arg
        answer = clients[slot % CONNECTIONS].get(f"/users/{user}/feed", params={"n": 20})
        return answer.status_code == 200

    samples = []
    try:
        with ThreadPoolExecutor(CONNECTIONS) as pool:
            list(pool.map(first_page, enumerate(warm)))
            t0 = time.perf_counter()
            samples.append({"requests": 0, "seconds": 0.0, "rss_mb": round(rss_mb(proc.pid), 1)})
            for start in range(0, len(users), every):
                chunk = users[start : start + every]
                errors += sum(1 for ok in pool.map(first_page, enumerate(chunk)) if not ok)
                samples.append(
                    {
                        "requests": start + len(chunk),
                        "seconds": round(time.perf_counter() - t0, 1),
                        "rss_mb": round(rss_mb(proc.pid), 1),
                        "errors": errors,
                    }
                )
                console.print(f"  {samples[-1]}")
    finally:
        for client in clients:
            client.close()
        proc.terminate()
        proc.wait(30)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=20_000, help="users in the generated store")
    parser.add_argument("--requests", type=int, default=7000, help="first pages per run")
    parser.add_argument("--every", type=int, default=350, help="requests between RSS samples")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/agora-feed-memory"))
    parser.add_argument("--runs", default=",".join(str(i) for i in range(len(RUNS))),
                        help="which configurations to run, by position in RUNS")  # fmt: skip
    args = parser.parse_args()
    if args.requests > args.users:
        raise SystemExit("--requests must not exceed --users (each request is a distinct user)")

    data = args.workdir / "data"
    env = {
        **os.environ,
        "AGORA_DATA_DIR": str(data),
        "AGORA_API_KEY": KEY,
        "AGORA_MODELS": '["trending", "itemknn", "als"]',
        "AGORA_LOG_LEVEL": "warning",
    }
    env.pop("AGORA_REDIS_URL", None)  # pages held in the worker: what is measured
    marker = args.workdir / f"built-{args.users}"
    if not marker.exists():
        console.print(f"building the community ({args.users:,} users) in {args.workdir}")
        events = build_community(f"sqlite:///{data / 'agora.db'}", args.users)
        trained = subprocess.run(
            [str(BIN / "agora"), "train", "--no-validate"], env=env, capture_output=True
        )
        if trained.returncode:
            raise SystemExit(trained.stderr.decode()[-2000:])
        marker.write_text(json.dumps({"events": events}))

    rng = np.random.default_rng(1)
    order = [f"u{u}" for u in rng.permutation(args.users)]
    users, warm = order[: args.requests], order[-100:]
    results = {}
    for position in [int(p) for p in args.runs.split(",")]:
        name, feed = list(RUNS.items())[position]
        console.print(f"[bold]{name}[/bold]: AGORA_FEED={json.dumps(feed)}")
        samples = run(env, feed, users, args.every, warm)
        results[name] = {"feed_settings": feed, "samples": samples}

    table = Table("configuration", "requests", "seconds", "RSS start MiB", "RSS end MiB",
                  "growth, last half MiB", "KiB / request, last half")  # fmt: skip
    for name, result in results.items():
        samples = result["samples"]
        first, middle, last = samples[1], samples[len(samples) // 2], samples[-1]
        growth = last["rss_mb"] - middle["rss_mb"]
        per_request = growth * 1024 / max(last["requests"] - middle["requests"], 1)
        result["summary"] = {
            "rss_start_mb": first["rss_mb"],
            "rss_end_mb": last["rss_mb"],
            "growth_last_half_mb": round(growth, 1),
            "kib_per_request_last_half": round(per_request, 2),
            "requests_per_second": round(last["requests"] / max(last["seconds"], 1e-9), 1),
            "errors": last.get("errors", 0),
        }
        table.add_row(name, str(last["requests"]), f"{last['seconds']:.0f}",
                      f"{first['rss_mb']:.0f}", f"{last['rss_mb']:.0f}", f"{growth:+.1f}",
                      f"{per_request:.2f}")  # fmt: skip
    console.print(table)

    RESULTS.mkdir(parents=True, exist_ok=True)
    out = {
        "run": run_record(
            {
                "users": args.users,
                "items": 3000,
                "models": json.loads(env["AGORA_MODELS"]),
                "requests_per_run": args.requests,
                "sample_every": args.every,
                "connections": CONNECTIONS,
                "page_size": 20,
                "server": "agora serve --workers 1, SQLite, no Redis",
            }
        ),
        "runs": results,
    }
    (RESULTS / "feed_memory.json").write_text(json.dumps(out, indent=2) + "\n")
    plot(results, RESULTS / "feed_memory.png")
    console.print("wrote bench/results/feed_memory.json and bench/results/feed_memory.png")


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    for name, result in results.items():
        samples = result["samples"]
        ax.plot([s["requests"] for s in samples], [s["rss_mb"] for s in samples], label=name)
    ax.set_xlabel("first pages served (distinct users)")
    ax.set_ylabel("server RSS (MiB)")
    ax.set_title("agora serve memory under feed traffic (bench/feed_memory.py)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
