"""Server time of every operator console page on the demo store (target: <= 300 ms each).

    OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/console_pages.py [--repeat 20]

Builds the demo store in a temporary folder (``agora demo --no-serve``: the bundled Cardano
community, the default models; then ``agora moderation train`` and ``scan``, so the review
queue holds the posts the classifier queues), starts ``agora serve`` on it, signs in to the
console with the admin key as a browser does (the form's CSRF token, the session cookie), then
asks each page and fragment once to warm up and ``--repeat`` times more, one request at a
time. Per page: the server's own time (its ``Server-Timing: app;dur=`` header) at p50, p95
and max, and the size of the HTML. Prints a table and writes bench/results/console_pages.json.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import httpx  # noqa: E402
from _record import REPO, run_record, write_report  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402
from serve_load import free_port, start, stop  # noqa: E402

AGORA = [sys.executable, "-m", "agora.cli.main"]
ADMIN = "console-bench-admin"
TARGET_MS = 300.0
#: The demo's own example user (``agora demo`` shows their recommendations).
USER = "28"
#: A campaign and an experiment the bench creates (the demo store has neither).
CAMPAIGN = "bench-campaign"
EXPERIMENT = "bench-experiment"


def pages(item: str) -> list[tuple[str, str, bool]]:
    """(name, path, fragment) of every console page and fragment."""
    return [
        ("sign-in form", "/console/signin", False),
        ("overview", "/console/", False),
        ("overview: live rate (fragment)", "/console/overview/rate", True),
        ("users: search", f"/console/users?q={USER[0]}", False),
        ("user page", f"/console/users/{USER}", False),
        ("user: feed preview (fragment)", f"/console/users/{USER}/preview", True),
        ("items: search", "/console/items?q=staking", False),
        ("item page", f"/console/items/{item}", False),
        ("models", "/console/models", False),
        ("models: versions (fragment)", "/console/models/versions", True),
        ("moderation", "/console/moderation", False),
        ("moderation: an item's status", f"/console/moderation?item={item}", False),
        ("market: campaigns", "/console/market", False),
        ("campaign page", f"/console/market/{CAMPAIGN}", False),
        ("experiments", "/console/experiments", False),
        ("experiment page", f"/console/experiments/{EXPERIMENT}", False),
        ("analytics", "/console/analytics", False),
        ("analytics: trending keywords (fragment)", "/console/analytics/keywords", True),
        ("analytics: sentiment (fragment)", "/console/analytics/sentiment", True),
    ]


def market_and_experiment(base: str, auth: dict[str, str], item: str) -> None:
    """A running campaign showing ``item`` and a running experiment, as an operator would
    have them, so that their pages measure real reports."""
    campaign = {
        "campaign_id": CAMPAIGN,
        "advertiser": "bench",
        "items": [item],
        "bid": 0.5,
        "daily_budget": 20,
    }
    experiment = {
        "experiment_id": EXPERIMENT,
        "arms": [{"name": "control"}, {"name": "diverse", "overrides": {"diversity": 0.9}}],
        "planned_users": 100,
        "start": True,
        "guardrails": [{"metric": "ctr", "max_drop": 0.2}],
    }
    for path, body in (("/campaigns", campaign), ("/experiments", experiment)):
        made = httpx.post(base + path, json=body, headers=auth, timeout=60)
        assert made.status_code == 201, made.text


def sign_in(client: httpx.Client) -> None:
    """Sign in as a browser does: the form (its CSRF token and pre-session cookie), then post."""
    form = client.get("/console/signin")
    token = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert token, "no CSRF token on the sign-in form"
    done = client.post(
        "/console/signin",
        data={"csrf": token.group(1), "next": "/console/", "api_key": ADMIN},
        follow_redirects=False,
    )
    assert done.status_code == 303, done.text


def server_ms(answer: httpx.Response) -> float:
    found = re.search(r"app;dur=([0-9.]+)", answer.headers.get("server-timing", ""))
    assert found, "no Server-Timing header"
    return float(found.group(1))


def measure(client: httpx.Client, path: str, fragment: bool, repeat: int) -> dict:
    headers = {"HX-Request": "true"} if fragment else {}
    times, size = [], 0
    for i in range(repeat + 1):
        answer = client.get(path, headers=headers)
        assert answer.status_code == 200, (path, answer.status_code, answer.text[:300])
        if i:  # the first is the warm-up
            times.append(server_ms(answer))
        size = len(answer.content)
    times.sort()
    return {
        "p50_ms": round(statistics.median(times), 1),
        "p95_ms": round(times[min(len(times) - 1, round(0.95 * (len(times) - 1)))], 1),
        "max_ms": round(times[-1], 1),
        "bytes": size,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=20, help="Timed requests per page.")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "console_pages.json")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="agora-console-bench-") as tmp:
        folder = Path(tmp)
        env = {k: v for k, v in os.environ.items() if not k.startswith("AGORA_")} | {
            "AGORA_DATA_DIR": str(folder / "agora-data"),
            "AGORA_API_KEY": ADMIN,
        }
        # the demo, then its review queue as an operator fills it: the moderation classifier
        # trained on the imported evidence and every post scanned
        for step in (["demo", "--no-serve"], ["moderation", "train"], ["moderation", "scan"]):
            built = subprocess.run(
                [*AGORA, *step], env=env, cwd=folder, capture_output=True, text=True
            )
            assert built.returncode == 0, built.stdout + built.stderr
        port = free_port()
        command = [*AGORA, "serve", "--host", "127.0.0.1", "--port", str(port)]
        server = start(command, env, port, folder / "server.log")
        try:
            base = f"http://127.0.0.1:{port}"
            auth = {"Authorization": f"Bearer {ADMIN}"}
            top = httpx.get(f"{base}/analytics/reach?n=1", headers=auth, timeout=60).json()
            item = top[0]["key"]  # the post that reached most people
            market_and_experiment(base, auth, item)
            with httpx.Client(base_url=base, timeout=60) as client:
                sign_in(client)
                rows = [
                    {"page": name, "path": path, **measure(client, path, fragment, args.repeat)}
                    for name, path, fragment in pages(item)
                ]
        finally:
            stop(server)
    table = Table(title=f"console pages on the demo store: server time, {args.repeat} requests")
    for column in ("page", "path", "p50 ms", "p95 ms", "max ms", "KB"):
        table.add_column(column, justify="left" if column in ("page", "path") else "right")
    for row in rows:
        table.add_row(
            row["page"], row["path"], f"{row['p50_ms']:.1f}", f"{row['p95_ms']:.1f}",
            f"{row['max_ms']:.1f}", f"{row['bytes'] / 1024:.1f}",
        )  # fmt: skip
    Console(width=120).print(table)
    worst = max(row["max_ms"] for row in rows)
    verdict = "within" if worst <= TARGET_MS else "OVER"
    print(f"slowest request: {worst:.1f} ms ({verdict} the {TARGET_MS:.0f} ms target)")
    report = {
        "run": run_record(vars(args)),
        "target_ms": TARGET_MS,
        "within_target": worst <= TARGET_MS,
        "pages": rows,
    }
    print(f"wrote {write_report(args.out, report)}")


if __name__ == "__main__":
    main()
