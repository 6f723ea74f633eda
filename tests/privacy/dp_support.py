"""Helpers of the differential privacy tests (imported by name: pytest puts this folder on
sys.path): the keys and a small seeded community."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from agora.ingest.schemas import Dataset, EventIn, ItemIn, UserIn

ADMIN = {"Authorization": "Bearer test-admin"}
READ = {"Authorization": "Bearer r"}
WRITE = {"Authorization": "Bearer w"}

#: The community's first day (a historic store: analytics default to its newest activity).
START = datetime(2024, 3, 4, tzinfo=UTC)
DAYS = 21
TAGS = ("staking", "fees", "wallets", "governance")
#: The one user who posts 10,000 likes on one item in one day.
HEAVY = "heavy"
HEAVY_DAY = 5


def community(heavy: bool = True) -> Dataset:
    """60 users, 48 posts over three weeks with tags, likes spread over the days; ``heavy``
    adds a user with 10,000 likes on one post on day 5."""
    users = [UserIn(user_id=f"u{i}", created=START) for i in range(60)]
    items = [
        ItemIn(
            item_id=f"p{j}",
            author_id=f"u{j % 12}",
            title=f"post {j}",
            tags=[TAGS[j % len(TAGS)]],
            created=START + timedelta(days=j % DAYS, hours=1),
        )
        for j in range(48)
    ]
    events = []
    n = 0
    for i in range(60):
        for d in range(DAYS):
            if (i + d) % 3:
                continue
            item = f"p{(i * 7 + d) % 48}"
            events.append(
                EventIn(
                    event_id=f"e{n}",
                    user_id=f"u{i}",
                    item_id=item,
                    type="like",
                    timestamp=START + timedelta(days=d, hours=3, minutes=i),
                )
            )
            n += 1
    if heavy:
        users.append(UserIn(user_id=HEAVY, created=START))
        events += [
            EventIn(
                event_id=f"h{k}",
                user_id=HEAVY,
                item_id="p1",
                type="like",
                timestamp=START + timedelta(days=HEAVY_DAY, hours=5, seconds=k % 3600),
            )
            for k in range(10_000)
        ]
    return Dataset(users=users, items=items, events=events)
