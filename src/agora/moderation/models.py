"""Moderation's own tables: classifier scores, review cases, user flags and decisions.

* ``moderation_scores``: the quality classifier's probability that an item is spam or low
  quality, one row per scored item (``scan`` scores the items without a row).
* ``moderation_cases``: the review queue. An item has at most one ``open`` case; it is opened by
  a classifier score above the threshold or by a user flag, and closed by a decision
  (``upheld`` or ``rejected``). ``priority`` orders the queue (see ``service.priority``).
* ``moderation_flags``: a user's report on an item (spam, low_quality, offensive, other); at
  most one open flag per user and item. A flag takes its case's outcome when it is decided.
* ``moderation_decisions``: an admin's uphold/reject of a case. Upheld decisions remove the
  item from feeds, are labels for retraining and write a ``flag_upheld`` event for the author.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Float, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from agora.db.tables import Base, BigId

FLAG_REASONS: tuple[str, ...] = ("spam", "low_quality", "offensive", "other")
OUTCOMES: tuple[str, ...] = ("uphold", "reject")
#: Case and flag statuses: open until decided, then the decision's result.
OPEN, UPHELD, REJECTED = "open", "upheld", "rejected"
STATUS_OF_OUTCOME = {"uphold": UPHELD, "reject": REJECTED}

_OPEN_ONLY = text("status = 'open'")


class ModerationScore(Base):
    __tablename__ = "moderation_scores"

    item_id: Mapped[int] = mapped_column(
        ForeignKey("items.id", ondelete="CASCADE"), primary_key=True
    )
    score: Mapped[float] = mapped_column(Float)
    model_version: Mapped[str] = mapped_column(String(64))
    scored: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ModerationCase(Base):
    __tablename__ = "moderation_cases"
    __table_args__ = (
        Index(
            "uq_moderation_cases_open_item",
            "item_id",
            unique=True,
            sqlite_where=_OPEN_ONLY,
            postgresql_where=_OPEN_ONLY,
        ),
        Index("ix_moderation_cases_item", "item_id"),
        Index("ix_moderation_cases_status_priority", "status", "priority"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16), default=OPEN)
    score: Mapped[float | None] = mapped_column(Float)
    n_flags: Mapped[int] = mapped_column(Integer, default=0)
    priority: Mapped[float] = mapped_column(Float, default=0.0)
    opened: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ModerationFlag(Base):
    __tablename__ = "moderation_flags"
    __table_args__ = (
        Index(
            "uq_moderation_flags_open_item_user",
            "item_id",
            "user_id",
            unique=True,
            sqlite_where=_OPEN_ONLY,
            postgresql_where=_OPEN_ONLY,
        ),
        Index("ix_moderation_flags_case", "case_id"),
        Index("ix_moderation_flags_user", "user_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    case_id: Mapped[int] = mapped_column(ForeignKey("moderation_cases.id", ondelete="CASCADE"))
    reason: Mapped[str] = mapped_column(String(32))
    note: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), default=OPEN)
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ModerationDecision(Base):
    __tablename__ = "moderation_decisions"
    __table_args__ = (Index("ix_moderation_decisions_item", "item_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    case_id: Mapped[int] = mapped_column(
        ForeignKey("moderation_cases.id", ondelete="CASCADE"), unique=True
    )
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"))
    outcome: Mapped[str] = mapped_column(String(16))
    decided_by: Mapped[str] = mapped_column(String(255), default="")
    note: Mapped[str] = mapped_column(Text, default="")
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True))
