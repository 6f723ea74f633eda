"""Overview: what the store holds, events per minute (live), active users, the trained models
and what feeds were made of."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import HTMLResponse
from sqlalchemy.orm import Session

from agora.analytics.engagement.views import active
from agora.analytics.trending.service import store_now
from agora.api.deps import SessionDep
from agora.api.routing import OneHopRoute
from agora.db import queries
from agora.feed.views import get_source_shares
from agora.serving.service import ModelStore, ModelUnavailable
from agora.serving.views import ModelsDep
from agora.web.console import auth, charts
from agora.web.console.layout import NavEntry, render, texts

router = APIRouter(route_class=OneHopRoute, prefix="/console")
NAV = NavEntry("/console/", "nav.overview")
ReadSession = Annotated[auth.ConsoleSession, Depends(auth.require("read"))]

#: The live rate's window and how often the page asks for it again.
RATE_MINUTES = 30
RATE_POLL_SECONDS = 5
#: Days of daily active users shown (ending at the store's newest activity when it is old).
ACTIVE_DAYS = 90


def _models(models: ModelStore) -> list[dict[str, Any]]:
    """Each served model with its version, holdout NDCG@10 and training time."""
    rows = []
    for name, version in sorted(models.versions().items()):
        try:
            meta = models.meta(name)
        except ModelUnavailable:  # swapped out by a concurrent reload
            continue
        metrics = meta.get("metrics") if isinstance(meta.get("metrics"), dict) else {}
        ndcg = metrics.get("holdout_ndcg@10")
        rows.append(
            {
                "name": name,
                "version": version,
                "ndcg": ndcg if isinstance(ndcg, int | float) else None,
                "created": meta.get("created"),
            }
        )
    return rows


def _active(request: Request, session: Session, t: Any) -> tuple[dict | None, str]:
    """The DAU/WAU chart over the last ``ACTIVE_DAYS`` days of activity (exact, or
    differentially private for a non-admin key when the API's figures are), and where "now"
    came from."""
    end, origin = store_now(session, datetime.now(UTC))
    since, until = end - timedelta(days=ACTIVE_DAYS), end + timedelta(seconds=1)
    series = {}
    for bucket, label in (("day", "overview.dau"), ("week", "overview.wau")):
        points = active(request, Response(), session, bucket, since, until)
        series[t(label)] = [(p.start.isoformat(), p.users) for p in points]
    if not any(series.values()):
        return None, origin
    option = charts.time_lines(series, t("axis.date"), t("axis.active_users"), (since, end))
    return option, origin


def _sources(request: Request, session: Session, t: Any) -> tuple[dict | None, int]:
    shares = get_source_shares(request, Response(), session, hours=24.0)
    ordered = sorted(shares.items(), key=lambda kv: -kv[1])
    total = sum(count for _, count in ordered)
    if not total:
        return None, 0
    labels = [t("source." + source, _default=source) for source, _ in ordered]
    option = charts.bars(labels, [c for _, c in ordered], t("axis.source"), t("axis.impressions"))
    return option, total


def _rate(session: Session, t: Any) -> dict[str, Any]:
    """Events per minute over the last ``RATE_MINUTES`` minutes, the last bar being the 60
    seconds before now."""
    now = datetime.now(UTC)
    counts = queries.events_per_minute(session, now, RATE_MINUTES)
    ends = [(now - timedelta(minutes=RATE_MINUTES - 1 - i)).strftime("%H:%M") for i in
            range(RATE_MINUTES)]  # fmt: skip
    return {
        "last_minute": counts[-1],
        "total": sum(counts),
        "minutes": RATE_MINUTES,
        "option": charts.bars(ends, counts, t("axis.minute_utc"), t("axis.events_per_minute")),
        "poll": RATE_POLL_SECONDS,
    }


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def overview(
    request: Request, session: SessionDep, models: ModelsDep, _: ReadSession
) -> HTMLResponse:
    """The overview page."""
    t = texts(request)
    active_chart, origin = _active(request, session, t)
    sources_chart, impressions = _sources(request, session, t)
    data = {
        "counts": queries.counts(session),
        "rate": _rate(session, t),
        "active_chart": active_chart,
        "active_origin": origin,
        "models": _models(models),
        "sources_chart": sources_chart,
        "impressions": impressions,
    }
    return render(request, "overview.html", data)


@router.get("/overview/rate", response_class=HTMLResponse, include_in_schema=False)
def events_rate(request: Request, session: SessionDep, _: ReadSession) -> HTMLResponse:
    """The live events-per-minute panel (an htmx fragment, polled)."""
    return render(request, "_rate.html", {"rate": _rate(session, texts(request))})
