"""Heavy analytics computed by background jobs and stored with their time.

Fake-engagement detection and influence read the whole store: a GET must not recompute them.
A job (:mod:`agora.analytics.jobs`, run by ``agora serve`` in the background, by
``POST /analytics/refresh`` or by ``agora analytics refresh``) computes each result and stores it
in ``analytics_results`` with ``computed_at`` and the seconds it took; the GET routes read the
stored result and show its age. :func:`compute_anomalies` and :func:`compute_influence` build
the JSON payloads (the largest ``top`` the routes accept, so any ``top`` is a slice).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from agora.analytics.anomalies import service as anomalies
from agora.analytics.influence import service as influence
from agora.analytics.models import ComputedResult
from agora.db.engine import insert_for
from agora.ingest.schemas import as_utc

#: The heavy results and what each is.
KEYS = {
    "anomalies": "fake-engagement scores of users and items (/analytics/anomalies/*)",
    "influence": "PageRank influence of users (/analytics/influence)",
}
#: Rows kept per ranked list: the most any route's ``top`` asks for.
MAX_TOP = 1000


@dataclass
class Stored:
    """A stored result: the payload, when it was computed and in how many seconds."""

    key: str
    payload: dict[str, Any]
    computed_at: datetime
    seconds: float
    requested: datetime | None

    def age_seconds(self, now: datetime) -> float:
        return max(0.0, (now - self.computed_at).total_seconds())


def read(session: Session, key: str) -> Stored | None:
    """The stored result ``key``, or None when none was computed yet."""
    row = session.get(ComputedResult, key)
    if row is None or row.computed_at is None or not isinstance(row.payload, dict):
        return None
    return Stored(
        key,
        row.payload,
        as_utc(row.computed_at),
        float(row.seconds or 0.0),
        None if row.requested is None else as_utc(row.requested),
    )


def request(session: Session, key: str, now: datetime) -> None:
    """Note that a fresh ``key`` was asked for (the job clears it when it stores one)."""
    stmt = insert_for(session, ComputedResult).values(key=key, requested=now)
    session.execute(stmt.on_conflict_do_update(index_elements=["key"], set_={"requested": now}))


def store(session: Session, key: str, payload: dict[str, Any], now: datetime, seconds: float):
    """Replace the stored result ``key``."""
    values = {"payload": payload, "computed_at": now, "seconds": seconds, "requested": None}
    stmt = insert_for(session, ComputedResult).values(key=key, **values)
    session.execute(stmt.on_conflict_do_update(index_elements=["key"], set_=values))


def compute_anomalies(session: Session) -> dict[str, Any]:
    """The fake-engagement report as stored: counts, threshold and the top users and items."""
    report = anomalies.detect(session)
    threshold = report.params.flag_at
    return {
        "scored_users": len(report.users),
        "scored_items": len(report.items),
        "flagged": len(report.flagged()),
        "threshold": threshold,
        "weights": dict(anomalies.WEIGHTS),
        "users": [{**asdict(u), "flagged": u.score >= threshold} for u in report.users[:MAX_TOP]],
        "items": [asdict(i) for i in report.items[:MAX_TOP]],
    }


def compute_influence(session: Session, event_weights: dict[str, float]) -> dict[str, Any]:
    """PageRank influence with and without interactions on authors' posts, as stored."""
    out = {}
    for name, include in (("with_events", True), ("without_events", False)):
        graph = influence.build_user_graph(
            session, event_weights=event_weights, include_events=include
        )
        out[name] = {
            "users": graph.vcount(),
            "edges": graph.ecount(),
            "top": [asdict(r) for r in influence.centrality(graph, MAX_TOP)],
        }
    return out


def refresh(session: Session, key: str, now: datetime, event_weights: dict[str, float]) -> float:
    """Compute and store result ``key`` in the caller's transaction; returns the seconds."""
    if key not in KEYS:
        raise ValueError(f"unknown result {key!r}; known: {', '.join(KEYS)}")
    started = time.perf_counter()
    if key == "anomalies":
        payload = compute_anomalies(session)
    else:
        payload = compute_influence(session, event_weights)
    seconds = time.perf_counter() - started
    store(session, key, payload, now, seconds)
    return seconds
