"""Helpers shared by the engagement tests (imported by name from this folder)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from agora.engagement.models import ActiveDay, BadgeAward, LedgerEntry, PointsTotal, TrustState
from agora.ingest.schemas import EventIn, ItemIn, as_utc
from agora.ingest.service import add_events, upsert_items

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # a Monday
NOW = T0 + timedelta(days=60)
TYPES = ("view", "click", "like", "comment", "share", "bookmark", "answer", "ask", "accept",
         "flag_upheld")  # fmt: skip


def items(session: Session, specs: dict[str, tuple[str, list[str]]]) -> None:
    """Items ``{item: (author, tags)}``, titled after their id."""
    upsert_items(
        session,
        [
            ItemIn(item_id=i, author_id=a, title=f"post {i}", tags=tags, created=T0)
            for i, (a, tags) in specs.items()
        ],
    )


def events(session: Session, rows: list[tuple[str, str, str, str, datetime]]) -> None:
    """Events ``(event_id, user, item, type, timestamp)``."""
    add_events(
        session,
        [
            EventIn(event_id=e, user_id=u, item_id=i, type=t, timestamp=ts)
            for e, u, i, t, ts in rows
        ],
        TYPES,
        max_future_seconds=1e9,
    )


def snapshot(session: Session) -> dict[str, Any]:
    """Everything the engagement domain derived, in a comparable form."""
    ledger = session.execute(
        select(
            LedgerEntry.user_id,
            LedgerEntry.rule,
            LedgerEntry.points,
            LedgerEntry.capped,
            LedgerEntry.event_id,
            LedgerEntry.day,
        )
    ).all()
    awards = session.execute(
        select(
            BadgeAward.user_id,
            BadgeAward.badge,
            BadgeAward.item_id,
            BadgeAward.event_id,
            BadgeAward.awarded,
        )
    ).all()
    return {
        "ledger": sorted(tuple(r) for r in ledger),
        "totals": dict(session.execute(select(PointsTotal.user_id, PointsTotal.points)).all()),
        "days": sorted(tuple(r) for r in session.execute(select(ActiveDay.user_id, ActiveDay.day))),
        "badges": sorted((u, b, i, e, as_utc(w)) for u, b, i, e, w in awards),
        "trust": dict(session.execute(select(TrustState.user_id, TrustState.level)).all()),
    }


def ledger_sums(session: Session) -> dict[int, int]:
    """Sum of ledger entries per user."""
    rows = session.execute(
        select(LedgerEntry.user_id, func.sum(LedgerEntry.points)).group_by(LedgerEntry.user_id)
    )
    return {u: int(p) for u, p in rows}
