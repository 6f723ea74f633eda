"""Badges: a user's awards and their progress towards the next ones, and the awards since a
moment (for the digest). Awards themselves are made by :mod:`.ledger` as it applies events."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from agora.db.tables import Event, Item
from agora.engagement.config import BadgeRule, EngagementConfig
from agora.engagement.models import (
    ActiveDay,
    BadgeAward,
)
from agora.engagement.service import more_of, streak
from agora.ingest.schemas import as_utc
from agora.ingest.service import known_user_pk


# -- badges -------------------------------------------------------------------------------------
@dataclass
class BadgeProgress:
    badge: str
    title: str
    level: str
    have: int | float | None
    need: int | float | None
    message: str


@dataclass
class BadgesReport:
    user_id: str
    earned: list[dict[str, Any]]
    progress: list[BadgeProgress]


def badges(session: Session, config: EngagementConfig, user_id: str, now: datetime) -> BadgesReport:
    """The badges a user earned (per post badges once per post) and how far each one they can
    still earn is ("12 more likes on 'X' to reach Good Post")."""
    pk = known_user_pk(session, user_id)
    rows = session.execute(
        select(BadgeAward, Item.external_id, Item.title)
        .outerjoin(Item, Item.id == BadgeAward.item_id)
        .where(BadgeAward.user_id == pk)
        .order_by(BadgeAward.awarded, BadgeAward.id)
    ).all()
    defs = {b.name: b for b in config.badges}
    earned = [
        {
            "badge": award.badge,
            "title": defs[award.badge].title if award.badge in defs else award.badge,
            "level": defs[award.badge].level if award.badge in defs else None,
            "item_id": item,
            "item_title": title,
            "awarded": as_utc(award.awarded),
        }
        for award, item, title in rows
    ]
    held = {(a.badge, a.item_id) for a, _, _ in rows}
    progress = [
        p for b in config.badges if (p := _progress(session, config, pk, b, held, now)) is not None
    ]
    return BadgesReport(user_id, earned, progress)


def _progress(
    session: Session, config: EngagementConfig, pk: int, b: BadgeRule,
    held: set[tuple[str, int | None]], now: datetime,
) -> BadgeProgress | None:  # fmt: skip
    """How far the user is from ``b`` (None: earned once and for all)."""
    if not b.each_post and any(badge == b.name for badge, _ in held):
        return None
    noun = b.counted
    if b.kind == "post_events":
        rows = session.execute(
            select(Item.id, Item.title, func.count())
            .select_from(Event)
            .join(Item, Item.id == Event.item_id)
            .where(Item.author_id == pk, Event.type == b.event, Event.user_id != pk)
            .group_by(Item.id, Item.title)
        ).all()
        open_ = [(n, item, title) for item, title, n in rows if (b.name, item) not in held]
        if not open_:
            message = f"{b.threshold} {noun} on one post to reach {b.title}"
            return BadgeProgress(b.name, b.title, b.level, 0, b.threshold, message)
        n, _, title = max(open_, key=lambda r: (r[0], -r[1]))
        message = f"{more_of(b.threshold - n, noun)} on {title or 'a post'!r} to reach {b.title}"
        return BadgeProgress(b.name, b.title, b.level, n, b.threshold, message)
    if b.kind == "count":
        stmt = select(func.count()).select_from(Event).where(Event.type == b.event)
        if b.who == "actor":
            stmt = stmt.where(Event.user_id == pk)
        else:
            stmt = stmt.join(Item, Item.id == Event.item_id).where(
                Item.author_id == pk, Event.user_id != pk
            )
        n = session.scalar(stmt) or 0
        message = f"{more_of(b.threshold - n, noun)} to reach {b.title}"
        return BadgeProgress(b.name, b.title, b.level, n, b.threshold, message)
    if b.kind == "streak":
        days = set(session.scalars(select(ActiveDay.day).where(ActiveDay.user_id == pk)))
        today = now.date()
        last = today if today in days else today - timedelta(days=1)
        n = streak(days, last) if last in days else 0
        message = f"{more_of(b.threshold - n, noun)} to reach {b.title} (current streak {n})"
        return BadgeProgress(b.name, b.title, b.level, n, b.threshold, message)
    first = b.conditions[0]
    word = b.post_type or "post"
    what = f"{'an' if word[0] in 'aeiou' else 'a'} {word} with " + " and ".join(
        f"{c.attribute} {'>=' if c.op == 'ge' else '<=' if c.op == 'le' else '='} {c.value}"
        for c in b.conditions
    )
    best = None
    numeric = isinstance(first.value, int | float) and not isinstance(first.value, bool)
    if first.op == "ge" and numeric:
        rows = session.execute(select(Item.id, Item.attributes).where(Item.author_id == pk))
        for item, attributes in rows:
            attributes = attributes or {}
            value = attributes.get(first.attribute)
            if (
                (b.name, item) not in held
                and (b.post_type is None or attributes.get("post_type") == b.post_type)
                and isinstance(value, int | float)
                and (best is None or value > best)
            ):
                best = value
    suffix = f" (best so far: {first.attribute} {best})" if best is not None else ""
    need = first.value if best is not None else None
    message = f"{what} to reach {b.title}{suffix}"
    return BadgeProgress(b.name, b.title, b.level, best, need, message)  # type: ignore[arg-type]


def awards_since(
    session: Session, config: EngagementConfig, pk: int, since: datetime
) -> list[dict[str, Any]]:
    """Badges the user was awarded after ``since`` (for the digest)."""
    defs = {b.name: b for b in config.badges}
    rows = session.execute(
        select(BadgeAward.badge, BadgeAward.awarded, Item.external_id, Item.title)
        .outerjoin(Item, Item.id == BadgeAward.item_id)
        .where(BadgeAward.user_id == pk, BadgeAward.awarded > since)
        .order_by(BadgeAward.awarded)
    )
    return [
        {
            "badge": badge,
            "title": defs[badge].title if badge in defs else badge,
            "awarded": as_utc(when),
            "item_id": item,
            "item_title": title,
        }
        for badge, when, item, title in rows
    ]
