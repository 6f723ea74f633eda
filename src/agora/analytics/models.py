"""Analytics' own tables: alert rules and the alert episodes they open, heavy results stored by
background jobs, and the sentiment of each post and comment.

* ``analytics_alert_rules``: what to watch. ``kind`` is ``volume_spike`` (a tag's post count in
  the last ``bucket`` bursts above the mean of the ``baseline_buckets`` before it, Poisson tail
  below ``threshold``) or ``sentiment_drop`` (the tag's mean sentiment falls by at least
  ``threshold``); ``tag`` NULL watches every tag; ``min_count`` is the least volume that counts.
* ``analytics_alerts``: one row per episode. A rule and key (tag) have at most one ``open``
  episode: it is created when the condition starts to hold (the alert fires once), its
  ``last_seen`` and ``peak`` follow the evaluations that still see it, and it is ``closed`` at the
  first evaluation that does not.
* ``analytics_results``: one row per heavy analysis (``anomalies``, ``influence``, ...): the
  JSON result a background job computed, when (``computed_at``) and in how many ``seconds``;
  ``requested`` is set by a refresh request and cleared by the job that serves it.
* ``analytics_item_sentiment`` / ``analytics_comment_sentiment``: the score and label of each
  post (item) and each comment event, and the model version that scored it; written by the
  background scorer as items and comments arrive, read by ``GET /analytics/sentiment``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, DateTime, Float, ForeignKey, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from agora.db.pseudonyms import SealedJSON
from agora.db.tables import Base, BigId

OPEN, CLOSED = "open", "closed"

_OPEN_ONLY = text("status = 'open'")


class AlertRule(Base):
    __tablename__ = "analytics_alert_rules"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    tag: Mapped[str | None] = mapped_column(String(255))
    bucket: Mapped[str] = mapped_column(String(16), default="day")
    baseline_buckets: Mapped[int] = mapped_column(Integer, default=7)
    threshold: Mapped[float] = mapped_column(Float)
    min_count: Mapped[int] = mapped_column(Integer, default=5)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class AlertEpisode(Base):
    __tablename__ = "analytics_alerts"
    __table_args__ = (
        Index(
            "uq_analytics_alerts_open_rule_key",
            "rule_id",
            "key",
            unique=True,
            sqlite_where=_OPEN_ONLY,
            postgresql_where=_OPEN_ONLY,
        ),
        Index("ix_analytics_alerts_status_opened", "status", "opened"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    rule_id: Mapped[int] = mapped_column(ForeignKey("analytics_alert_rules.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))
    key: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16), default=OPEN)
    opened: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    closed: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    value: Mapped[float] = mapped_column(Float)
    baseline: Mapped[float] = mapped_column(Float)
    peak: Mapped[float] = mapped_column(Float)
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)


class ComputedResult(Base):
    __tablename__ = "analytics_results"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    computed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    seconds: Mapped[float | None] = mapped_column(Float)
    payload: Mapped[dict[str, Any] | None] = mapped_column(SealedJSON())  # names users
    requested: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ItemSentiment(Base):
    __tablename__ = "analytics_item_sentiment"

    item_id: Mapped[int] = mapped_column(
        ForeignKey("items.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    score: Mapped[float] = mapped_column(Float)
    label: Mapped[str] = mapped_column(String(16))
    model_version: Mapped[str] = mapped_column(String(64))
    scored: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class CommentSentiment(Base):
    __tablename__ = "analytics_comment_sentiment"

    event_id: Mapped[int] = mapped_column(
        ForeignKey("events.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    score: Mapped[float] = mapped_column(Float)
    label: Mapped[str] = mapped_column(String(16))
    model_version: Mapped[str] = mapped_column(String(64))
    scored: Mapped[datetime] = mapped_column(DateTime(timezone=True))
