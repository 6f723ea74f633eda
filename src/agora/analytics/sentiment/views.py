"""HTTP route of sentiment: the sentiment of the store's posts and comments per tag, author or day.

``GET /analytics/sentiment`` (``read`` scope) reads the scores stored per post and comment: the
background scorer of ``agora serve`` (:func:`agora.analytics.jobs.score_sentiment`) scores new
ones as they arrive with the model shipped in the package (or a newer one trained here), so the
route answers at once and says how many texts are still ``pending``.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response

from agora.analytics import dp_figures
from agora.analytics.http import DP_ANSWER, wake
from agora.analytics.jobs import SENTIMENT_JOB
from agora.analytics.sentiment import service as sa
from agora.analytics.sentiment.schemas import SentimentGroupOut, SentimentOut
from agora.api import dp
from agora.api.auth import ReadScope
from agora.api.deps import SessionDep, SettingsDep
from agora.api.routing import OneHopRoute
from agora.api.types import QueryTime

router = APIRouter(route_class=OneHopRoute, tags=["analytics"])


@router.get(
    "/analytics/sentiment",
    response_model=SentimentOut,
    dependencies=[ReadScope],
    responses=DP_ANSWER,
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
