"""bench/stack_floor.py: the floor app answers each path on a real store, the script's wrk run
counts answers and the server's CPU, and without wrk it says how to get it. Counts only: no
timing is asserted."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
from sqlalchemy import func, select, text

from agora.db.engine import make_engine, migrate, session_factory, transaction
from agora.ingest.service import ensure_users

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

import serve_load  # noqa: E402
import stack_floor  # noqa: E402
from test_serve_load import needs_wrk  # noqa: E402


def test_without_wrk_it_says_how_to_install_it_and_exits_2(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH / "stack_floor.py"), "--workdir", str(tmp_path / "work")],
        env={**os.environ, "PATH": str(tmp_path)},  # no wrk on it
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert serve_load.WRK_MISSING in done.stdout + done.stderr


@needs_wrk
def test_each_floor_path_answers_and_wrk_counts_it(tmp_path: Path, spawn_server) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    engine = make_engine(url)
    migrate(engine)
    with transaction(session_factory(engine)) as session:
        ensure_users(session, ["u5"])
    command = [sys.executable, "-m", "uvicorn", "_floor_app:app", "--app-dir", str(BENCH)]
    server = spawn_server(command, {"FLOOR_DATABASE_URL": url})
    pk = httpx.get(f"{server.base_url}/orm", timeout=10).json()["pk"]
    assert pk is not None and httpx.get(f"{server.base_url}/core", timeout=10).json() == {"pk": pk}

    for method, path in stack_floor.FLOOR_PATHS:
        row = stack_floor.wrk(f"{server.base_url}{path}", method, 2, 1, server.process.pid)
        assert row["errors"] == 0 and row["rps"] > 0, (path, row)
        assert row["cpu_ms_per_answer"] > 0 and row["p50_ms"] <= row["p99_ms"], (path, row)
    with engine.connect() as conn:  # every acknowledged insert is stored
        stored = conn.execute(select(func.count()).select_from(text("floor_writes"))).scalar()
    assert stored > 0
    engine.dispose()
