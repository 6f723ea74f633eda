"""The market API's shapes: campaigns in and out, clicks, conversions, the campaign report."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from agora.api.dp_marks import Marked
from agora.api.types import RowId
from agora.ingest.schemas import ExternalId, in_span
from agora.market.models import CAMPAIGN_STATUSES

#: A time a client sends with its zone, within the engine's span (see ``ingest.schemas``).
AwareTimestamp = Annotated[AwareDatetime, AfterValidator(in_span)]

Tag = Field(min_length=1, max_length=255)
Status = Literal[CAMPAIGN_STATUSES]  # type: ignore[valid-type]
#: One entry of a list of ids or tags.
Entry = Annotated[str, Field(min_length=1, max_length=255)]
#: A UTC hour of the day.
Hour = Annotated[int, Field(ge=0, le=23)]


def _check_window(start: datetime | None, end: datetime | None) -> None:
    if start is not None and end is not None and end <= start:
        raise ValueError("end_at must be after start_at")


class CampaignFields(BaseModel):
    """What a campaign buys: creatives, audience, price, budget, cap and schedule."""

    model_config = ConfigDict(extra="forbid")

    advertiser: str = Field(min_length=1, max_length=255)
    name: str = Field("", max_length=1000)
    items: list[ExternalId] = Field(
        min_length=1, max_length=100, description="Creatives: ids of stored items the ad shows."
    )
    target_tags: list[Entry] = Field(
        default_factory=list,
        max_length=100,
        description="Users whose recent activity or current page has one of these tags; "
        "empty = everyone.",
    )
    target_segments: list[ExternalId] = Field(
        default_factory=list,
        max_length=100,
        description="Group ids; users in one of them are targeted; empty = everyone.",
    )
    bid: float = Field(gt=0, le=1e6, description="Most the advertiser pays per click.")
    daily_budget: float = Field(gt=0, le=1e9, description="Most spent per UTC day.")
    frequency_cap: int = Field(3, ge=1, le=1000, description="Impressions per user per UTC day.")
    start_at: AwareTimestamp | None = None
    end_at: AwareTimestamp | None = None
    hours: list[Hour] = Field(
        default_factory=list, max_length=24, description="UTC hours it runs in; empty = all."
    )
    conversion_event: str = Field(
        "click",
        min_length=1,
        max_length=32,
        description="Event type on the campaign's items that counts as a conversion.",
    )
    conversion_value: float = Field(1.0, ge=0, description="Value of one conversion (for ROI).")
    status: Status = "active"

    @model_validator(mode="after")
    def _valid(self) -> CampaignFields:
        _check_window(self.start_at, self.end_at)
        return self


class CampaignIn(CampaignFields):
    campaign_id: ExternalId


class CampaignPatch(BaseModel):
    """Only the fields given change (the others keep their values); ``null`` clears
    ``start_at``/``end_at`` and leaves any other field as it is."""

    model_config = ConfigDict(extra="forbid")

    def changes(self) -> dict[str, Any]:
        """The fields to change: those given, less a ``null`` for a field a campaign needs."""
        clearable = {n for n, f in CampaignIn.model_fields.items() if f.default is None}
        given = self.model_dump(exclude_unset=True)
        return {name: v for name, v in given.items() if v is not None or name in clearable}

    advertiser: str | None = Field(None, min_length=1, max_length=255)
    name: str | None = Field(None, max_length=1000)
    items: list[ExternalId] | None = Field(None, min_length=1, max_length=100)
    target_tags: list[Entry] | None = Field(None, max_length=100)
    target_segments: list[ExternalId] | None = Field(None, max_length=100)
    bid: float | None = Field(None, gt=0, le=1e6)
    daily_budget: float | None = Field(None, gt=0, le=1e9)
    frequency_cap: int | None = Field(None, ge=1, le=1000)
    start_at: AwareTimestamp | None = None
    end_at: AwareTimestamp | None = None
    hours: list[Hour] | None = Field(None, max_length=24)
    conversion_event: str | None = Field(None, min_length=1, max_length=32)
    conversion_value: float | None = Field(None, ge=0)
    status: Status | None = None

    @model_validator(mode="after")
    def _valid(self) -> CampaignPatch:
        _check_window(self.start_at, self.end_at)
        return self


class ServingReason(BaseModel):
    code: str = Field(
        description="invalid_settings, ads_disabled, paused, not_started, ended, outside_hours, "
        "bid_below_reserve, budget_spent, no_creatives, no_audience (reasons); "
        "creatives_unavailable, frequency_capped (notes)."
    )
    detail: str = Field(description="What was found, in one sentence.")


class ServingOut(BaseModel):
    """Whether a campaign can win an ad slot now, computed from the store and its settings."""

    status: Literal["serving", "not_serving"]
    reasons: list[ServingReason] = Field(description="What stops it (empty when serving).")
    notes: list[ServingReason] = Field(description="Problems that do not stop it.")


class CampaignOut(CampaignIn):
    model_config = ConfigDict(extra="ignore")

    spent_today: float = Field(description="Charged today (UTC day), never above daily_budget.")
    created: datetime
    updated: datetime
    serving: ServingOut


class ClickIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    impression_id: RowId = Field(description="The `impression_id` of the feed ad clicked.")


class ClickOut(BaseModel):
    impression_id: int
    campaign_id: str
    cost: float = Field(description="Charged: the GSP price, capped at what is left of budget.")
    duplicate: bool = Field(description="The click was already recorded (charged once).")


class ConversionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    conversion_id: ExternalId
    campaign_id: ExternalId
    user_id: ExternalId
    item_id: ExternalId | None = None
    value: float | None = Field(None, ge=0, description="Default: the campaign's value.")
    timestamp: AwareTimestamp | None = None


class ConversionOut(BaseModel):
    conversion_id: str
    campaign_id: str
    duplicate: bool


class Interval(BaseModel):
    estimate: float | None
    low: float | None
    high: float | None


class LiftOut(BaseModel):
    method: str
    exposed_users: int = Field(description="Eligible users outside the holdout.")
    exposed_converters: int
    holdout_users: int = Field(description="Eligible users in the holdout (never shown the ad).")
    holdout_converters: int
    exposed_rate: float | None
    holdout_rate: float | None
    difference: Interval = Field(description="Conversion-rate difference, exposed - holdout.")
    relative_lift: float | None = Field(description="difference / holdout rate.")
    incremental_conversions: float | None
    p_value: float | None


class ReportOut(Marked):
    campaign_id: str
    impressions: int
    clicks: int
    ctr: Interval
    spend: float
    cpc: float | None
    conversions: int = Field(description="Clicks followed by a conversion within the window.")
    cvr: Interval
    conversion_value: float
    roi: float | None = Field(description="(conversion value - spend) / spend.")
    spent_today: float
    lift: LiftOut
    serving: ServingOut
