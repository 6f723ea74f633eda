"""The store, training, analytics and serving on one large community in PostgreSQL, timed.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/scale.py FILE.jsonl \
        [--pg-url postgresql+psycopg://postgres@127.0.0.1:5432/agora_scale] \
        [--steps import explain train train_spark analytics analytics_spark serve] \
        [--seconds 30] [--users 1000000] [--items 200000] [--out bench/results/scale.json]

FILE is an Agora import file, e.g. from bench/scale_community.py (20M events, 1M users, 200k
items by default). The database of ``--pg-url`` is dropped and created afresh (never one of
the shared ones: test, postgres, templates). Then each step of ``--steps``, in order:

* ``import``: ``agora import FILE --bulk`` (COPY), timed: events/s;
* ``explain``: bench/pg_explain.py's hot queries under EXPLAIN (ANALYZE, BUFFERS);
* ``train``: ``agora train --models als,itemknn,trending`` (one machine; ``--models``);
* ``train_spark``: the same with ``--engine spark --spark-master local[2]`` and Spark's event
  log, whose stage timings are extrapolated to a 10-node cluster (:func:`on_a_cluster`);
* ``analytics`` / ``analytics_spark``: the batch analytics commands (``STEPS`` below), without
  and with ``--engine spark``;
* ``serve``: ``agora serve`` and ``agora worker`` (not with ``--no-refresher``) on that
  database, driven with wrk as bench/serve_load.py drives them (its Lua script and
  functions): the feed/events mix, then recommendations alone, ``--seconds`` each, after
  ``--settle`` seconds (the servers' start-up warm-up done: this measures them at work, not
  starting). With ``--baseline REV`` the servers of revision REV are measured too, the two
  taking turns for ``--rounds`` rounds (``serve_baseline`` in the JSON).

Every command runs as a real subprocess of the CLI; the peak RSS of its whole process tree
(psutil, sampled every 0.2 s) and its wall time are recorded. A step whose command or option
this checkout does not have (``agora <cmd> --help`` does not list it) is reported as skipped,
and a command that fails as failed with its exit code and last line: the run goes on. Prints
one table and writes ``--out`` with ``run_record``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import psutil  # noqa: E402
import serve_load  # noqa: E402
from _record import baseline_tree, run_record, write_report  # noqa: E402
from pg_explain import run as explain_queries  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from agora.db.spark.eventlog import StageSummary, event_log_files, summarise_event_log  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
AGORA = [sys.executable, "-m", "agora.cli.main"]
SPARK = ["--engine", "spark", "--spark-master", "local[2]"]
#: The models trained by default (``--models``): ALS, item-KNN, and trending (the popularity
#: family: this checkout has no model named ``popularity``).
MODELS = "als,itemknn,trending"
#: The CLI steps: name -> commands (each an ``agora`` argument list; ``{models}`` is
#: ``--models``, ``{workdir}`` is ``--workdir``). A command is run only when
#: ``agora <its subcommand> --help`` lists every option it passes.
STEPS: dict[str, list[list[str]]] = {
    "train": [["train", "--models", "{models}"]],
    "train_spark": [
        ["train", *SPARK, "--models", "{models}", "--event-log", "{workdir}/spark-events"]
    ],
    "analytics": [
        ["analytics", "engagement-report", "--out", "{workdir}/engagement"],
        ["analytics", "trending"],
        ["analytics", "segments", "build"],
        ["analytics", "influence"],
    ],
    "analytics_spark": [
        ["analytics", "engagement-report", "--out", "{workdir}/engagement-spark", *SPARK],
        ["analytics", "trending", *SPARK],
        ["analytics", "segments", "build", *SPARK],
        ["analytics", "influence", *SPARK],
    ],
}
ALL_STEPS = ["import", "explain", *STEPS, "serve"]
console = Console(width=max(Console().width, 150))


def fresh_database(url: str) -> None:
    """Drop and create the database of ``url`` (refused for the shared ones)."""
    name = make_url(url).database
    if not name or name in serve_load.SHARED_DATABASES:
        sys.exit(f"refusing to drop the shared database {name!r}: pass another --pg-url")
    admin = create_engine(make_url(url).set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()


def timed(argv: list[str], env: dict[str, str], log: Path) -> dict[str, Any]:
    """Run one command; its wall time, exit code, last output line and the peak RSS (MiB) of
    its process tree."""
    started = time.perf_counter()
    with log.open("a") as out:
        out.write(f"$ {' '.join(argv)}\n")
        out.flush()
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
        peak = 0
        watched = psutil.Process(proc.pid)
        while proc.poll() is None:
            peak = max(peak, tree_rss(watched))
            time.sleep(0.2)
    lines = [line for line in log.read_text().splitlines() if line.strip()]
    if proc.returncode and (errors := [line for line in lines if "rror" in line]):
        lines = errors  # the error, not the progress bar that was drawing
    return {
        "command": " ".join(["agora", *argv[3:]] if argv[:3] == AGORA else argv),
        "seconds": round(time.perf_counter() - started, 2),
        "exit": proc.returncode,
        "peak_rss_mb": round(peak / 2**20, 1),
        "last_line": lines[-1][-200:] if lines else "",
    }


def tree_rss(process: psutil.Process) -> int:
    """Resident bytes of a process and everything below it (0 once it is gone)."""
    try:
        tree = [process, *process.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for member in tree:
        try:
            total += member.memory_info().rss
        except psutil.Error:
            continue
    return total


def missing_options(argv: list[str], env: dict[str, str]) -> list[str]:
    """The subcommand or options of ``argv`` that this checkout's ``agora`` does not have."""
    options = [i for i, a in enumerate(argv) if a.startswith("-")]
    path = argv[: options[0] if options else len(argv)]
    done = subprocess.run(
        [*AGORA, *path, "--help"], env={**env, "COLUMNS": "300"}, capture_output=True, text=True
    )
    if done.returncode != 0:
        return [" ".join(path)]
    return [a for a in argv if a.startswith("--") and a not in done.stdout]


def cli_step(name: str, env: dict[str, str], log: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Every command of a CLI step, or why it was skipped."""
    runs = []
    for template in STEPS[name]:
        argv = [
            word.replace("{models}", args.models).replace("{workdir}", str(args.workdir))
            for word in template
        ]
        if argv[0] == "train" and not args.validate:
            argv.append("--no-validate")
        missing = missing_options(argv, env)
        if missing:
            runs.append({"command": " ".join(argv), "skipped": f"no {', '.join(missing)}"})
            continue
        runs.append(timed([*AGORA, *argv], env, log))
        if "--event-log" in argv and runs[-1]["exit"] == 0:
            newest = event_log_files(argv[argv.index("--event-log") + 1])[-1]
            runs[-1]["cluster"] = on_a_cluster(summarise_event_log(newest), runs[-1]["seconds"])
    return {"runs": runs}


#: The cluster the Spark steps are extrapolated to, on paper (docs/spark.md says how).
CLUSTER = {"nodes": 10, "cores_per_node": 8, "network_gbit_per_node": 10.0}


def on_a_cluster(stages: list[StageSummary], wall: float, cluster: dict = CLUSTER) -> dict:
    """A Spark step's stage timings, and its time extrapolated to ``cluster``: each stage takes
    its tasks' summed run time shared by the cluster's cores (never less than one task's mean
    time: a stage of 4 tasks cannot use 80 cores) plus its shuffle bytes over the nodes'
    network; the rest of the step's wall time (JVM start, the driver's own work: collecting
    the matrix, scoring the holdout, writing artefacts) does not shrink."""
    cores = cluster["nodes"] * cluster["cores_per_node"]
    network = cluster["nodes"] * cluster["network_gbit_per_node"] * 1e9 / 8
    stage_wall = sum(s.seconds for s in stages)
    on_cluster = 0.0
    for stage in stages:
        per_task = stage.task_seconds / max(stage.tasks, 1)
        compute = max(stage.task_seconds / cores, per_task)
        on_cluster += compute + (stage.shuffle_read_bytes + stage.shuffle_write_bytes) / network
    driver = max(wall - stage_wall, 0.0)
    return {
        "stages": len(stages),
        "stage_wall_s": round(stage_wall, 1),
        "task_s": round(sum(s.task_seconds for s in stages), 1),
        "shuffle_gb": round(
            sum(s.shuffle_read_bytes + s.shuffle_write_bytes for s in stages) / 1e9, 2
        ),
        "driver_s": round(driver, 1),
        "cluster": cluster,
        "stages_on_cluster_s": round(on_cluster, 1),
        "step_on_cluster_s": round(driver + on_cluster, 1),
    }


def import_step(path: Path, env: dict[str, str], log: Path, events: int) -> dict[str, Any]:
    run = timed([*AGORA, "import", str(path), "--bulk"], env, log)
    run["events_per_s"] = round(events / run["seconds"]) if run["exit"] == 0 else None
    return {"runs": [run]}


def serve_step(env: dict[str, str], args: argparse.Namespace, log: Path) -> dict[str, Any]:
    """``agora serve`` and ``agora worker`` on the store, under serve_load's wrk mix."""
    port = serve_load.free_port()
    server_env = {**env, "AGORA_FEED": json.dumps({"refresh_in_serve": False})}
    worker = None
    if args.refresher:
        worker = subprocess.Popen(
            [*AGORA, "worker"], env=server_env, stdout=log.open("a"), stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    server = serve_load.start(
        [*AGORA, *serve_load.serve_args(port, args.workers)], server_env, port,
        log.with_suffix(".serve.log"),
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    wrk_args = argparse.Namespace(
        threads=args.threads, connections=args.connections, timeout=30, users=args.users,
        items=args.items,
    )  # fmt: skip
    try:
        serve_load.feed_page(url)
        time.sleep(args.settle)  # the servers' start-up warm-up (catalogue, indexes) done
        serve_load.run_wrk(url, "mixed", 5, wrk_args)  # warm-up
        mixed = serve_load.figures(serve_load.run_wrk(url, "mixed", args.seconds, wrk_args))
        recs = serve_load.figures(serve_load.run_wrk(url, "recs", args.seconds, wrk_args))
        rss = round(tree_rss(psutil.Process(server.pid)) / 2**20, 1)
        worker_rss = worker and round(tree_rss(psutil.Process(worker.pid)) / 2**20, 1)
    finally:
        serve_load.stop(server)
        if worker is not None:
            serve_load.stop(worker)
    return {"mixed": mixed, "recommendations": recs, "server_rss_mb": rss,
            "worker_rss_mb": worker_rss}  # fmt: skip


def serve_side_by_side(env: dict[str, str], args: argparse.Namespace, log: Path) -> dict[str, Any]:
    """:func:`serve_step` for this checkout (``serve``) and for revision ``--baseline``
    (``serve_baseline``, its source tree first on ``PYTHONPATH``), taking turns for
    ``--rounds`` rounds (who goes first alternates). Each arm: the mean of its rounds' figures
    and every round as measured."""
    tree = baseline_tree(args.baseline, args.workdir)
    arms = {"serve": env, "serve_baseline": {**env, "PYTHONPATH": str(tree / "src")}}
    runs: dict[str, list[dict[str, Any]]] = {arm: [] for arm in arms}
    for round_ in range(args.rounds):
        for arm in list(arms)[:: 1 if round_ % 2 == 0 else -1]:
            console.print(f"round {round_ + 1}: {arm}")
            runs[arm].append(serve_step(arms[arm], args, log))
    out = {}
    for arm, measured in runs.items():
        mean: dict[str, Any] = {"rounds": measured}
        for kind in ("mixed", "recommendations"):
            mean[kind] = {
                figure: round(sum(m[kind][figure] for m in measured) / len(measured), 2)
                for figure in ("throughput_rps", "p50_ms", "p95_ms", "p99_ms")
            } | {"errors": sum(m[kind]["errors"] for m in measured)}
        mean["server_rss_mb"] = max(m["server_rss_mb"] for m in measured)
        mean["worker_rss_mb"] = measured[-1]["worker_rss_mb"]
        out[arm] = mean
    out["serve_baseline"]["revision"] = tree.name.removeprefix("baseline-")
    return out


def count_events(path: Path) -> int:
    """Event lines of an Agora JSON Lines file (the lines without a ``kind``)."""
    events = 0
    with path.open("rb") as fh:
        for line in fh:
            if not line.startswith(b'{"kind"'):
                events += 1
    return events


def table(steps: dict[str, Any], events: int) -> Table:
    out = Table(title=f"Agora at scale: {events:,} events in PostgreSQL")
    for column in ("step", "command", "s", "peak RSS MiB", "figure"):
        out.add_column(column, justify="right" if column in ("s", "peak RSS MiB") else "left")
    for name, step in steps.items():
        if name == "explain":
            slowest = max(step["queries"].items(), key=lambda kv: kv[1]["execution_ms"])
            out.add_row(name, f"{len(step['queries'])} hot queries", "", "",
                        f"slowest {slowest[0]} {slowest[1]['execution_ms']:,.1f} ms")  # fmt: skip
            continue
        if name.startswith("serve"):
            if "skipped" in step:
                out.add_row(name, "", "", "", step["skipped"])
                continue
            for kind in ("mixed", "recommendations"):
                f = step[kind]
                label = f"{name} {step.get('revision', '')}".strip()
                out.add_row(label, kind, "", f"{step['server_rss_mb']:,}",
                            f"{f['throughput_rps']:,} rps, p50 {f['p50_ms']} ms, "
                            f"p99 {f['p99_ms']} ms, {f['errors']} errors")  # fmt: skip
            continue
        for run in step["runs"]:
            if "skipped" in run:
                out.add_row(name, run["command"], "", "", f"skipped: {run['skipped']}")
                continue
            figure = f"{run['events_per_s']:,} events/s" if run.get("events_per_s") else ""
            if "cluster" in run:
                c = run["cluster"]
                figure = (
                    f"{c['stages']} stages, {c['task_s']:,} task-s, driver {c['driver_s']:,} s; "
                    f"10 nodes: ~{c['step_on_cluster_s']:,} s"
                )
            if run["exit"] != 0:
                figure = f"failed (exit {run['exit']}): {run['last_line'][:60]}"
            out.add_row(name, run["command"][:60], f"{run['seconds']:,.1f}",
                        f"{run['peak_rss_mb']:,.0f}", figure)  # fmt: skip
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("file", type=Path)
    parser.add_argument(
        "--pg-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/agora_scale"
    )
    parser.add_argument("--steps", nargs="+", default=ALL_STEPS, choices=ALL_STEPS)
    parser.add_argument("--seconds", type=int, default=30, help="each measured wrk run")
    parser.add_argument(
        "--settle",
        type=float,
        default=60.0,
        help="serve: seconds waited after the first answer, while each server warms its feed "
        "(at 1M users and 200k items the start-up's warm-up took 40 s)",
    )
    parser.add_argument("--workers", type=int, default=2, help="agora serve --workers")
    parser.add_argument(
        "--no-refresher",
        dest="refresher",
        action="store_false",
        help="serve: no `agora worker` beside the servers (as when it runs on a node of its "
        "own): what the refresher's passes cost the servers on shared cores",
    )
    parser.add_argument(
        "--baseline",
        metavar="REV",
        help="serve: measure revision REV's servers too, taking turns with this checkout's",
    )
    parser.add_argument("--rounds", type=int, default=2, help="serve with --baseline: turns each")
    parser.add_argument("--threads", type=int, default=2, help="wrk -t")
    parser.add_argument("-c", "--connections", type=int, default=16, help="wrk -c")
    parser.add_argument("--users", type=int, default=1_000_000, help="users of the file (wrk)")
    parser.add_argument("--items", type=int, default=200_000, help="items of the file (wrk)")
    parser.add_argument("--models", default=MODELS, help="agora train --models")
    parser.add_argument(
        "--no-validate",
        dest="validate",
        action="store_false",
        help="train without the holdout fit (agora train --no-validate): half the training time",
    )
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/agora-scale"))
    parser.add_argument("--out", type=Path, default=RESULTS / "scale.json")
    args = parser.parse_args()
    if not args.file.is_file():
        sys.exit(f"{args.file}: no such file (make one with bench/scale_community.py)")
    if "import" in args.steps:
        fresh_database(args.pg_url)
    args.workdir.mkdir(parents=True, exist_ok=True)
    log = args.workdir / "scale.log"
    log.write_text("")
    env = serve_load.agora_env(args.workdir / "data", args.pg_url, 0)
    env["AGORA_MODELS"] = json.dumps(args.models.split(","))
    events = count_events(args.file)
    steps: dict[str, Any] = {}
    for name in args.steps:
        console.print(f"[bold]{name}[/bold]")
        if name == "import":
            steps[name] = import_step(args.file, env, log, events)
        elif name == "explain":
            queries, stored = explain_queries(args.pg_url, [])
            steps[name] = {"events": stored, "queries": queries}
        elif name == "serve" and not _has_wrk():
            steps[name] = {"skipped": "no wrk"}
        elif name == "serve" and args.baseline:
            steps.update(serve_side_by_side(env, args, log))
        elif name == "serve":
            steps[name] = serve_step(env, args, log)
        else:
            steps[name] = cli_step(name, env, log, args)
    console.print(table(steps, events))
    settings = {**vars(args), "events": events}
    write_report(args.out, {"run": run_record(settings), "events": events, "steps": steps})
    console.print(f"wrote {args.out} (commands' output: {log})")


def _has_wrk() -> bool:
    return subprocess.run(["which", "wrk"], capture_output=True).returncode == 0


if __name__ == "__main__":
    main()
