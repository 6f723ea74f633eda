"""The engagement domain's tables: the points ledger, totals, badges, trust levels, tasks.

* ``engagement_state``: one row: the last ``events.id`` and ``items.id`` applied, the
  fingerprint of the rules the ledger was built under (other rules -> replay), and the ids
  below the cursor that were missing when it moved (``gaps``: on PostgreSQL a transaction
  can commit an event with a lower id after a later one; such events are applied when they
  appear, gaps older than ``GAP_SECONDS`` are dropped).
* ``engagement_ledger``: append-only points entries, one per (event, rule, recipient). Events
  and items are referenced by id without a foreign key: deleting a post does not take back the
  points it earned (a replay, which reads the events still stored, does).
* ``engagement_totals``: each user's total, kept equal to the sum of their entries.
* ``engagement_days``: the UTC days each user had an event (visits, streaks).
* ``engagement_badges``: awards; ``item_id`` is set for badges earned per post.
* ``engagement_trust``: each user's trust level as of their latest applied event.
* ``engagement_tasks``: time-boxed goals (``event_type`` x ``target`` between ``starts`` and
  ``ends``, optionally on one tag, optionally only events that were the first of their type on
  their item: "answer 5 unanswered questions").
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Date, DateTime, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from agora.db.tables import Base, BigId


class EngagementState(Base):
    __tablename__ = "engagement_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    event_cursor: Mapped[int] = mapped_column(BigInteger, default=0)
    item_cursor: Mapped[int] = mapped_column(BigInteger, default=0)
    rules: Mapped[str] = mapped_column(String(64), default="")
    gaps: Mapped[list[Any]] = mapped_column(JSON, default=list)
    updated: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class LedgerEntry(Base):
    __tablename__ = "engagement_ledger"
    __table_args__ = (
        Index("ix_engagement_ledger_user_time", "user_id", "created"),
        Index("ix_engagement_ledger_time", "created"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    rule: Mapped[str] = mapped_column(String(64))
    points: Mapped[int] = mapped_column(Integer)
    capped: Mapped[bool] = mapped_column(default=False)
    event_id: Mapped[int] = mapped_column(BigInteger)
    item_id: Mapped[int | None] = mapped_column(BigInteger)
    day: Mapped[date] = mapped_column(Date)
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class PointsTotal(Base):
    __tablename__ = "engagement_totals"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    points: Mapped[int] = mapped_column(BigInteger, default=0)


class ActiveDay(Base):
    __tablename__ = "engagement_days"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    day: Mapped[date] = mapped_column(Date, primary_key=True)


class BadgeAward(Base):
    __tablename__ = "engagement_badges"
    __table_args__ = (Index("ix_engagement_badges_user", "user_id", "badge"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    badge: Mapped[str] = mapped_column(String(64))
    item_id: Mapped[int | None] = mapped_column(BigInteger)
    event_id: Mapped[int | None] = mapped_column(BigInteger)
    awarded: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class TrustState(Base):
    __tablename__ = "engagement_trust"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    level: Mapped[int] = mapped_column(Integer, default=0)
    updated: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Task(Base):
    __tablename__ = "engagement_tasks"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    task_id: Mapped[str] = mapped_column(String(64), unique=True)
    title: Mapped[str] = mapped_column(Text)
    event_type: Mapped[str] = mapped_column(String(32))
    target: Mapped[int] = mapped_column(Integer)
    starts: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ends: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    tag: Mapped[str | None] = mapped_column(String(255))
    first_on_item: Mapped[bool] = mapped_column(default=False)
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True))
