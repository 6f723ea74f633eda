"""Prometheus metrics (``prometheus_client``), answered at ``GET /metrics``
(:mod:`agora.api.app`; this module imports no FastAPI: the feed and the worker count here).

What is measured:

* ``agora_http_requests_total{method,route,status}`` and
  ``agora_http_request_duration_seconds{method,route}``: every request, labelled by its route
  *template* (``/users/{user_id}/feed``), never the raw path (one series per route, and no user
  id in a label); unmatched paths count as ``route="unmatched"``.
* ``agora_http_rate_limited_total{route_class}``: requests answered 429 by the rate limits.
* ``agora_feed_items_served_total{source}``: items put on feed pages per candidate source.
* ``agora_feed_page_builds{state}``: feed pages being built (``building``) or waiting for a
  build slot (``waiting``); ``agora_feed_refreshes_running``: background cache refreshes;
  ``agora_feed_sessions_held``: browsing sessions whose next pages are held in memory.
* ``agora_feed_impressions_buffered``: served impressions waiting in the workers' buffers;
  ``agora_feed_impressions_written_total``; ``agora_feed_impression_flushes_total{outcome}``
  (``ok``, ``failed``: the rows stay for the next flush); ``agora_feed_impressions_dropped_total
  {reason}`` (``bound``: past the buffer's bound while the database failed; ``gone``: their user
  or item was erased before they were written).
* ``agora_model_loaded{model,version}``: 1 per model version the answering worker serves.

Several workers (``agora serve --workers N``): the CLI points ``PROMETHEUS_MULTIPROC_DIR`` at a
fresh folder before the workers start, so counters, histograms and gauges are summed over all
workers whichever one answers the scrape (prometheus_client's multiprocess mode); the model
gauge is the answering worker's view (all workers read the same model folder).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Protocol

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"

HTTP_REQUESTS = Counter(
    "agora_http_requests_total", "HTTP requests answered.", ["method", "route", "status"]
)
HTTP_DURATION = Histogram(
    "agora_http_request_duration_seconds",
    "Time to answer a request, by route template.",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
RATE_LIMITED = Counter(
    "agora_http_rate_limited_total",
    "Requests answered 429: an API key past its rate limit, by route class.",
    ["route_class"],
)
FEED_ITEMS_SERVED = Counter(
    "agora_feed_items_served_total", "Items put on feed pages, by candidate source.", ["source"]
)
FEED_REFRESHES_RUNNING = Gauge(
    "agora_feed_refreshes_running",
    "Background feed-cache refreshes running.",
    multiprocess_mode="livesum",
)
FEED_SESSIONS_HELD = Gauge(
    "agora_feed_sessions_held",
    "Browsing sessions whose next pages are held in this process's memory.",
    multiprocess_mode="livesum",
)
IMPRESSIONS_BUFFERED = Gauge(
    "agora_feed_impressions_buffered",
    "Served feed impressions waiting in this process's buffer to be written.",
    multiprocess_mode="livesum",
)
IMPRESSIONS_WRITTEN = Counter(
    "agora_feed_impressions_written_total", "Feed impressions written from the buffer."
)
IMPRESSION_FLUSHES = Counter(
    "agora_feed_impression_flushes_total",
    "Writes of buffered feed impressions, by outcome (failed ones are retried).",
    ["outcome"],
)
IMPRESSIONS_DROPPED = Counter(
    "agora_feed_impressions_dropped_total",
    "Buffered feed impressions never written: past the bound while the database failed "
    "(bound) or of a user or item erased meanwhile (gone).",
    ["reason"],
)


@contextmanager
def tracked(gauge: Gauge) -> Iterator[None]:
    """Count one unit on ``gauge`` while the block runs."""
    gauge.inc()
    try:
        yield
    finally:
        gauge.dec()


class Versioned(Protocol):
    """What the model gauge reads (a :class:`agora.serving.service.ModelStore`)."""

    def versions(self) -> dict[str, str]: ...


class ModelVersions(Collector):
    """``agora_model_loaded{model,version} 1`` for each model the app serves."""

    def __init__(self, models: Versioned):
        self.models = models

    def collect(self) -> Iterable[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "agora_model_loaded",
            "Trained model versions served (1 each).",
            labels=["model", "version"],
        )
        for name, version in sorted(self.models.versions().items()):
            family.add_metric([name, version], 1)
        yield family


def multiprocess_enabled() -> bool:
    return bool(os.environ.get(MULTIPROCESS_ENV))


def exposition(models: Versioned) -> bytes:
    """The text exposition of every metric: this process's (or, in multiprocess mode, every
    worker's) plus the model versions."""
    if multiprocess_enabled():
        shared = CollectorRegistry()
        multiprocess.MultiProcessCollector(shared)
        base = generate_latest(shared)
    else:
        base = generate_latest(REGISTRY)
    own = CollectorRegistry()
    own.register(ModelVersions(models))
    return base + generate_latest(own)


def worker_stopped(pid: int) -> None:
    """Drop a stopped worker's live gauges (multiprocess mode only)."""
    if multiprocess_enabled():
        multiprocess.mark_process_dead(pid)
