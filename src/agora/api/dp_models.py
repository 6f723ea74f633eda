"""Tables of differentially private releases (see :mod:`agora.api.dp`).

* ``privacy_dp_budget``: one row per UTC day: the epsilon spent by that day's releases and how
  many there were. A release spends with one conditional ``UPDATE ... WHERE spent + cost <=
  budget``, so several API workers never overspend together.
* ``privacy_dp_releases``: every released figure: which (``figure``, ``params``, its ``key``, a
  hash of both with the bounds and epsilon), for which ``period`` (the start of the window in
  which it is answered again unchanged, at no cost), what it cost and the released ``payload``.
  ``(key, period)`` is unique: two workers releasing the same figure at once store one, and the
  other gives its epsilon back.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, Float, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from agora.db.pseudonyms import SealedJSON
from agora.db.tables import Base, BigId


class DPBudgetDay(Base):
    __tablename__ = "privacy_dp_budget"

    day: Mapped[str] = mapped_column(String(10), primary_key=True)  # YYYY-MM-DD (UTC)
    spent: Mapped[float] = mapped_column(Float, default=0.0)
    releases: Mapped[int] = mapped_column(Integer, default=0)


class DPRelease(Base):
    __tablename__ = "privacy_dp_releases"
    __table_args__ = (
        UniqueConstraint("key", "period", name="uq_privacy_dp_releases_key_period"),
        Index("ix_privacy_dp_releases_day", "day"),
        Index("ix_privacy_dp_releases_key_released", "key", "released"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(64))
    period: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    day: Mapped[str] = mapped_column(String(10))
    figure: Mapped[str] = mapped_column(String(64))
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    epsilon: Mapped[float] = mapped_column(Float)
    mechanism: Mapped[str] = mapped_column(String(255))
    released: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    payload: Mapped[dict[str, Any]] = mapped_column(SealedJSON())  # may name users
