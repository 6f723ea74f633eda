"""bench/_record.py: every benchmark JSON records its command, git revision, settings, machine."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "bench"


def test_run_record_says_how_the_run_was_made(tmp_path: Path) -> None:
    script = tmp_path / "tiny_bench.py"
    script.write_text(
        "import json, sys\n"
        f"sys.path.insert(0, {str(BENCH)!r})\n"
        "from pathlib import Path\n"
        "from _record import run_record\n"
        "print(json.dumps(run_record({'workers': 2, 'out': Path('/tmp/x.json')})))\n"
    )
    env = {
        **os.environ,
        "OPENBLAS_NUM_THREADS": "1",
        "AGORA_API_KEY": "very-secret-key",
        "AGORA_DATABASE_URL": "postgresql+psycopg://agora:hunter2@db.example/agora",
        "AGORA_MODELS": '["trending", "als"]',
    }
    done = subprocess.run(
        [sys.executable, str(script), "--seconds", "5"],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "very-secret-key" not in done.stdout and "hunter2" not in done.stdout
    record = json.loads(done.stdout)
    assert record["command"].startswith("OPENBLAS_NUM_THREADS=1 ")
    assert record["command"].endswith("tiny_bench.py --seconds 5")
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True)
    assert record["git"]["revision"] == head.stdout.strip()
    assert isinstance(record["git"]["dirty"], bool)
    assert record["env"]["AGORA_MODELS"] == '["trending", "als"]'
    assert record["env"]["AGORA_API_KEY"] == "***"
    assert record["env"]["AGORA_DATABASE_URL"] == "postgresql+psycopg://agora:***@db.example/agora"
    assert record["settings"] == {"workers": 2, "out": "/tmp/x.json"}
    assert record["machine"]["cpus"] == os.cpu_count()
    assert record["date"].endswith("+00:00")


@pytest.mark.parametrize(
    "script",
    sorted(p for p in BENCH.glob("*.py") if "json.dumps(" in p.read_text()),
    ids=lambda p: p.name,
)
def test_every_bench_writing_json_records_its_run(script: Path) -> None:
    assert "run_record(" in script.read_text(), f"{script.name} writes JSON without run_record"
