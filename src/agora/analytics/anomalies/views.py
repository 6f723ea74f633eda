"""HTTP routes of fake-engagement detection: anomalous users and items (``admin`` scope: who is
suspected of fraud is not for every reader).

They read the report the background job stored (``analytics_results``, key ``anomalies``) with
its age; before the first one exists they answer 202 and start the job."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from agora.analytics.anomalies.schemas import (
    ItemAnomaliesOut,
    UserAnomaliesOut,
)
from agora.analytics.http import Top
from agora.analytics.results import service as results
from agora.analytics.results.views import freshness, pending, pending_doc
from agora.api.auth import AdminScope
from agora.api.deps import SessionDep
from agora.api.routing import OneHopRoute

router = APIRouter(route_class=OneHopRoute, tags=["analytics"])


@router.get(
    "/analytics/anomalies/users",
    response_model=UserAnomaliesOut,
    dependencies=[AdminScope],
    responses=pending_doc("anomalies"),
)
def get_user_anomalies(
    request: Request, session: SessionDep, top: Top = 20
) -> UserAnomaliesOut | JSONResponse:
    """Users most likely to give fake engagement, highest score first, with the reasons."""
    stored = results.read(session, "anomalies")
    if stored is None:
        return pending(request, "anomalies")
    report = stored.payload
    return UserAnomaliesOut(
        scored=report["scored_users"],
        flagged=report["flagged"],
        threshold=report["threshold"],
        weights=report["weights"],
        top=report["users"][:top],
        **freshness(stored).model_dump(),
    )


@router.get(
    "/analytics/anomalies/items",
    response_model=ItemAnomaliesOut,
    dependencies=[AdminScope],
    responses=pending_doc("anomalies"),
)
def get_item_anomalies(
    request: Request, session: SessionDep, top: Top = 20
) -> ItemAnomaliesOut | JSONResponse:
    """Items whose engagement looks most manufactured (flagged engagers, bursts)."""
    stored = results.read(session, "anomalies")
    if stored is None:
        return pending(request, "anomalies")
    report = stored.payload
    return ItemAnomaliesOut(
        scored=report["scored_items"], top=report["items"][:top], **freshness(stored).model_dump()
    )
