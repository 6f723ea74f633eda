"""A query of a process that died stops with it on PostgreSQL, instead of running to its end."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

from sqlalchemy import create_engine, text

from agora.db.engine import make_engine

REPO = Path(__file__).resolve().parents[2]


def _running(admin_url: str, marker: str) -> bool:
    engine = create_engine(admin_url)
    with engine.connect() as conn:
        found = conn.execute(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' "
                "AND query LIKE :marker AND pid <> pg_backend_pid()"
            ),
            {"marker": f"%{marker}%"},
        ).scalar()
    engine.dispose()
    return bool(found)


def test_a_killed_process_leaves_no_query_running(postgres_url: str) -> None:
    """A process killed mid-statement (kill -9: no goodbye to the server) leaves its backend
    checking for it every 10 s (``client_connection_check_interval``), so the statement ends
    within seconds, not when it would have finished (here a 120 s sleep; at 20M events the
    refresher's read of every user ran on for 22 minutes)."""
    marker = f"agora-client-check-{uuid.uuid4().hex}"
    script = (
        "import sys\nfrom sqlalchemy import text\nfrom agora.db.engine import make_engine\n"
        "with make_engine(sys.argv[1]).connect() as conn:\n"
        f'    conn.execute(text("SELECT pg_sleep(120) /* {marker} */"))\n'
    )
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    child = subprocess.Popen([sys.executable, "-c", script, postgres_url], env=env)
    try:
        deadline = time.monotonic() + 60
        while not _running(postgres_url, marker):
            assert child.poll() is None, "the query's process ended before its query ran"
            assert time.monotonic() < deadline, "the query never started"
            time.sleep(0.2)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    killed = time.monotonic()
    while _running(postgres_url, marker):
        assert time.monotonic() - killed < 30, "the dead client's query is still running"
        time.sleep(0.5)
    assert time.monotonic() - killed < 30


def test_each_connection_checks_its_client(postgres_url: str) -> None:
    engine = make_engine(postgres_url)
    with engine.connect() as conn:
        assert conn.execute(text("SHOW client_connection_check_interval")).scalar() == "10s"
    engine.dispose()
