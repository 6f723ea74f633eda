"""The experiments' own tables: A/B tests on feed variants, their arms, who was exposed, and
the guardrail looks taken.

* ``experiments``: one A/B test: its salt (assignment is ``hash(salt, user)``, so a new salt
  reshuffles users), status (draft, running, stopped), the planned number of exposed users
  (the guardrail looks happen at equal fractions of it), the metrics' settings (CTR window,
  retention day), the guardrails, and why and when it stopped.
* ``experiment_arms``: the variants: a name, a traffic weight and the feed controls it
  overrides (``diversity``, ``social_weight``, ``freshness``, ``exploration``). One arm is the
  control the others are compared with.
* ``experiment_exposures``: the first time a user got a feed page under the experiment, with
  their arm; one row per (experiment, user), so logging is idempotent.
* ``experiment_looks``: each guardrail look (k of the planned K) with the exposed users then and
  the tests it ran; one row per (experiment, look), so concurrent workers take a look once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
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

EXPERIMENT_STATUSES: tuple[str, ...] = ("draft", "running", "stopped")


class Experiment(Base):
    __tablename__ = "experiments"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    external_id: Mapped[str] = mapped_column(String(255), unique=True)
    name: Mapped[str] = mapped_column(Text, default="")
    description: Mapped[str] = mapped_column(Text, default="")
    salt: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="draft")
    control: Mapped[str] = mapped_column(String(64))
    planned_users: Mapped[int] = mapped_column(Integer)
    looks: Mapped[int] = mapped_column(Integer)
    alpha: Mapped[float] = mapped_column(Float)
    ctr_window_hours: Mapped[float] = mapped_column(Float)
    retention_day: Mapped[int] = mapped_column(Integer)
    guardrails: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    started: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    stopped: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    stop_reason: Mapped[str | None] = mapped_column(Text)
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Arm(Base):
    __tablename__ = "experiment_arms"
    __table_args__ = (
        UniqueConstraint("experiment_id", "name", name="uq_experiment_arms_experiment_name"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiments.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(64))
    position: Mapped[int] = mapped_column(Integer)
    weight: Mapped[float] = mapped_column(Float)
    overrides: Mapped[dict[str, Any]] = mapped_column(default=dict)


class Exposure(Base):
    __tablename__ = "experiment_exposures"
    __table_args__ = (
        UniqueConstraint(
            "experiment_id", "user_id", name="uq_experiment_exposures_experiment_user"
        ),
        Index("ix_experiment_exposures_user", "user_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiments.id", ondelete="CASCADE"))
    arm_id: Mapped[int] = mapped_column(ForeignKey("experiment_arms.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    first_exposed: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Look(Base):
    __tablename__ = "experiment_looks"
    __table_args__ = (
        UniqueConstraint("experiment_id", "look", name="uq_experiment_looks_experiment_look"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiments.id", ondelete="CASCADE"))
    look: Mapped[int] = mapped_column(Integer)
    users: Mapped[int] = mapped_column(Integer)
    tripped: Mapped[bool] = mapped_column(Boolean)
    tests: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    taken: Mapped[datetime] = mapped_column(DateTime(timezone=True))
