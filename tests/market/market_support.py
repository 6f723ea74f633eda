"""A small community for the market tests (imported by name: pytest puts this folder on
sys.path)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from agora.ingest.schemas import Dataset, EventIn, GroupIn, ItemIn, MembershipIn, UserIn

#: A fixed clock: 10:30 UTC on a weekday.
NOW = datetime(2026, 11, 30, 10, 30, tzinfo=UTC)
USERS = [f"u{i}" for i in range(40)]
#: ad creatives (a0-a2, tagged python / garden) and organic posts (p0-p9)
ITEMS = {
    "a0": ["python"],
    "a1": ["python", "web"],
    "a2": ["garden"],
    **{f"p{i}": ["python" if i < 5 else "garden"] for i in range(10)},
}


def community() -> Dataset:
    """u0-u19 read python posts, u20-u39 garden posts; u0-u9 are in group 'pro'."""
    events = [
        EventIn(
            event_id=f"{u}-p{(i % 5) + (0 if i < 20 else 5)}",
            user_id=u,
            item_id=f"p{(i % 5) + (0 if i < 20 else 5)}",
            type="like",
            timestamp=NOW - timedelta(days=1, hours=i % 24),
        )
        for i, u in enumerate(USERS)
    ]
    return Dataset(
        users=[UserIn(user_id=u) for u in [*USERS, "brand"]],
        items=[
            ItemIn(item_id=i, author_id="brand", title=f"Post {i}", tags=t, created=NOW)
            for i, t in ITEMS.items()
        ],
        events=events,
        groups=[GroupIn(group_id="pro")],
        memberships=[MembershipIn(group_id="pro", user_id=f"u{i}") for i in range(10)],
    )
