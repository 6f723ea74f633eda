"""Several processes migrating one fresh store at the same moment (what ``agora serve
--workers N`` does at start) all succeed and leave the schema at head, on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from agora.db.engine import alembic_config, make_engine

PROCESSES = 4

#: Imports everything, says it is ready, waits for the go, then migrates.
RACER = """
import sys, time
from pathlib import Path
from agora.db.engine import make_engine, migrate
url, ready, go = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
engine = make_engine(url)
ready.touch()
while not go.exists():
    time.sleep(0.005)
migrate(engine)
print("migrated")
"""


def test_concurrent_migrations_all_succeed_and_reach_head(database_url: str, tmp_path: Path):
    go = tmp_path / "go"
    env = os.environ | {"PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
    racers = []
    for n in range(PROCESSES):
        ready = tmp_path / f"ready-{n}"
        command = [sys.executable, "-c", RACER, database_url, str(ready), str(go)]
        racers.append(
            (
                ready,
                subprocess.Popen(
                    command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
                ),
            )
        )
    deadline = time.monotonic() + 120
    while not all(ready.exists() for ready, _ in racers):
        assert time.monotonic() < deadline, "the racers did not start"
        assert all(proc.poll() is None for _, proc in racers), [p.communicate() for _, p in racers]
        time.sleep(0.05)
    go.touch()  # all at once
    outputs = [proc.communicate(timeout=120)[0] for _, proc in racers]
    codes = [proc.returncode for _, proc in racers]
    assert codes == [0] * PROCESSES, "\n---\n".join(outputs)

    engine = make_engine(database_url)
    try:
        head = ScriptDirectory.from_config(alembic_config(engine)).get_current_head()
        with engine.connect() as conn:
            assert MigrationContext.configure(conn).get_current_revision() == head
    finally:
        engine.dispose()
