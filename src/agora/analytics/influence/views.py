"""HTTP routes of influence, cascades, trending topics and opinion alerts.

Reads need the ``read`` scope; creating rules and evaluating alerts are operator work
(``admin``) and run in one transaction. A ``sentiment_drop`` rule is evaluated with the newest
trained sentiment model (``agora analytics sentiment train``); without one, evaluation answers
503 saying so.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response, status
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from agora.analytics import dp_figures, influence, results, trending
from agora.analytics import sentiment as sa
from agora.analytics.models import AlertRule
from agora.analytics.results_views import Freshness, freshness, pending, pending_doc
from agora.api.auth import AdminScope, ReadScope
from agora.api.body import body_doc, read_json, validate_one
from agora.api.deps import SessionDep, SessionFactoryDep, SettingsDep
from agora.api.errors import NotFound
from agora.api.routing import OneHopRoute
from agora.api.types import QueryTime
from agora.db.engine import transaction
from agora.privacy import dp

router = APIRouter(route_class=OneHopRoute, tags=["analytics"])

Top = Annotated[int, Query(ge=1, le=1000, description="How many rows.")]


class UserInfluenceOut(BaseModel):
    user_id: str
    pagerank: float = Field(description="Weighted PageRank (sums to 1 over the graph).")
    eigenvector: float = Field(description="Eigenvector centrality, undirected, max = 1.")
    in_degree: float = Field(description="Weighted in-degree (attention received).")


class InfluenceOut(Freshness):
    users: int = Field(description="Users in the attention graph.")
    edges: int
    top: list[UserInfluenceOut]


class ReachOut(BaseModel):
    key: str = Field(description="Item or author external id.")
    users: int = Field(description="Distinct users other than the author with an event.")
    events: int


class CascadeNodeOut(BaseModel):
    user_id: str
    parent: str | None
    depth: int
    seconds: float = Field(description="Seconds after the item was created.")
    how: str = Field(description="root, via (named in the event), follow or root fallback.")


class CascadeOut(BaseModel):
    item_id: str
    root: str
    size: int
    depth: int
    max_breadth: int
    structural_virality: float
    seconds_to_10: float | None
    seconds_to_100: float | None
    repeated_shares: int
    nodes: list[CascadeNodeOut]


class BurstOut(BaseModel):
    key: str
    start: datetime
    end: datetime
    peak_count: int
    baseline: float
    p_value: float
    total: int


NowSource = Literal["query", "clock", "store"]
NOW_SOURCE_DOC = (
    "Where `now` came from: `query` (given), `clock` (the wall clock), or `store`: the store's "
    "newest post or event, used when that is more than a bucket old (a historic store, such as "
    "an imported dump), so the window holds the store's data."
)


class TrendingOut(dp.Marked):
    now: datetime = Field(description="End of the window analysed.")
    now_source: NowSource = Field(description=NOW_SOURCE_DOC)
    bucket: str
    trending: list[BurstOut] = Field(description="Keys bursting in the last bucket.")
    bursts: list[BurstOut] = Field(description="Every burst in the window, strongest first.")


class RuleOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    kind: str
    tag: str | None
    bucket: str
    baseline_buckets: int
    threshold: float
    min_count: int
    enabled: bool
    created: datetime
    updated: datetime


class AlertOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    rule_id: int
    kind: str
    key: str = Field(description="The tag the alert is about.")
    status: str
    opened: datetime
    last_seen: datetime
    closed: datetime | None
    value: float = Field(description="Count (spike) or mean sentiment (drop) when it fired.")
    baseline: float
    peak: float
    detail: dict[str, Any]


class EvaluationOut(BaseModel):
    now: datetime
    now_source: NowSource = Field(description=NOW_SOURCE_DOC)
    fired: list[AlertOut]
    ongoing: list[AlertOut]
    closed: list[AlertOut]


@router.get(
    "/analytics/influence",
    response_model=InfluenceOut,
    dependencies=[ReadScope],
    responses=pending_doc("influence"),
)
def get_influence(
    request: Request,
    session: SessionDep,
    top: Top = 20,
    events: Annotated[bool, Query(description="Count interactions with authors' posts.")] = True,
) -> InfluenceOut | JSONResponse:
    """Most influential users by PageRank on the follow/trust/friend/interaction graph, as the
    background job last computed it (202 before the first run)."""
    stored = results.read(session, "influence")
    if stored is None:
        return pending(request, "influence")
    graph = stored.payload["with_events" if events else "without_events"]
    return InfluenceOut(
        users=graph["users"],
        edges=graph["edges"],
        top=graph["top"][:top],
        **freshness(stored).model_dump(),
    )


DP_ANSWER = {**dp.RESPONSES, 200: {"headers": dp.HEADER_DOC}}


@router.get(
    "/analytics/reach",
    response_model=list[ReachOut],
    dependencies=[ReadScope],
    responses=DP_ANSWER,
)
def get_reach(
    request: Request,
    response: Response,
    session: SessionDep,
    by: Literal["item", "author"] = "item",
    n: Top = 20,
) -> list[ReachOut]:
    """Posts or authors by the number of distinct users who engaged with them (``n`` rows, the
    name every list route uses). With differential privacy on (non-admin keys): ranked by
    noisy counts (header `X-Privacy`)."""
    noisy = dp.answer(
        request,
        response,
        "reach",
        {"by": by},
        lambda grant: dp_figures.reach_payload(session, grant, by),
        lambda released: [ReachOut(**r) for r in released.payload["rows"][:n]],
    )
    if noisy is not None:
        return noisy
    return [ReachOut(**vars(r)) for r in influence.reach(session, by, n)]


@router.get(
    "/analytics/cascades/{item_id}",
    response_model=CascadeOut,
    dependencies=[ReadScope],
    responses={404: {"description": "The item is not in the store."}},
)
def get_cascade(
    session: SessionDep,
    item_id: Annotated[str, PathParam(min_length=1, max_length=255)],
) -> CascadeOut:
    """The share/repost tree of one item with its size, depth, breadth and virality."""
    cascade = influence.item_cascade(session, item_id)
    if cascade is None:
        raise NotFound(f"item {item_id!r} is not in the store")
    stats = cascade.stats()
    depths = cascade.depths()
    nodes = [
        CascadeNodeOut(
            user_id=user,
            parent=cascade.parent[user],
            depth=depths[user],
            seconds=cascade.time[user] - cascade.root_time,
            how=cascade.how[user],
        )
        for user in cascade.parent
    ]
    return CascadeOut(
        item_id=item_id,
        root=cascade.root,
        repeated_shares=cascade.duplicates,
        nodes=nodes,
        **stats,  # type: ignore[arg-type]
    )


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
