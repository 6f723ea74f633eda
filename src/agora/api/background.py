"""Background jobs of a served app: named functions run every so often in one daemon thread,
and soon after a request asks for one (``wake``). A kit: it knows no domain; the app factory
registers each domain's jobs (heavy analytics, sentiment scoring, engagement catch-up,
experiment guardrails). A job that fails is logged and tried again at its next turn.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)


@dataclass
class Job:
    """``run`` every ``every`` seconds (0: only when woken)."""

    name: str
    run: Callable[[], object]
    every: float
    last: float = field(default=float("-inf"), repr=False)


class Jobs:
    """The jobs of one app and the thread that runs them (started and stopped by its lifespan)."""

    def __init__(self, jobs: list[Job], tick: float = 1.0):
        self.jobs = {job.name: job for job in jobs}
        self.tick = tick
        self._woken: set[str] = set()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def wake(self, name: str) -> None:
        """Run job ``name`` at the next turn of the thread (a no-op for unknown names)."""
        with self._lock:
            self._woken.add(name)
        self._wake.set()

    def run_due(self) -> list[str]:
        """One turn: run every job that is due or was woken; returns the names run."""
        now = time.monotonic()
        with self._lock:
            woken, self._woken = self._woken, set()
        ran = []
        for job in self.jobs.values():
            due = job.every > 0 and now - job.last >= job.every
            if not (due or job.name in woken) or self._stop.is_set():
                continue
            job.last = now
            started = time.perf_counter()
            try:
                job.run()
            except Exception:  # a failing job must not stop the others
                log.exception("background job %s failed", job.name)
            else:  # every 15 s: worth an info line only when it did real work
                seconds = time.perf_counter() - started
                level = logging.INFO if seconds >= 1.0 else logging.DEBUG
                log.log(level, "background job %s took %.2f s", job.name, seconds)
            ran.append(job.name)
        return ran

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.run_due()
            self._wake.wait(self.tick)
            self._wake.clear()

    def start(self) -> None:
        """Start the thread; each periodic job first runs one period from now (or when woken),
        so starting a server does not start every heavy job at once."""
        now = time.monotonic()
        for job in self.jobs.values():
            job.last = now
        if self._thread is None and self.jobs:
            self._thread = threading.Thread(target=self._loop, name="agora-jobs", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
