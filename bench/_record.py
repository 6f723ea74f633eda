"""What every benchmark's JSON says about the run that made it (one helper for all of bench/).

``run_record()`` returns ``{"command", "git", "env", "settings", "machine", "date"}``: the command
line as typed (with the thread variables in force), the git revision and whether the tree had
uncommitted changes, the ``AGORA_*`` and thread variables (secrets masked), the script's own
configuration (``settings``: workers, models, sizes...), the machine (CPU count, platform,
Python) and the UTC time. Scripts store it under ``"run"`` in their JSON.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shlex
import subprocess
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
SECRET_VARS = ("AGORA_API_KEY", "AGORA_API_KEYS", "AGORA_ID_SECRET")


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip()


def _masked(name: str, value: str) -> str:
    """``value`` safe to store: keys hidden, the password of a URL replaced by ***."""
    if name in SECRET_VARS:
        return "***"
    return re.sub(r"(://[^:/@]+:)[^@]+@", r"\1***@", value)


def environment(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The ``AGORA_*`` and thread-count variables of ``env`` (default: this process), secrets
    masked; pass a server's environment to record how it was configured."""
    return {
        name: _masked(name, value)
        for name, value in sorted((os.environ if env is None else env).items())
        if name.startswith("AGORA_") or name in THREAD_VARS
    }


def command_line(args: list[str] | None = None) -> str:
    """The command as it would be typed again: thread variables, interpreter, script and
    ``args`` (default: this process's arguments)."""
    threads = [f"{v}={os.environ[v]}" for v in THREAD_VARS if v in os.environ]
    python = os.path.relpath(sys.executable, REPO) if sys.executable else "python"
    script = os.path.relpath(os.path.abspath(sys.argv[0]), REPO) if sys.argv[0] else "-"
    args = sys.argv[1:] if args is None else args
    return " ".join([*threads, shlex.join([python, script, *args])])


def run_record(
    settings: Mapping[str, Any] | None = None, args: list[str] | None = None
) -> dict[str, Any]:
    """Command, git revision (and dirty flag), environment, the script's ``settings`` (paths
    and other objects as text), machine and date of this run, for the benchmark's JSON."""
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {
        "command": command_line(args),
        "git": {
            "revision": _git("rev-parse", "HEAD"),
            "dirty": None if status is None else bool(status),
        },
        "env": environment(),
        "settings": json.loads(json.dumps(dict(settings or {}), default=str)),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def baseline_tree(rev: str, workdir: Path) -> Path:
    """A detached git worktree of ``rev`` under ``workdir``, made once per commit and reused:
    the old source tree a ``--baseline REV`` bench runs beside this checkout."""
    commit = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--verify", f"{rev}^{{commit}}"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    tree = Path(workdir) / f"baseline-{commit[:12]}"
    if not tree.exists():
        subprocess.run(
            ["git", "-C", str(REPO), "worktree", "add", "--detach", str(tree), commit],
            check=True, capture_output=True,
        )  # fmt: skip
    return tree


def write_report(out: Path | str, report: Mapping[str, Any]) -> Path:
    """Write a bench's JSON (its folder made if needed); returns the path."""
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=1))
    return path
