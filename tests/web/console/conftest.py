"""One real ``agora serve`` on a demo-like store and one Chromium for every console test.

The store is the demo's (``agora demo --no-serve``: the bundled Cardano community and the
default models), plus what a platform would send while the console is open
(:func:`console_support.platform_traffic`).
Chromium is Debian's, driven by Playwright (never ``playwright install``); under ``CI=true`` a
missing browser or Playwright fails the run instead of skipping it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from console_support import (
    ADMIN,
    AGORA,
    CHROMIUM,
    CHROMIUM_ARGS,
    READER,
    SASREC_QUICK,
    WRITER,
    Store,
    missing,
    platform_traffic,
)
from live_server import kill_server, start_server


@pytest.fixture(scope="session")
def store(tmp_path_factory: pytest.TempPathFactory, agora_here: Callable) -> Iterator[Store]:
    folder = tmp_path_factory.mktemp("console")
    env = {
        "AGORA_DATA_DIR": str(folder / "agora-data"),
        "AGORA_API_KEY": ADMIN,
        "AGORA_API_KEYS": f'{{"{WRITER}": ["write"], "{READER}": ["read"]}}',
        "OPENBLAS_NUM_THREADS": "1",
        # a training run started from the Models page stays short (sasrec: a curve of epochs)
        "AGORA_MODEL_PARAMS": json.dumps({"sasrec": SASREC_QUICK}),
    }
    agora_here(["demo", "--no-serve"], env)  # the bundled community, the default models
    server = start_server([*AGORA, "serve"], env, folder)
    served = Store(server, folder)
    try:
        platform_traffic(served)
        # an operator's first look at sentiment starts the background scorer on the imported
        # posts (oldest first), as it would have long before the console's Analytics page is
        # opened; the analytics tests read an early window of them
        assert served.api("GET", "/analytics/sentiment").json()["pending"] > 0
        yield served
    finally:
        kill_server(server)


@pytest.fixture(scope="module")
def browser():
    """One chromium per test module: Playwright's sync API keeps an event loop running in the
    main thread while it is open, so a session-wide one would make every later test's
    ``asyncio.run`` fail."""
    if not Path(CHROMIUM).exists():
        missing(f"Debian's chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing("playwright is not installed (pip install -e '.[dev]')")
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield launched
        launched.close()
