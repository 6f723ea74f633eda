"""Platform settings of the ad market (``AGORA_MARKET`` as JSON, read by :func:`market_config`)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field, field_validator

from agora.config import Settings


class MarketConfig(BaseModel):
    """Where ads go in the feed, how the auction prices them and how budgets are paced."""

    enabled: bool = Field(True, description="Fill the feed's ad slots at all.")
    slot_positions: list[int] = Field(
        default_factory=lambda: [3, 10],
        description="1-based positions on a feed page that carry an ad (when a campaign wins).",
    )
    reserve_price: float = Field(
        0.05, ge=0, description="Least price per click; bids below it never enter the auction."
    )
    epsilon: float = Field(0.01, ge=0, description="Increment over the next ad's price (GSP).")
    holdout_share: float = Field(
        0.1, ge=0, lt=1, description="Share of users who never see a campaign (lift control)."
    )
    pacing: bool = Field(True, description="Spread spend over the day along the traffic curve.")
    pacing_tolerance: float = Field(
        0.05, ge=0, le=1, description="Budget share a campaign may run ahead of its target curve."
    )
    pacing_floor: float = Field(
        0.0, ge=0, le=1, description="Least serving probability of a campaign ahead of its curve."
    )
    profile_days: int = Field(
        28, ge=1, le=3650, description="Days of events behind the hourly traffic forecast."
    )
    ctr_prior: float = Field(0.02, gt=0, lt=1, description="Prior CTR of a campaign with no data.")
    ctr_prior_weight: float = Field(
        100.0, gt=0, description="Impressions the prior is worth in the smoothed empirical CTR."
    )
    ctr_model_path: Path | None = Field(
        None, description="A saved agora.market.ctr.CTRModel; unset or missing = empirical CTR."
    )
    book_seconds: float = Field(
        2.0,
        gt=0,
        description="How often a serving process re-reads the campaigns, their creatives, "
        "segments and today's spend: a change made through another process reaches its pages "
        "within this (the process that made it: at once).",
    )
    ctr_refresh_seconds: float = Field(
        300.0,
        gt=0,
        description="How often a serving process recomputes every predicted CTR (a new "
        "campaign or creative gets its own at once).",
    )
    attribution_days: float = Field(
        7.0, gt=0, description="How long after a click (or eligibility) a conversion counts."
    )
    confidence: float = Field(0.95, gt=0.5, lt=1, description="Level of the lift intervals.")

    @field_validator("slot_positions")
    @classmethod
    def _positions(cls, value: list[int]) -> list[int]:
        if any(p < 1 for p in value):
            raise ValueError("slot positions are 1-based: every position must be >= 1")
        if len(set(value)) != len(value):
            raise ValueError("slot positions must be distinct")
        return sorted(value)


def market_config(settings: Settings) -> MarketConfig:
    """The ``market`` section of ``settings`` (``AGORA_MARKET``) as this domain's MarketConfig."""
    return settings.section("market", MarketConfig)
