"""What the console's browser tests share: the served store, keys, signing in, screenshots."""

from __future__ import annotations

import os
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from live_server import LiveServer

REPO = Path(__file__).resolve().parents[3]
SCREENSHOTS = REPO / "bench" / "results" / "console"
CHROMIUM = "/usr/bin/chromium"
#: As ../shared/DEPENDENCIES.md launches Debian's chromium.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--disable-dev-shm-usage",
]
ADMIN, WRITER, READER = "console-admin-key", "console-write-key", "console-read-key"
AGORA = [sys.executable, "-m", "agora.cli.main"]
#: sasrec's parameters in the served store: a few quick epochs, so that a training run started
#: from the Models page draws a real training curve in a few seconds.
SASREC_QUICK = {"epochs": 3, "max_seconds": 8, "batch_size": 64, "verbose": False}
#: The post whose cascade the tests draw (user 28 wrote it) and who shares it, each via the last.
SHARED_ITEM = "4628"
SHARERS = ("17", "31", "5")


@dataclass(frozen=True)
class Store:
    """The served store: its server and its folder (the SQLite file is in agora-data/)."""

    server: LiveServer
    folder: Path

    @property
    def url(self) -> str:
        return self.server.base_url

    def api(self, method: str, path: str, key: str = ADMIN, **kwargs) -> httpx.Response:
        headers = {"Authorization": f"Bearer {key}"}
        return httpx.request(method, self.url + path, headers=headers, timeout=30, **kwargs)


def missing(what: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what} (CI=true: the browser tests must run)")
    pytest.skip(what)


def platform_traffic(store: Store) -> None:
    """What a platform sends while operators watch: shares, fresh events, feed reads."""
    now = time.time()
    events = [
        {
            "event_id": f"console-share-{user}",
            "user_id": user,
            "item_id": SHARED_ITEM,
            "type": "share",
            "context": {"via": SHARERS[i - 1]} if i else {},
        }
        for i, user in enumerate(SHARERS)
    ]
    events += [
        {"event_id": f"console-view-{uuid.uuid4().hex}", "user_id": "28", "item_id": item,
         "type": "view"}
        for item in ("4627", "4596")
    ]  # fmt: skip
    posted = store.api("POST", "/events", key=WRITER, json=events)
    assert posted.status_code in (200, 201), posted.text
    for user in ("28", "17", "31"):
        assert store.api("GET", f"/users/{user}/feed", key=READER).status_code == 200
    time.sleep(1.5 - min(1.5, time.time() - now))  # the impression buffer writes each second


def sign_in(browser, store: Store, key: str, lang: str | None = None):
    """A new browser context signed in with ``key``, and its page (on the overview)."""
    context = browser.new_context(viewport={"width": 1360, "height": 900}, locale="en-US")
    if lang:
        context.add_cookies([{"name": "agora_lang", "value": lang, "url": store.url}])
    page = context.new_page()
    page.goto(store.url + "/console/")
    assert "/console/signin" in page.url
    page.fill("#api_key", key)
    page.click("form button[type=submit]")
    page.wait_for_url(store.url + "/console/")
    return context, page


#: Per chart: drawn by console.js, and its SVG holds more than the empty frame.
CHARTS_DRAWN = """els => els.map(el => el.getAttribute('data-drawn') === 'true'
    && el.querySelectorAll('svg path').length > 3)"""


def charts_drawn(page) -> list[bool]:
    """Whether each chart of the page drew (waits until console.js has drawn them all)."""
    charts = page.locator("[data-chart]")
    charts.first.wait_for()
    page.wait_for_function(
        "() => [...document.querySelectorAll('[data-chart]')].every("
        "el => el.getAttribute('data-drawn') === 'true')"
    )
    return charts.evaluate_all(CHARTS_DRAWN)


def screenshot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
