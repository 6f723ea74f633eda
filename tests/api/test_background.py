"""Coalesced: work asked for by many requests runs at once when quiet, else once per interval."""

from __future__ import annotations

import threading
import time

from agora.api.background import Coalesced


def _wait_for(condition, seconds: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_requests_within_the_interval_share_one_run_when_it_is_over() -> None:
    runs: list[tuple[float, threading.Thread]] = []
    coalesced = Coalesced(
        "test", lambda: runs.append((time.monotonic(), threading.current_thread())), 0.2
    )
    coalesced.request()  # a quiet moment: at once, in the caller's thread
    assert [thread for _, thread in runs] == [threading.current_thread()]
    for _ in range(5):
        coalesced.request()
    assert len(runs) == 1
    _wait_for(lambda: len(runs) == 2)
    assert runs[1][0] - runs[0][0] >= 0.2
    time.sleep(0.4)
    assert len(runs) == 2  # nothing more was asked for
    coalesced.request()  # quiet again
    assert len(runs) == 3
    coalesced.stop()


def test_a_request_during_a_run_gets_a_run_that_starts_after_it() -> None:
    started, release = threading.Event(), threading.Event()
    runs: list[float] = []

    def slow() -> None:
        runs.append(time.monotonic())
        started.set()
        release.wait(10)

    coalesced = Coalesced("test", slow, 0.05)
    first = threading.Thread(target=coalesced.request)
    first.start()
    assert started.wait(10)
    asked = time.monotonic()
    coalesced.request()  # leaves it to the running one's successor
    release.set()
    first.join(10)
    _wait_for(lambda: len(runs) == 2)
    assert runs[1] > asked
    coalesced.stop()


def test_stop_runs_what_is_still_asked_for_and_then_nothing() -> None:
    runs: list[int] = []
    coalesced = Coalesced("test", lambda: runs.append(1), 60.0)
    coalesced.request()
    coalesced.request()  # due in a minute
    coalesced.stop()  # runs it now
    assert len(runs) == 2
    coalesced.request()
    time.sleep(0.1)
    assert len(runs) == 2


def test_a_failing_run_is_logged_and_the_next_request_runs_again() -> None:
    calls: list[int] = []

    def flaky() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("boom")

    coalesced = Coalesced("test", flaky, 0.0)
    coalesced.request()
    coalesced.request()
    assert len(calls) == 2
    coalesced.stop()
