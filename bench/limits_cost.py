"""What the per-key rate limit costs a request: ``RateLimiter.charge`` timed in a loop, with the
buckets in this process and in Redis (one Lua call), beside the auth check it follows.

    PYTHONPATH=src .venv/bin/python bench/limits_cost.py [--calls 200000] [--redis-calls 5000] \\
        [--redis-url redis://127.0.0.1:6379/15]

Each call gets a fresh request scope (as each request does) on the real ``GET /items/latest``
route of an app; the bucket never runs dry (a huge rate), so every call takes the full path. The
loop's own cost (making the scope) is measured alone and subtracted. Writes
``bench/results/limits_cost.json``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

from _record import run_record, write_report
from starlette.requests import Request

from agora.api.app import create_app
from agora.api.auth import authenticate
from agora.api.limits import RateLimiter
from agora.api.scopes_doc import iter_route_contexts
from agora.config import LimitsConfig, Settings

OUT = Path(__file__).resolve().parent / "results" / "limits_cost.json"
ROUNDS = 5


def _route(app, path: str):  # noqa: ANN001, ANN202 - the route object requests of ``path`` get
    for context in iter_route_contexts(app.routes):
        if context.path == path:
            return getattr(context, "original_route", context)
    raise SystemExit(f"no route {path}")


def _per_call(fn, calls: int) -> float:  # noqa: ANN001 - a no-argument callable
    """The best of ``ROUNDS`` rounds' mean seconds per call."""
    best = []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        for _ in range(calls):
            fn()
        best.append((time.perf_counter() - started) / calls)
    return min(best)


def measure(limiter: RateLimiter, route, principal, calls: int) -> dict[str, float]:  # noqa: ANN001
    base = {"type": "http", "method": "GET", "path": "/items/latest", "route": route}

    def scope_only() -> None:
        Request({**base, "state": {}})

    def charged() -> None:
        limiter.charge(Request({**base, "state": {}}), principal)

    loop = _per_call(scope_only, calls)
    total = _per_call(charged, calls)
    return {"calls": calls, "us_per_request": round((total - loop) * 1e6, 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=200_000)
    ap.add_argument("--redis-calls", type=int, default=5_000)
    ap.add_argument("--redis-url", default="redis://127.0.0.1:6379/15")
    args = ap.parse_args()
    data = Path(tempfile.mkdtemp(prefix="agora-limits-cost-"))
    settings = Settings(data_dir=data, database_url=f"sqlite:///{data / 'a.db'}", api_key="k")
    app = create_app(settings)
    route = _route(app, "/items/latest")
    principal = authenticate(settings, "k")
    config = LimitsConfig(classes={"read": {"rate": 1e6, "burst": 10_000_000}})
    results = {
        "in_process": measure(RateLimiter(config), route, principal, args.calls),
        "redis": measure(
            RateLimiter(config, args.redis_url, "agora:bench:ratelimit:"),
            route,
            principal,
            args.redis_calls,
        ),
    }
    auth_calls = args.calls // 4
    results["authenticate_for_comparison"] = {
        "calls": auth_calls,
        "us_per_request": round(
            _per_call(lambda: authenticate(settings, "k"), auth_calls) * 1e6, 2
        ),
    }
    import redis

    ping = redis.Redis.from_url(args.redis_url)
    ping.delete(f"agora:bench:ratelimit:{principal.key_id}:read")
    rtts = []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        for _ in range(args.redis_calls):
            ping.ping()
        rtts.append((time.perf_counter() - started) / args.redis_calls)
    results["redis_ping_for_comparison"] = {
        "calls": args.redis_calls,
        "us_per_request": round(min(rtts) * 1e6, 2),
    }
    shutil.rmtree(data, ignore_errors=True)
    report = {"run": run_record(vars(args)), "rounds": ROUNDS, "results": results}
    print(write_report(OUT, report), file=sys.stderr)
    for name, figure in results.items():
        print(
            f"{name:28s} {figure['us_per_request']:8.2f} us per request ({figure['calls']} calls)"
        )


if __name__ == "__main__":
    main()
