"""Market: the ad campaigns; create one, pause or resume it, change its daily budget (admin
keys, as the API's ``/campaigns`` routes); per campaign, today's spend against the pacing
curve, CTR and CVR with their intervals, and the lift of conversions over the holdout.

Campaigns are advertisers' money and plans: like the API, the console shows them to admin
keys only; other keys see that the page exists and why it is empty."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, HTTPException, Path, Request, status
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from agora.api.deps import SessionDep, SessionFactoryDep, SettingsDep
from agora.api.routing import OneHopRoute
from agora.db.engine import transaction
from agora.market import service as market
from agora.market.config import MarketConfig, market_config
from agora.market.schemas import CampaignIn, CampaignPatch
from agora.market.views import MarketCacheDep
from agora.web.console import auth, charts
from agora.web.console.layout import NavEntry, go_to, panel, render, texts, unprocessable

router = APIRouter(route_class=OneHopRoute, prefix="/console")
NAV = NavEntry("/console/market", "nav.market")
ReadSession = Annotated[auth.ConsoleSession, Depends(auth.require("read"))]
AdminSession = Annotated[auth.ConsoleSession, Depends(auth.require("admin"))]
CampaignId = Annotated[str, Path(min_length=1, max_length=255)]

#: Fields of the creation form typed as comma-separated lists.
LIST_FIELDS = ("items", "target_tags", "target_segments")
#: Fields of the creation form a blank leaves at the API's default.
OPTIONAL_FIELDS = ("name", "frequency_cap", "conversion_event", "conversion_value")
#: The changes the campaign page's forms make (pause/resume, budget, bid).
CHANGEABLE = ("status", "daily_budget", "bid")


def _campaign_rows(session: Session, config: MarketConfig, now: datetime) -> list[dict]:
    """Every campaign as the API lists it (today's spend, serving state)."""
    return [market.campaign_out(session, c, config, now) for c in market.list_campaigns(session)]


@router.get("/market", response_class=HTMLResponse, include_in_schema=False)
def campaigns(
    request: Request, session: SessionDep, settings: SettingsDep, console: ReadSession
) -> HTMLResponse:
    """The campaigns (admin keys) and the form creating one."""
    rows = None
    if console.can("admin"):
        now = datetime.now(UTC)
        rows = panel(lambda: _campaign_rows(session, market_config(settings), now), "campaigns")
    return render(request, "market.html", {"campaigns": rows, "admin_only": rows is None})


def _pacing_chart(pace: dict[str, Any], t: Any) -> dict[str, Any]:
    midnight = pace["target"][0][0]
    return charts.pacing_lines(
        [(at.isoformat(), round(v, 4)) for at, v in pace["spend"]],
        [(at.isoformat(), round(v, 4)) for at, v in pace["target"]],
        pace["budget"],
        (t("market.spend_line"), t("market.target_line"), t("market.budget_line")),
        t("axis.hour_utc"),
        t("axis.spend"),
        (midnight, midnight + timedelta(days=1)),
    )


@router.get("/market/{campaign_id}", response_class=HTMLResponse, include_in_schema=False)
def campaign_page(
    request: Request,
    campaign_id: CampaignId,
    session: SessionDep,
    settings: SettingsDep,
    console: ReadSession,
) -> HTMLResponse:
    """One campaign: settings, serving state, spend against pacing, CTR/CVR, lift.

    Today's spend is drawn against the pacing curve; CTR and CVR come with their intervals
    and the lift of conversions over the holdout with its own (the API's report)."""
    if not console.can("admin"):
        return render(request, "market.html", {"campaigns": None, "admin_only": True})
    now, config, t = datetime.now(UTC), market_config(settings), texts(request)
    try:
        row = market.get_campaign(session, campaign_id)
    except market.UnknownCampaign:
        return render(request, "not_found.html", {"kind": "campaign", "id": campaign_id}, 404)
    pace = panel(lambda: market.pacing_today(session, campaign_id, config, now), "pacing")
    data = {
        "campaign": panel(lambda: market.campaign_out(session, row, config, now), "campaign"),
        "campaign_id": campaign_id,
        "pace": pace,
        "pacing_chart": _pacing_chart(pace, t) if pace else None,
        "report": panel(lambda: market.report(session, campaign_id, config, now), "report"),
        "confidence": config.confidence,
    }
    return render(request, "campaign.html", data)


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _campaign_spec(fields: dict[str, str]) -> CampaignIn:
    """The creation form as the API's campaign body (lists comma-separated; a blank optional
    field keeps the API's default)."""
    body: dict[str, Any] = {
        name: value.strip()
        for name, value in fields.items()
        if name in CampaignIn.model_fields and name not in LIST_FIELDS
    }
    body = {k: v for k, v in body.items() if v or k not in OPTIONAL_FIELDS}
    for name in LIST_FIELDS:
        if name in fields:
            body[name] = _split(fields[name])
    return CampaignIn.model_validate(body)


def _page(key: str) -> str:
    return f"/console/market/{quote(key, safe='')}"


@router.post("/market", include_in_schema=False)
async def create_campaign(
    request: Request,
    sessions: SessionFactoryDep,
    market_cache: MarketCacheDep,
    _: AdminSession,
) -> Response:
    """Create a campaign, as POST /campaigns does; the browser then goes to its page."""
    try:
        spec = _campaign_spec(await auth.form_fields(request))
    except ValueError as exc:
        raise unprocessable(exc) from None

    def write() -> None:
        with transaction(sessions) as session:
            market.create_campaign(session, spec, datetime.now(UTC))

    await run_in_threadpool(write)
    market_cache.changed()  # this process's next feed page serves it
    return go_to(_page(spec.campaign_id))


@router.post("/market/{campaign_id}/change", include_in_schema=False)
async def change_campaign(
    request: Request,
    campaign_id: CampaignId,
    sessions: SessionFactoryDep,
    market_cache: MarketCacheDep,
    _: AdminSession,
) -> Response:
    """Pause or resume a campaign, or change its daily budget or bid (as PATCH does).

    The browser then loads the campaign's page again, showing it as it now is."""
    fields = await auth.form_fields(request)
    given = {name: fields[name].strip() for name in CHANGEABLE if fields.get(name, "").strip()}
    if not given:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, detail=f"nothing to change: send {CHANGEABLE}"
        )
    try:
        changes = CampaignPatch.model_validate(given).changes()
    except ValueError as exc:
        raise unprocessable(exc) from None

    def write() -> None:
        with transaction(sessions) as session:
            try:
                market.update_campaign(session, campaign_id, changes, datetime.now(UTC))
            except market.InvalidCampaign as exc:  # the form's 422 names fields, not body.*
                raise unprocessable(exc) from None

    await run_in_threadpool(write)
    market_cache.changed()
    return go_to(_page(campaign_id))
