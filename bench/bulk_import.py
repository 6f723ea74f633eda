"""``agora import FILE --bulk`` into a fresh PostgreSQL database, timed: events per second, and
the same beside an older revision in one run.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/bulk_import.py FILE.jsonl \
        [--baseline REV] [--rounds 2] [--pg-url postgresql+psycopg://postgres@127.0.0.1:5432/agora_bulk]

FILE is an Agora import file, e.g. ``bench/scale_community.py --events 2000000 --users 100000
--items 20000 --follow-users 5000 FILE``. Each round imports the file once with this checkout
and (``--baseline REV``, checked out with ``git worktree add`` under ``--workdir``) once with
that revision, taking turns, each into the database of ``--pg-url`` dropped and created afresh,
as a real ``agora import --bulk`` process (``PYTHONPATH`` at the tree's ``src``): both see the
same machine load, so their ratio holds where the absolute figures move with the load. The
machine's load average is recorded beside each run. Prints a table and writes ``--out``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from _record import REPO, baseline_tree, run_record, write_report  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402
from scale import fresh_database, timed  # noqa: E402

RESULTS = REPO / "bench" / "results"


def import_once(tree: Path, path: Path, url: str, events: int, log: Path) -> dict[str, Any]:
    """One ``agora import --bulk`` of ``tree`` into a fresh database."""
    fresh_database(url)
    env = {**os.environ, "PYTHONPATH": str(tree / "src"), "AGORA_DATABASE_URL": url}
    load_before = os.getloadavg()[0]
    run = timed([sys.executable, "-m", "agora.cli.main", "import", str(path), "--bulk"], env, log)
    run["events_per_s"] = round(events / run["seconds"]) if run["exit"] == 0 else None
    run["load_before"] = round(load_before, 2)
    run["load_after"] = round(os.getloadavg()[0], 2)
    return run


def count_events(path: Path) -> int:
    """Event lines of an Agora JSON Lines file (lines without a ``kind``)."""
    with path.open("rb") as fh:
        return sum(1 for line in fh if line.strip() and not line.startswith(b'{"kind"'))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("file", type=Path)
    ap.add_argument("--baseline", help="a git revision to run beside this checkout")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--pg-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/agora_bulk")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/agora-bench-bulk"))
    ap.add_argument("--out", type=Path, default=RESULTS / "bulk_import.json")
    args = ap.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    events = count_events(args.file)
    trees = {"this checkout": REPO}
    if args.baseline:
        trees = {f"baseline {args.baseline}": baseline_tree(args.baseline, args.workdir), **trees}
    runs: list[dict[str, Any]] = []
    for round_ in range(1, args.rounds + 1):
        for name, tree in trees.items():
            run = import_once(tree, args.file, args.pg_url, events, args.workdir / "import.log")
            runs.append({"tree": name, "round": round_, **run})
            print(f"round {round_} {name}: {run['seconds']} s, {run['events_per_s']} events/s")
    table = Table(title=f"agora import --bulk, {events:,} events ({args.file.name})")
    for column in ("tree", "round", "s", "events/s", "peak RSS MiB", "load before/after"):
        table.add_column(column, justify="left" if column == "tree" else "right")
    for run in runs:
        table.add_row(
            run["tree"], str(run["round"]), f"{run['seconds']:,.1f}",
            f"{run['events_per_s'] or 0:,}", f"{run['peak_rss_mb']:,.0f}",
            f"{run['load_before']} / {run['load_after']}",
        )  # fmt: skip
    Console(width=140).print(table)
    report = {
        **run_record({"file": args.file.name, "events": events, "rounds": args.rounds}),
        "runs": runs,
    }
    print(f"wrote {write_report(args.out, report)}")


if __name__ == "__main__":
    main()
