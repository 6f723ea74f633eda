"""schemathesis, with every check, against the real server on a seeded store: the OpenAPI
document is exact (every answer documented with its body, request schemas as strict as the
validation) and the server keeps to it.

The store holds the bundled community with the default models trained; the run is bounded
(``MAX_EXAMPLES`` cases per operation and phase, a fixed seed) and takes about a minute on an
idle machine. Rules JSON Schema cannot state (a window ends after it starts...) are kept by the
hooks in ``schemathesis_hooks.py``. A 503 is the documented "not ready" answer (a model that
is not trained: ``sasrec`` and the other models ``agora train`` leaves out by default), so the
server-error check is told to accept it; that it is documented is still checked like every
other status. A batch body one item past its ``maxItems`` (the batch limit) is refused with 413
(Content Too Large), which the negative-data check is told to count as a rejection.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

#: 30 took 654 s for 81 operations (6,612 cases) at a6cd452, over half of the suite's 20-minute
#: budget; 20 took 170 s of a 24-minute suite; 10 keeps every operation and phase (and still
#: found a hook that turned a refused threshold into an accepted one)
MAX_EXAMPLES = 10
SEED = 11
KEY = "schemathesis-admin-key"

CONFIG = """\
[checks.not_a_server_error]
expected-statuses = ["2xx", "3xx", "4xx", "503"]

[checks.negative_data_rejection]
expected-statuses = [
  "400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429",
]
"""


def _with_this_folder() -> str:
    """PYTHONPATH with this folder first, where the hooks module lives."""
    here = str(Path(__file__).resolve().parent)
    return os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH", "")) if p)


@pytest.mark.slow
def test_schemathesis_finds_nothing_with_all_checks(
    tmp_path: Path, bundled_dump: Path, spawn_server: Callable, agora_here: Callable
) -> None:
    env = {
        "AGORA_DATA_DIR": str(tmp_path / "data"),
        "AGORA_API_KEY": KEY,
        "OPENBLAS_NUM_THREADS": "1",
    }
    base = {k: v for k, v in os.environ.items() if not k.startswith("AGORA_")}
    agora_here(["import", str(bundled_dump), "--format", "stackexchange"], env)
    agora_here(["train", "--no-validate"], env)
    server = spawn_server(
        [sys.executable, "-m", "uvicorn", "--factory", "agora.api.app:create_app"], env
    )
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG)
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "--config-file",
        str(config),
        "run",
        f"{server.base_url}/openapi.json",
        "--header",
        f"Authorization: Bearer {KEY}",
        "--checks",
        "all",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--seed",
        str(SEED),
        "--workers",
        "1",
        "--request-timeout",
        "120",
        "--max-response-time",
        "60",
        "--no-color",
    ]
    hooks = {"SCHEMATHESIS_HOOKS": "schemathesis_hooks", "PYTHONPATH": _with_this_folder()}
    done = subprocess.run(
        command, cwd=tmp_path, capture_output=True, text=True, timeout=1200, env=base | hooks
    )
    report = done.stdout + done.stderr
    assert done.returncode == 0, report[-30000:]
    print(report[report.rfind("SUMMARY") :] if "SUMMARY" in report else report[-3000:])  # -s
    selected = re.search(r"Selected: (\d+)/(\d+)", report)
    tested = re.search(r"Tested: (\d+)", report)
    assert selected and tested, report[-3000:]
    assert int(tested.group(1)) == int(selected.group(2)) > 50, report[-3000:]
