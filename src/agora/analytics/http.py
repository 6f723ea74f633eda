"""What several analytics routers share: the row-count query parameter, the documentation of a
differentially private answer, and waking a background job from a request."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query, Request

from agora.api import dp

#: How many rows a list route returns.
Top = Annotated[int, Query(ge=1, le=1000, description="How many rows.")]

#: The responses of a route whose figures are released noisy to non-admin keys.
DP_ANSWER = {**dp.RESPONSES, 200: {"headers": dp.HEADER_DOC}}


def wake(request: Request, job: str) -> None:
    """Ask the app's background jobs to run ``job`` soon (when the app runs them)."""
    jobs = getattr(request.app.state, "jobs", None)
    if jobs is not None:
        jobs.wake(job)
