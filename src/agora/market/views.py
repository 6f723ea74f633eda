"""HTTP routes of the ad market: campaigns (admin), their reports (admin), ad clicks and
conversions (write). Ads themselves reach users inside their feed pages (``source: "ad"``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from fastapi import Path as PathParam

from agora.api import dp
from agora.api.auth import AUTH_ERRORS, AdminScope, WriteScope
from agora.api.body import body_doc, read_json, validate_one
from agora.api.deps import SessionDep, SessionFactoryDep, SettingsDep, from_state
from agora.api.routing import OneHopRoute
from agora.db.engine import transaction
from agora.market import service
from agora.market.config import market_config
from agora.market.dp_report import private_report
from agora.market.schemas import (
    CampaignIn,
    CampaignOut,
    CampaignPatch,
    ClickIn,
    ClickOut,
    ConversionIn,
    ConversionOut,
    ReportOut,
)
from agora.market.serving import MarketCache

router = APIRouter(route_class=OneHopRoute, tags=["market"])
#: The ad book (``app.state.market_cache``), read by a thread while the app runs.
MarketCacheDep = Annotated[MarketCache, Depends(from_state("market_cache"))]

CampaignId = Annotated[str, PathParam(min_length=1, max_length=255, description="Campaign id.")]
ERRORS = {
    **AUTH_ERRORS,
    404: {"description": "The campaign (or user, item, impression named) is not stored."},
}


# -- bodies (read after the scope check, with every problem located) -------------------------
async def _campaign_body(request: Request) -> CampaignIn:
    return validate_one(CampaignIn, await read_json(request))


async def _patch_body(request: Request) -> CampaignPatch:
    return validate_one(CampaignPatch, await read_json(request))


async def _click_body(request: Request) -> ClickIn:
    return validate_one(ClickIn, await read_json(request))


async def _conversion_body(request: Request) -> ConversionIn:
    return validate_one(ConversionIn, await read_json(request))


@router.get("/campaigns", summary="Every campaign", dependencies=[AdminScope], responses=ERRORS)
def get_campaigns(session: SessionDep, settings: SettingsDep) -> list[CampaignOut]:
    now = datetime.now(UTC)
    return [
        CampaignOut(**service.campaign_out(session, c, market_config(settings), now))
        for c in service.list_campaigns(session)
    ]


@router.post(
    "/campaigns",
    summary="Create a campaign (re-sending the same one changes nothing)",
    status_code=status.HTTP_201_CREATED,
    dependencies=[AdminScope],
    openapi_extra=body_doc(CampaignIn),
    responses={
        **ERRORS,
        200: {"description": "The same campaign was already stored."},
        409: {"description": "A campaign with this id exists with other settings."},
    },
)
def post_campaign(
    body: Annotated[CampaignIn, Depends(_campaign_body)],
    sessions: SessionFactoryDep,
    settings: SettingsDep,
    market_cache: MarketCacheDep,
    response: Response,
) -> CampaignOut:
    now = datetime.now(UTC)
    with transaction(sessions) as session:
        row, created = service.create_campaign(session, body, now)
        out = CampaignOut(**service.campaign_out(session, row, market_config(settings), now))
    market_cache.changed()  # this process's next page serves it
    if not created:
        response.status_code = status.HTTP_200_OK
    return out


@router.get(
    "/campaigns/{campaign_id}",
    summary="One campaign",
    dependencies=[AdminScope],
    responses=ERRORS,
)
def get_campaign(
    campaign_id: CampaignId, session: SessionDep, settings: SettingsDep
) -> CampaignOut:
    row = service.get_campaign(session, campaign_id)
    return CampaignOut(
        **service.campaign_out(session, row, market_config(settings), datetime.now(UTC))
    )


@router.patch(
    "/campaigns/{campaign_id}",
    summary="Change some fields of a campaign (pause it with status=paused)",
    dependencies=[AdminScope],
    openapi_extra=body_doc(CampaignPatch),
    responses=ERRORS,
)
def patch_campaign(
    campaign_id: CampaignId,
    body: Annotated[CampaignPatch, Depends(_patch_body)],
    sessions: SessionFactoryDep,
    settings: SettingsDep,
    market_cache: MarketCacheDep,
) -> CampaignOut:
    now = datetime.now(UTC)
    with transaction(sessions) as session:
        row = service.update_campaign(session, campaign_id, body.changes(), now)
        out = CampaignOut(**service.campaign_out(session, row, market_config(settings), now))
    market_cache.changed()  # this process's next page serves the change
    return out


@router.get(
    "/campaigns/{campaign_id}/report",
    summary="Measurement: impressions, clicks, CTR, spend, CPC, conversions, CVR, ROI, lift",
    description="Lift compares the conversion rate of eligible users outside the campaign's "
    "randomised holdout with those inside it (who never saw it), with a confidence interval.\n\n"
    "`release=advertiser` answers the report to hand to the advertiser: released with "
    "differential privacy (`AGORA_DP_EPSILON`; 409 while it is off), each person's "
    "impressions, clicks and conversions bounded, marked by `privacy` and `X-Privacy`, "
    "spending the day's privacy budget once per period. Spend stays exact (the bill).",
    dependencies=[AdminScope],
    responses={
        **ERRORS,
        **dp.RESPONSES,
        409: {"description": "`release=advertiser` while differential privacy is off."},
        200: {"headers": dp.HEADER_DOC},
    },
)
def get_report(
    request: Request,
    response: Response,
    campaign_id: CampaignId,
    session: SessionDep,
    settings: SettingsDep,
    release: Annotated[
        Literal["exact", "advertiser"],
        Query(description="`advertiser`: the differentially private report to hand on."),
    ] = "exact",
) -> ReportOut:
    now = datetime.now(UTC)
    if release == "advertiser":
        if not dp.enabled(settings):
            raise HTTPException(
                status.HTTP_409_CONFLICT,
                detail="release=advertiser needs differential privacy: set AGORA_DP_EPSILON",
            )
        service.report(session, campaign_id, market_config(settings), now)  # 404 before spending
        noisy = dp.answer(
            request,
            response,
            "campaign_report",
            {"campaign_id": campaign_id},
            lambda grant: private_report(session, campaign_id, market_config(settings), now, grant),
            lambda released: ReportOut(**released.payload, privacy=released.privacy),
            for_admin=True,
        )
        assert noisy is not None
        return noisy
    body = service.report(session, campaign_id, market_config(settings), now)
    dp.mark(response, settings, None)
    return ReportOut(**body)


@router.post(
    "/ads/clicks",
    summary="A click on an ad impression (charged once, never past the daily budget)",
    dependencies=[WriteScope],
    openapi_extra=body_doc(ClickIn),
    responses=ERRORS,
)
def post_click(
    body: Annotated[ClickIn, Depends(_click_body)],
    sessions: SessionFactoryDep,
    market_cache: MarketCacheDep,
) -> ClickOut:
    with transaction(sessions) as session:
        click, campaign_id, duplicate = service.record_click(
            session, body.impression_id, datetime.now(UTC)
        )
        out = ClickOut(
            impression_id=body.impression_id,
            campaign_id=campaign_id,
            cost=click.cost,
            duplicate=duplicate,
        )
        charge = (click.campaign_id, click.cost, click.day)
    if not duplicate:  # this process's next page bids with what is left
        market_cache.charged(*charge)
    return out


@router.post(
    "/ads/conversions",
    summary="A conversion for a campaign (stored once per conversion_id)",
    status_code=status.HTTP_201_CREATED,
    dependencies=[WriteScope],
    openapi_extra=body_doc(ConversionIn),
    responses={**ERRORS, 200: {"description": "This conversion_id was already stored."}},
)
def post_conversion(
    body: Annotated[ConversionIn, Depends(_conversion_body)],
    sessions: SessionFactoryDep,
    response: Response,
) -> ConversionOut:
    with transaction(sessions) as session:
        _, duplicate = service.record_conversion(
            session,
            body.conversion_id,
            body.campaign_id,
            body.user_id,
            datetime.now(UTC),
            item_id=body.item_id,
            value=body.value,
            timestamp=body.timestamp,
        )
    if duplicate:
        response.status_code = status.HTTP_200_OK
    return ConversionOut(
        conversion_id=body.conversion_id, campaign_id=body.campaign_id, duplicate=duplicate
    )
