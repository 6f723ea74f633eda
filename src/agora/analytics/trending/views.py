"""HTTP routes of trending topics and opinion alerts.

Reads need the ``read`` scope; creating rules and evaluating alerts are operator work
(``admin``) and run in one transaction. A ``sentiment_drop`` rule is evaluated with the newest
trained sentiment model (``agora analytics sentiment train``); without one, evaluation answers
503 saying so.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request, Response, status
from sqlalchemy import select

from agora.analytics import dp_figures
from agora.analytics.http import DP_ANSWER, Top
from agora.analytics.models import AlertRule
from agora.analytics.sentiment import service as sa
from agora.analytics.trending import service as trending
from agora.analytics.trending.schemas import AlertOut, BurstOut, EvaluationOut, RuleOut, TrendingOut
from agora.api import dp
from agora.api.auth import AdminScope, ReadScope
from agora.api.body import body_doc, read_json, validate_one
from agora.api.deps import SessionDep, SessionFactoryDep, SettingsDep
from agora.api.routing import OneHopRoute
from agora.api.types import QueryTime
from agora.db.engine import transaction

router = APIRouter(route_class=OneHopRoute, tags=["analytics"])


def _burst(b: trending.Burst) -> BurstOut:
    return BurstOut(**vars(b))


@router.get(
    "/analytics/trending", response_model=TrendingOut, dependencies=[ReadScope], responses=DP_ANSWER
)
def get_trending(
    request: Request,
    response: Response,
    session: SessionDep,
    bucket: trending.Bucket = "day",
    buckets: Annotated[int, Query(ge=2, le=2000, description="Buckets looked at.")] = 60,
    source: Literal["tags", "keywords"] = "tags",
    alpha: Annotated[float, Query(gt=0, lt=1, description="Poisson tail threshold.")] = 1e-3,
    min_count: Annotated[int, Query(ge=1, le=1_000_000)] = 5,
    now: Annotated[
        QueryTime | None,
        Query(
            description="End of the window (default: now, or the store's newest activity "
            "when the store is historic; see `now_source`)."
        ),
    ] = None,
) -> TrendingOut:
    """Tags (or keywords) whose post volume bursts above their EWMA baseline. With
    differential privacy on (non-admin keys), bursts are found in noisy counts of posts per key
    and bucket (each author bounded), over whole buckets: `now` is rounded down to a bucket."""
    when, origin = (now, "query") if now else trending.store_now(session, datetime.now(UTC), bucket)
    if dp.applies(request):  # released figures cover whole buckets
        width = trending.BUCKETS[bucket]
        when = datetime.fromtimestamp(when.timestamp() // width * width, UTC)
    noisy = dp.answer(
        request,
        response,
        "trending_topics",
        {"now": when, "bucket": bucket, "buckets": buckets, "source": source, "alpha": alpha,
         "min_count": min_count},
        lambda grant: dp_figures.trending_payload(
            session, grant, when, bucket, buckets, source, alpha, min_count
        ),
        lambda released: TrendingOut(
            now=when,
            now_source=origin,
            bucket=bucket,
            trending=[BurstOut(**b) for b in released.payload["trending"]],
            bursts=[BurstOut(**b) for b in released.payload["bursts"]],
            privacy=released.privacy,
        ),
    )  # fmt: skip
    if noisy is not None:
        return noisy
    result = trending.trending(
        session,
        when,
        bucket=bucket,
        n_buckets=buckets,
        source=source,
        alpha=alpha,
        min_count=min_count,
    )
    return TrendingOut(
        now=result.now,
        now_source=origin,
        bucket=result.bucket,
        trending=[_burst(b) for b in result.trending],
        bursts=[_burst(b) for b in result.bursts],
    )


@router.get("/analytics/alerts", response_model=list[AlertOut], dependencies=[ReadScope])
def get_alerts(
    session: SessionDep,
    status_: Annotated[Literal["open", "closed"] | None, Query(alias="status")] = None,
    limit: Top = 100,
) -> list[AlertOut]:
    """Alert episodes, newest first (``status=open`` for the ones still holding)."""
    return [AlertOut.model_validate(e) for e in trending.list_alerts(session, status_, limit)]


@router.get("/analytics/alerts/rules", response_model=list[RuleOut], dependencies=[ReadScope])
def get_rules(session: SessionDep) -> list[RuleOut]:
    """Every alert rule."""
    return [
        RuleOut.model_validate(r) for r in session.scalars(select(AlertRule).order_by(AlertRule.id))
    ]


async def rule_body(request: Request) -> trending.RuleSpec:
    return validate_one(trending.RuleSpec, await read_json(request))


@router.post(
    "/analytics/alerts/rules",
    response_model=RuleOut,
    dependencies=[AdminScope],
    openapi_extra=body_doc(trending.RuleSpec),
    responses={201: {"description": "Rule created."}, 200: {"description": "Rule updated."}},
)
def post_rule(
    body: Annotated[trending.RuleSpec, Depends(rule_body)],
    sessions: SessionFactoryDep,
    response: Response,
) -> RuleOut:
    """Create an alert rule, or update the rule of the same name (idempotent)."""
    with transaction(sessions) as session:
        rule, created = trending.upsert_rule(session, body, datetime.now(UTC))
        out = RuleOut.model_validate(rule)
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
    return out


@router.post(
    "/analytics/alerts/evaluate",
    response_model=EvaluationOut,
    dependencies=[AdminScope],
)
def post_evaluate(
    sessions: SessionFactoryDep,
    settings: SettingsDep,
    now: Annotated[
        QueryTime | None,
        Query(
            description="Evaluate at (default: now, or the store's newest activity when the "
            "store is historic; see `now_source`)."
        ),
    ] = None,
) -> EvaluationOut:
    """Evaluate every enabled rule now: fire new episodes, keep or close open ones."""

    def scorer() -> sa.SentimentClassifier:
        return sa.load_sentiment(settings.model_dir)  # the shipped one unless trained here

    with transaction(sessions) as session:
        when, origin = (now, "query") if now else trending.store_now(session, datetime.now(UTC))
        run = trending.evaluate_alerts(session, when, scorer)
        out = EvaluationOut(
            now=when,
            now_source=origin,
            fired=[AlertOut.model_validate(e) for e in run.fired],
            ongoing=[AlertOut.model_validate(e) for e in run.ongoing],
            closed=[AlertOut.model_validate(e) for e in run.closed],
        )
    return out
