"""The market's own tables: campaigns, who was eligible (and held out), ad impressions, clicks
and conversions.

* ``ad_campaigns``: an advertiser's campaign: creatives (item ids), targeting (tags, segments =
  groups), bid per click, daily budget, frequency cap per user per day, schedule, status.
* ``ad_eligibility``: the first time a user was eligible for a campaign, and whether they fell
  in its randomised holdout (they never see it): the two arms of the lift measurement.
* ``ad_impressions``: every ad served, with its slot position, price per click and predicted
  CTR. ``nth`` numbers a user's impressions of a campaign per UTC day; the unique constraint on
  (campaign, user, day, nth) makes the frequency cap hold even for concurrent requests.
* ``ad_clicks``: at most one charged click per impression (the cost, capped at what is left of
  the day's budget).
* ``ad_conversions``: conversions reported by the platform (``POST /ads/conversions``); events of
  the campaign's conversion type on its items count as well, straight from ``events``.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from agora.db.tables import Base, BigId

CAMPAIGN_STATUSES: tuple[str, ...] = ("active", "paused")


class Campaign(Base):
    __tablename__ = "ad_campaigns"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    external_id: Mapped[str] = mapped_column(String(255), unique=True)
    advertiser: Mapped[str] = mapped_column(String(255))
    name: Mapped[str] = mapped_column(Text, default="")
    items: Mapped[list[str]] = mapped_column(default=list)
    target_tags: Mapped[list[str]] = mapped_column(default=list)
    target_segments: Mapped[list[str]] = mapped_column(default=list)
    bid: Mapped[float] = mapped_column(Float)
    daily_budget: Mapped[float] = mapped_column(Float)
    frequency_cap: Mapped[int] = mapped_column(Integer)
    start_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    end_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    hours: Mapped[list[int]] = mapped_column(JSON, default=list)
    conversion_event: Mapped[str] = mapped_column(String(32))
    conversion_value: Mapped[float] = mapped_column(Float, default=1.0)
    status: Mapped[str] = mapped_column(String(16), default="active")
    holdout_salt: Mapped[str] = mapped_column(String(64))
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Eligibility(Base):
    __tablename__ = "ad_eligibility"
    __table_args__ = (
        UniqueConstraint("campaign_id", "user_id", name="uq_ad_eligibility_campaign_user"),
        Index("ix_ad_eligibility_user", "user_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("ad_campaigns.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    holdout: Mapped[bool] = mapped_column(Boolean)
    first_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class AdImpression(Base):
    __tablename__ = "ad_impressions"
    __table_args__ = (
        UniqueConstraint("campaign_id", "user_id", "day", "nth", name="uq_ad_impressions_cap"),
        Index("ix_ad_impressions_campaign_time", "campaign_id", "served"),
        Index("ix_ad_impressions_user_day", "user_id", "day"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("ad_campaigns.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"))
    day: Mapped[date] = mapped_column(Date)
    nth: Mapped[int] = mapped_column(Integer)
    position: Mapped[int] = mapped_column(Integer)
    price: Mapped[float] = mapped_column(Float)
    ctr: Mapped[float] = mapped_column(Float)
    served: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class AdClick(Base):
    __tablename__ = "ad_clicks"
    __table_args__ = (Index("ix_ad_clicks_campaign_day", "campaign_id", "day"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    impression_id: Mapped[int] = mapped_column(
        ForeignKey("ad_impressions.id", ondelete="CASCADE"), unique=True
    )
    campaign_id: Mapped[int] = mapped_column(ForeignKey("ad_campaigns.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    cost: Mapped[float] = mapped_column(Float)
    day: Mapped[date] = mapped_column(Date)
    clicked: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class AdConversion(Base):
    __tablename__ = "ad_conversions"
    __table_args__ = (Index("ix_ad_conversions_campaign_user", "campaign_id", "user_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    conversion_id: Mapped[str] = mapped_column(String(255), unique=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("ad_campaigns.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    item_id: Mapped[int | None] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"))
    value: Mapped[float] = mapped_column(Float)
    timestamp: Mapped[datetime] = mapped_column(DateTime(timezone=True))
