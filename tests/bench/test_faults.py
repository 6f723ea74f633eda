"""bench/faults.py: a small run of its kill -9 fault on SQLite counts every acknowledged event
stored once, and its table and JSON say so. Counts only: no timing is asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"


def test_a_killed_server_loses_and_duplicates_no_acknowledged_event(tmp_path: Path) -> None:
    out = tmp_path / "faults.json"
    done = subprocess.run(
        [sys.executable, str(BENCH / "faults.py"), "--faults", "kill9", "--db", "sqlite",
         "--events", "1500", "--clients", "2", "--out", str(out),
         "--workdir", str(tmp_path / "work")],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    (row,) = json.loads(out.read_text())["rows"]
    assert (row["fault"], row["db"], row["events"]) == ("kill9", "sqlite", 1500)
    assert row["lost"] == 0 and row["duplicated"] == 0 and row["stored"] == 1500
    assert row["unclean_errors"] == 0
    assert 0 < row["acknowledged_before_fault"] < 1500  # the kill came mid-stream
    assert row["resend_answers"] == {"200": 15}  # everything re-sent was already stored
    assert "kill9" in done.stdout and "wrote" in done.stdout
