"""HTTP routes of analytics: sentiment of the store's posts and comments per tag, author or day.

``GET /analytics/sentiment`` needs the ``read`` scope and a trained sentiment model
(``agora analytics sentiment train``); without one it answers 503 saying so.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from agora.analytics import sentiment as sa
from agora.api.auth import ReadScope
from agora.api.deps import SessionDep, SettingsDep
from agora.api.types import QueryTime
from agora.serving.service import ModelUnavailable

router = APIRouter(tags=["analytics"])


class SentimentGroupOut(BaseModel):
    key: str = Field(description="The tag, author id or day (YYYY-MM-DD, UTC).")
    n: int = Field(description="Posts and comments counted.")
    mean_score: float = Field(description="Mean of P(positive) - P(negative), in [-1, 1].")
    positive: int
    neutral: int
    negative: int


class SentimentOut(BaseModel):
    by: str
    n_texts: int = Field(description="Posts and comments with text that were scored.")
    model_version: str
    groups: list[SentimentGroupOut]


@lru_cache(maxsize=2)
def _loaded(path: Path) -> sa.SentimentClassifier:
    """One loaded model per artefact version (a newer version is picked up on the next call)."""
    return sa.load_sentiment_version(path)


@router.get(
    "/analytics/sentiment",
    response_model=SentimentOut,
    dependencies=[ReadScope],
    responses={503: {"description": "No sentiment model is trained yet."}},
)
def sentiment_by(
    session: SessionDep,
    settings: SettingsDep,
    by: Annotated[Literal["tag", "author", "day"], Query(description="Group by.")] = "tag",
    limit: Annotated[int, Query(ge=1, le=1000, description="Groups returned.")] = 50,
    since: Annotated[QueryTime | None, Query(description="Only texts from this time.")] = None,
    until: Annotated[QueryTime | None, Query(description="Only texts before this time.")] = None,
) -> SentimentOut:
    """Mean sentiment and label counts of posts (title + body) and commented text, per group."""
    path = sa.latest_sentiment_path(settings.model_dir)
    if path is None:
        raise ModelUnavailable(
            "no sentiment model is trained; run `agora analytics sentiment train`"
        )
    scored = sa.score_store(session, _loaded(path), since=since, until=until)
    groups = sa.aggregate(scored, by)[:limit]
    return SentimentOut(
        by=by,
        n_texts=len(scored),
        model_version=path.name,
        groups=[SentimentGroupOut(**vars(g)) for g in groups],
    )
