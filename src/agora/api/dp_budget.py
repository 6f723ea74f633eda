"""The privacy budget of each UTC day and the figures released, in the database.

Every function opens its own short transaction on the app's session factory, so the spend is
shared by all API workers: :func:`spend` is one conditional ``UPDATE`` (``spent + cost <=
budget``), atomic on SQLite and PostgreSQL alike; :func:`store` inserts a release with ``ON
CONFLICT DO NOTHING`` on ``(key, period)`` and reads back the one that stands.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from agora.api.dp_models import DPBudgetDay, DPRelease
from agora.db.engine import insert_for, transaction
from agora.db.tables import as_utc

#: Slack for float sums of epsilons (ten releases of 0.1 must fit a budget of 1.0).
SLACK = 1e-9


@dataclass(frozen=True)
class Stored:
    """A release as stored."""

    id: int
    figure: str
    params: dict[str, Any]
    epsilon: float
    mechanism: str
    released: datetime
    period: datetime
    payload: dict[str, Any]


def _stored(row: DPRelease) -> Stored:
    return Stored(
        row.id,
        row.figure,
        dict(row.params or {}),
        float(row.epsilon),
        row.mechanism,
        as_utc(row.released),
        as_utc(row.period),
        row.payload,
    )


def find(sessions: sessionmaker[Session], key: str, period: datetime) -> Stored | None:
    """The release of ``key`` for the period starting at ``period``, if any."""
    with sessions() as session:
        row = session.scalars(
            select(DPRelease).where(DPRelease.key == key, DPRelease.period == period)
        ).first()
        return None if row is None else _stored(row)


def latest(sessions: sessionmaker[Session], key: str) -> Stored | None:
    """The newest release of ``key`` in any period."""
    with sessions() as session:
        row = session.scalars(
            select(DPRelease)
            .where(DPRelease.key == key)
            .order_by(DPRelease.released.desc(), DPRelease.id.desc())
            .limit(1)
        ).first()
        return None if row is None else _stored(row)


def drop(sessions: sessionmaker[Session], row: int) -> None:
    """Remove one stored release (one its routes can no longer read)."""
    with transaction(sessions) as session:
        session.execute(delete(DPRelease).where(DPRelease.id == row))


def spend(sessions: sessionmaker[Session], day: date, cost: float, budget: float) -> bool:
    """Take ``cost`` from ``day``'s budget; False (nothing taken) when it does not fit."""
    if cost > budget + SLACK:
        return False
    with transaction(sessions) as session:
        stmt = insert_for(session, DPBudgetDay).values(day=day.isoformat(), spent=0.0, releases=0)
        session.execute(stmt.on_conflict_do_nothing(index_elements=["day"]))
        taken = session.execute(
            update(DPBudgetDay)
            .where(DPBudgetDay.day == day.isoformat(), DPBudgetDay.spent + cost <= budget + SLACK)
            .values(spent=DPBudgetDay.spent + cost, releases=DPBudgetDay.releases + 1)
        )
        return taken.rowcount == 1


def refund(sessions: sessionmaker[Session], day: date, cost: float) -> None:
    """Give back ``cost`` taken by a release that was not stored (failed, or lost a race)."""
    with transaction(sessions) as session:
        session.execute(
            update(DPBudgetDay)
            .where(DPBudgetDay.day == day.isoformat())
            .values(
                spent=func.max(DPBudgetDay.spent - cost, 0.0)
                if session.get_bind().dialect.name == "sqlite"
                else func.greatest(DPBudgetDay.spent - cost, 0.0),
                releases=DPBudgetDay.releases - 1,
            )
        )


def store(
    sessions: sessionmaker[Session],
    key: str,
    period: datetime,
    day: date,
    figure: str,
    params: dict[str, Any],
    epsilon: float,
    mechanism: str,
    released: datetime,
    payload: dict[str, Any],
) -> tuple[Stored, bool]:
    """Store a release unless one of ``(key, period)`` exists; the one that stands, and
    whether it is this one."""
    with transaction(sessions) as session:
        stmt = insert_for(session, DPRelease).values(
            key=key,
            period=period,
            day=day.isoformat(),
            figure=figure,
            params=params,
            epsilon=epsilon,
            mechanism=mechanism,
            released=released,
            payload=payload,
        )
        inserted = session.execute(
            stmt.on_conflict_do_nothing(index_elements=["key", "period"]).returning(DPRelease.id)
        ).scalar()
        row = session.scalars(
            select(DPRelease).where(DPRelease.key == key, DPRelease.period == period)
        ).one()
        return _stored(row), inserted is not None


@dataclass(frozen=True)
class DayReport:
    day: str
    budget: float | None
    spent: float
    releases: list[Stored]


def report(sessions: sessionmaker[Session], day: date, budget: float | None) -> DayReport:
    """``day``'s spend and its releases, newest first."""
    with sessions() as session:
        spent = session.scalar(select(DPBudgetDay.spent).where(DPBudgetDay.day == day.isoformat()))
        rows = session.scalars(
            select(DPRelease)
            .where(DPRelease.day == day.isoformat())
            .order_by(DPRelease.released.desc(), DPRelease.id.desc())
        ).all()
        return DayReport(day.isoformat(), budget, float(spent or 0.0), [_stored(r) for r in rows])
