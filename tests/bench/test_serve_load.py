"""bench/serve_load.py: its wrk script drives a real ``agora serve`` and the ceiling app, and
the script says how to get wrk when it is missing. Counts only: no timing is asserted."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

import serve_load  # noqa: E402

#: wrk is installed by `make test`; a run without it skips these, except under CI=true
needs_wrk = pytest.mark.skipif(
    shutil.which("wrk") is None and os.environ.get("CI") != "true", reason="wrk not installed"
)
#: wrk settings for a short, small run.
ARGS = argparse.Namespace(threads=1, connections=2, timeout=30, users=20, items=30)


def test_without_wrk_it_says_how_to_install_it_and_exits_2(tmp_path: Path) -> None:
    work = tmp_path / "work"
    done = subprocess.run(
        [sys.executable, str(BENCH / "serve_load.py"), "--seconds", "1", "--workdir", str(work)],
        env={**os.environ, "PATH": str(tmp_path)},  # no wrk on it
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert serve_load.WRK_MISSING in done.stderr
    assert not work.exists()  # nothing built


@needs_wrk
def test_the_wrk_script_measures_each_kind_on_a_real_server(tmp_path: Path, spawn_server) -> None:
    env = {"AGORA_DATA_DIR": str(tmp_path / "data"), "AGORA_API_KEY": serve_load.KEY}
    server = spawn_server([sys.executable, "-m", "agora.cli.main", "serve"], env)
    page = serve_load.feed_page(server.base_url)  # the first page builds what pages need
    assert b'"next_cursor"' in page

    mixed = serve_load.run_wrk(server.base_url, "mixed", 5, ARGS)
    assert mixed["non_2xx"] == {} and mixed["unmatched"] == 0, mixed
    kinds = mixed["kinds"]
    for kind in ("first_page", "next_page", "event"):  # next pages follow parsed cursors
        assert kinds[kind]["count"] > 0 and kinds[kind]["errors"] == 0, kinds
    # every first page told its server time (Server-Timing), read by the script
    assert mixed["first_page_server_ms"]["count"] == kinds["first_page"]["count"]

    recs = serve_load.run_wrk(server.base_url, "recs", 1, ARGS)
    assert list(recs["kinds"]) == ["recommendations"], recs  # no model yet: 503s, counted
    assert recs["kinds"]["recommendations"]["errors"] == sum(recs["non_2xx"].values()) > 0
    report = serve_load.figures(mixed)
    assert report["errors"] == 0 and report["throughput_rps"] > 0
    assert set(report["by_kind"]) == {"first_page", "next_page", "event"}


@needs_wrk
def test_the_ceiling_app_answers_the_same_mix(tmp_path: Path, spawn_server) -> None:
    page = tmp_path / "page.json"
    page.write_text('{"user_id":"u0","page":0,"items":[],"next_cursor":"s1.1"}')
    command = [sys.executable, "-m", "uvicorn", "_ceiling_app:app", "--app-dir", str(BENCH)]
    env = {"SERVE_LOAD_PAGE": str(page), "AGORA_API_KEY": serve_load.KEY}
    server = spawn_server(command, env)
    assert httpx.get(f"{server.base_url}/users/u0/feed", timeout=10).status_code == 401

    result = serve_load.run_wrk(server.base_url, "mixed", 1, ARGS)
    assert result["non_2xx"] == {} and result["unmatched"] == 0, result
    assert {k: v["count"] > 0 for k, v in result["kinds"].items()} == {
        "first_page": True,
        "next_page": True,
        "event": True,
    }


def test_cpu_seconds_count_every_process_below_the_one_named() -> None:
    """A server's workers and a refresher's shards are its children: their CPU time counts."""
    burn = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.5: pass\n"
    child = f"{burn}time.sleep(60)\n"  # burns 0.5 s of CPU, then stays
    parent = subprocess.Popen(
        [sys.executable, "-c",
         f"import subprocess, sys, time\nsubprocess.Popen([sys.executable, '-c', {child!r}])\n"
         "time.sleep(60)"]
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while serve_load.cpu_seconds(parent.pid) < 0.5 and time.monotonic() < deadline:
            time.sleep(0.05)
        tree = serve_load.process_tree(parent.pid)
        assert len(tree) == 2 and tree[0] == parent.pid
        assert serve_load.cpu_seconds(parent.pid) >= 0.5  # the child's burn counts
        assert serve_load.cpu_seconds(tree[1]) >= 0.45  # it is the child's (10 ms ticks)
        assert serve_load.cpu_seconds(None) == 0.0
    finally:
        for pid in reversed(serve_load.process_tree(parent.pid)):
            os.kill(pid, 9)
        parent.wait()
