"""What starting the ``agora`` command costs: which libraries a fresh interpreter loads.

Every command, ``agora serve`` and ``agora worker`` pay their imports before doing anything,
and many tests start them as real processes. ``import agora.cli.main`` took 2-3 s when it
imported every domain's command group and, through them, scipy and scikit-learn; now each group
is imported when a command names it (``agora.cli.main.SUB_APPS``), the domains import
scipy.stats and scikit-learn where they use them, and FastAPI only with the app (the services
raise :mod:`agora.api.errors`' kinds, answered by :mod:`agora.api.error_handlers`; the feed
counts in :mod:`agora.api.metrics`, whose route is the app's). These tests keep it so.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

#: Not one of these is needed to parse a command line or print a help page.
HEAVY_FOR_THE_COMMAND = ("scipy", "sklearn", "torch", "pandas", "pyspark", "fastapi", "uvicorn")
#: Loaded by a domain only where a function needs them (fitting, statistics), not on import.
HEAVY_FOR_A_DOMAIN = ("sklearn", "scipy.stats", "scipy.linalg", "torch", "pandas", "pyspark")
#: What a command and the worker do not serve with.
SERVING = ("fastapi", "starlette", "uvicorn")


def loaded_after(statement: str, names: tuple[str, ...]) -> list[str]:
    """Which of ``names`` (packages or modules) a fresh interpreter holds after ``statement``."""
    probe = (
        f"import json, sys\n{statement}\n"
        f"print(json.dumps([n for n in {list(names)!r} if n in sys.modules]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        env=os.environ,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def test_importing_the_command_loads_no_heavy_library() -> None:
    assert loaded_after("import agora.cli.main", HEAVY_FOR_THE_COMMAND) == []


def test_the_command_groups_and_the_worker_import_neither_a_fitting_library_nor_fastapi() -> None:
    from agora.cli.main import SUB_APPS

    modules = [*SUB_APPS.values(), "agora.wiring", "agora.feed.refresher", "agora.gorse.cli"]
    statement = "\n".join(f"import {module}" for module in modules)
    assert loaded_after(statement, HEAVY_FOR_A_DOMAIN + SERVING) == []


def test_the_server_imports_no_fitting_library() -> None:
    assert loaded_after("import agora.api.app", HEAVY_FOR_A_DOMAIN) == []
