"""HTTP routes of influence: the most influential users, the reach of posts and authors, and
the share cascade of one item (``read`` scope)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse

from agora.analytics import dp_figures
from agora.analytics.http import DP_ANSWER, Top
from agora.analytics.influence import service as influence
from agora.analytics.influence.schemas import CascadeNodeOut, CascadeOut, InfluenceOut, ReachOut
from agora.analytics.results import service as results
from agora.analytics.results.views import freshness, pending, pending_doc
from agora.api import dp
from agora.api.auth import ReadScope
from agora.api.deps import SessionDep
from agora.api.errors import NotFound
from agora.api.routing import OneHopRoute

router = APIRouter(route_class=OneHopRoute, tags=["analytics"])


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
