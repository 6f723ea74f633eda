"""Background jobs of a served app: named functions run every so often in one daemon thread,
and soon after a request asks for one (``wake``). A kit: it knows no domain; the app factory
registers each domain's jobs (heavy analytics, sentiment scoring, engagement catch-up,
experiment guardrails). A job that fails is logged and tried again at its next turn.
:class:`Coalesced` runs work asked for by many requests once for those of a short interval.
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


class Coalesced:
    """``run`` after each ``request()``, at most once every ``interval`` seconds: a request at a
    quiet moment (no run started in the last ``interval``) runs it at once, in the caller's
    thread; the requests that come sooner are served together by one run ``interval`` after
    the last one started (in a timer thread). Every request is followed by a run that starts
    after it; one run at a time. ``stop`` (the app's shutdown) runs what is still asked for."""

    def __init__(self, name: str, run: Callable[[], object], interval: float):
        self.name = name
        self.run = run
        self.interval = interval
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._wanted = False  # a request no run has started after yet
        self._busy = False  # a run is going on or armed
        self._running = False
        self._stopped = False
        self._started = float("-inf")  # when the latest run started (monotonic)
        self._timer: threading.Timer | None = None

    def request(self) -> None:
        """Ask for a run: now when quiet, else once the interval since the last one is over."""
        with self._lock:
            self._wanted = True
            if self._busy or self._stopped:
                return
            self._busy = True
            wait = self._started + self.interval - time.monotonic()
            if wait > 0:
                self._arm(wait)
                return
        self._drain()

    def _arm(self, wait: float) -> None:
        """A timer thread runs ``_drain`` in ``wait`` seconds (called holding ``_lock``)."""
        self._timer = threading.Timer(wait, self._drain)
        self._timer.name = f"agora-{self.name}"
        self._timer.daemon = True
        self._timer.start()

    def _drain(self) -> None:
        with self._lock:
            self._timer = None
            if not self._wanted:
                self._busy = False
                return
            self._wanted, self._running = False, True
            self._started = time.monotonic()
        try:
            self.run()
        except Exception:  # logged; the next request runs it again
            log.exception("%s failed", self.name)
        with self._lock:
            self._running = False
            self._idle.notify_all()
            if self._wanted and not self._stopped:
                self._arm(max(0.0, self._started + self.interval - time.monotonic()))
            else:
                self._busy = False

    def stop(self, timeout: float = 30.0) -> None:
        """No more timed runs: waits for a running one, then runs once more if asked for."""
        with self._lock:
            self._stopped = True
            if self._timer is not None:
                self._timer.cancel()
            self._idle.wait_for(lambda: not self._running, timeout)
            if not self._wanted:
                return
        self._drain()
        with self._lock:  # a timer that fired meanwhile may have taken the request
            self._idle.wait_for(lambda: not self._running, timeout)
