"""HTTP routes of analytics: sentiment of the store's posts and comments per tag, author or day.

``GET /analytics/sentiment`` (``read`` scope) reads the scores stored per post and comment: the
background scorer of ``agora serve`` (:func:`agora.analytics.jobs.score_sentiment`) scores new
ones as they arrive with the model shipped in the package (or a newer one trained here), so the
route answers at once and says how many texts are still ``pending``.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, Field

from agora.analytics import dp_figures
from agora.analytics import sentiment as sa
from agora.api.auth import ReadScope
from agora.api.deps import SessionDep, SettingsDep
from agora.api.routing import OneHopRoute
from agora.api.types import QueryTime
from agora.privacy import dp

router = APIRouter(route_class=OneHopRoute, tags=["analytics"])

#: The background job that scores new posts and comments (see agora.api.app).
SENTIMENT_JOB = "sentiment"


class SentimentGroupOut(BaseModel):
    key: str = Field(description="The tag, author id or day (YYYY-MM-DD, UTC).")
    n: int = Field(description="Posts and comments counted.")
    mean_score: float = Field(description="Mean of P(positive) - P(negative), in [-1, 1].")
    positive: int
    neutral: int
    negative: int


class SentimentOut(dp.Marked):
    by: str
    n_texts: int = Field(description="Posts and comments with text that are scored.")
    pending: int = Field(
        description="Posts and comments not scored by the current model yet (the background "
        "scorer is on them; they are counted once scored)."
    )
    model_version: str
    groups: list[SentimentGroupOut]


def wake(request: Request, job: str) -> None:
    """Ask the app's background jobs to run ``job`` soon (when the app runs them)."""
    jobs = getattr(request.app.state, "jobs", None)
    if jobs is not None:
        jobs.wake(job)


@router.get(
    "/analytics/sentiment",
    response_model=SentimentOut,
    dependencies=[ReadScope],
    responses={**dp.RESPONSES, 200: {"headers": dp.HEADER_DOC}},
)
def sentiment_by(
    request: Request,
    response: Response,
    session: SessionDep,
    settings: SettingsDep,
    by: Annotated[Literal["tag", "author", "day"], Query(description="Group by.")] = "tag",
    limit: Annotated[int, Query(ge=1, le=1000, description="Groups returned.")] = 50,
    since: Annotated[QueryTime | None, Query(description="Only texts from this time.")] = None,
    until: Annotated[QueryTime | None, Query(description="Only texts before this time.")] = None,
) -> SentimentOut:
    """Mean sentiment and label counts of posts (title + body) and commented text, per group.
    With differential privacy on (non-admin keys), the counts and means are released noisy
    (``privacy``), each author's texts bounded per group."""
    version = sa.model_version(sa.scorer_path(settings.model_dir))
    pending = sa.pending_count(session, version)
    if pending:
        wake(request, SENTIMENT_JOB)
    noisy = dp.answer(
        request,
        response,
        "sentiment",
        {"by": by, "since": since, "until": until, "model_version": version},
        lambda grant: dp_figures.sentiment_payload(session, grant, by, since, until),
        lambda released: SentimentOut(
            by=by,
            n_texts=released.payload["n_texts"],
            pending=pending,
            model_version=version,
            groups=[SentimentGroupOut(**g) for g in released.payload["groups"][:limit]],
            privacy=released.privacy,
        ),
    )
    if noisy is not None:
        return noisy
    scored = sa.stored_scores(session, since=since, until=until)
    groups = sa.aggregate(scored, by)[:limit]
    return SentimentOut(
        by=by,
        n_texts=len(scored),
        pending=pending,
        model_version=version,
        groups=[SentimentGroupOut(**vars(g)) for g in groups],
    )
