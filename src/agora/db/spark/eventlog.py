"""Per-stage figures from a Spark event log (``spark_session(event_log_dir=...)``), so a
benchmark can extrapolate a local run to a cluster: each stage's wall time, task count, the
summed run time of its tasks and the bytes it shuffled.

An event log is one JSON object per line; a ``SparkListenerStageCompleted`` line carries the
stage's ``Stage Info`` with its submission and completion times (epoch ms) and its
accumulables (``internal.metrics.*``), summed over the stage's tasks.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

_RUN_TIME = "internal.metrics.executorRunTime"
_SHUFFLE_WRITE = "internal.metrics.shuffle.write.bytesWritten"
_SHUFFLE_READ = (
    "internal.metrics.shuffle.read.remoteBytesRead",
    "internal.metrics.shuffle.read.localBytesRead",
)


@dataclass(frozen=True)
class StageSummary:
    """One completed stage attempt of a Spark application."""

    stage_id: int
    attempt: int
    name: str
    tasks: int
    seconds: float  # wall time, submission to completion
    task_seconds: float  # the tasks' run times summed (what more cores would share)
    shuffle_read_bytes: int
    shuffle_write_bytes: int
    failed: bool


def event_log_files(directory: str | Path) -> list[Path]:
    """The application logs Spark wrote in ``directory``, oldest first (in-progress ones too;
    a rolling log's ``events_N_*`` parts each count as one)."""
    files = [
        p
        for p in Path(directory).rglob("*")
        if p.is_file() and not p.name.startswith((".", "appstatus_"))
    ]
    return sorted(files, key=lambda p: p.stat().st_mtime)


def summarise_event_log(path: str | Path) -> list[StageSummary]:
    """Every completed stage of the application logged at ``path``, in completion order."""
    stages: list[StageSummary] = []
    with Path(path).open(encoding="utf-8") as lines:
        for line in lines:
            if '"SparkListenerStageCompleted"' not in line:
                continue
            info = json.loads(line)["Stage Info"]
            sums = {
                a.get("Name"): int(a.get("Value") or 0)
                for a in info.get("Accumulables", [])
                if str(a.get("Value", "")).lstrip("-").isdigit()
            }
            submitted = info.get("Submission Time") or 0
            completed = info.get("Completion Time") or submitted
            stages.append(
                StageSummary(
                    stage_id=int(info["Stage ID"]),
                    attempt=int(info.get("Stage Attempt ID", 0)),
                    name=str(info.get("Stage Name", "")),
                    tasks=int(info.get("Number of Tasks", 0)),
                    seconds=(completed - submitted) / 1000.0,
                    task_seconds=sums.get(_RUN_TIME, 0) / 1000.0,
                    shuffle_read_bytes=sum(sums.get(n, 0) for n in _SHUFFLE_READ),
                    shuffle_write_bytes=sums.get(_SHUFFLE_WRITE, 0),
                    failed="Failure Reason" in info,
                )
            )
    return stages
