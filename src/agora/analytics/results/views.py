"""HTTP side of the results computed in the background: what a GET answers before the first
result exists (202, pending), the age fields every stored result carries, and
``POST /analytics/refresh`` (``write`` scope), which schedules a recomputation."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, status
from fastapi.responses import JSONResponse

from agora.analytics.http import wake
from agora.analytics.jobs import SENTIMENT_JOB
from agora.analytics.results import service as results
from agora.analytics.results.schemas import Freshness, PendingOut, ScheduledOut
from agora.api.auth import AdminScope
from agora.api.deps import SessionFactoryDep
from agora.api.routing import OneHopRoute
from agora.db.engine import transaction

router = APIRouter(route_class=OneHopRoute, tags=["analytics"])

Job = Literal["anomalies", "influence", "sentiment", "all"]


def pending_doc(job: str) -> dict[int | str, dict]:
    """The 202 answer's documentation for a route reading stored result ``job``."""
    return {
        202: {
            "model": PendingOut,
            "description": f"Nothing computed yet: the {job} job was started; ask again soon.",
        }
    }


def pending(request: Request, job: str) -> JSONResponse:
    """The 202 answer of a GET whose result was never computed; starts the job."""
    wake(request, job)
    body = PendingOut(
        job=job,
        detail=f"no {job} result has been computed yet; the background job was started, "
        "ask again in a moment",
    )
    return JSONResponse(body.model_dump(), status.HTTP_202_ACCEPTED)


def freshness(stored: results.Stored) -> Freshness:
    now = datetime.now(UTC)
    return Freshness(
        computed_at=stored.computed_at,
        age_seconds=round(stored.age_seconds(now), 3),
        compute_seconds=round(stored.seconds, 3),
        refresh_requested=stored.requested,
        refresh=f"POST /analytics/refresh?job={stored.key} (write scope)",
    )


@router.post(
    "/analytics/refresh",
    response_model=ScheduledOut,
    status_code=status.HTTP_202_ACCEPTED,
    dependencies=[AdminScope],
)
def post_refresh(
    request: Request,
    sessions: SessionFactoryDep,
    job: Annotated[Job, Query(description="What to recompute.")] = "all",
) -> ScheduledOut:
    """Schedule a recomputation in the background; the GET routes show it once stored (their
    `computed_at` changes)."""
    jobs = [*results.KEYS, SENTIMENT_JOB] if job == "all" else [job]
    now = datetime.now(UTC)
    with transaction(sessions) as session:
        for key in jobs:
            if key in results.KEYS:
                results.request(session, key, now)
    for key in jobs:
        wake(request, key)
    return ScheduledOut(
        scheduled=jobs, detail="scheduled in the background; the GET routes show when it is done"
    )
