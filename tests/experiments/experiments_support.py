"""Helpers shared by the experiment tests (imported by name from this folder)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from agora.db.tables import FeedImpression, Item, User
from agora.ingest.schemas import Dataset, EventIn, ItemIn, UserIn

#: A fixed clock, in the past of the real one (ingestion refuses far-future events).
NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
USERS = [f"u{i}" for i in range(200)]
ITEMS = [f"i{i}" for i in range(10)]


def community() -> Dataset:
    """200 users, 10 posts by ``author``; no events yet (the tests write what they measure)."""
    return Dataset(
        users=[UserIn(user_id=u) for u in [*USERS, "author"]],
        items=[
            ItemIn(
                item_id=i, author_id="author", title=i, tags=["t"], created=NOW - timedelta(days=9)
            )
            for i in ITEMS
        ],
    )


def experiment(**changes: Any) -> dict[str, Any]:
    """A two-arm experiment body: control and a more diverse feed."""
    return {
        "experiment_id": "diverse",
        "name": "More diversity",
        "arms": [
            {"name": "control"},
            {"name": "diverse", "overrides": {"diversity": 0.6, "exploration": 0.2}},
        ],
        "planned_users": 100,
        **changes,
    }


def event(user: str, item: str, kind: str, at: datetime, n: int = 0) -> EventIn:
    return EventIn(
        event_id=f"{user}-{item}-{kind}-{at.isoformat()}-{n}",
        user_id=user,
        item_id=item,
        type=kind,
        timestamp=at,
    )


def impressions(session: Session, rows: list[tuple[str, str, datetime]]) -> None:
    """Feed impressions (user, item, served), as the feed stores them."""
    users = dict(session.execute(select(User.external_id, User.id)).all())
    items = dict(session.execute(select(Item.external_id, Item.id)).all())
    for position, (user, item, served) in enumerate(rows):
        session.add(
            FeedImpression(
                user_id=users[user],
                item_id=items[item],
                session="s",
                position=position,
                source="fresh",
                served=served,
            )
        )
    session.flush()
