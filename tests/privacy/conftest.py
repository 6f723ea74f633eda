"""A client of the whole API on a small seeded community, with differential privacy on or off."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from agora.api.app import create_app
from agora.config import BUILTIN_EVENT_TYPES, Settings
from agora.db.engine import make_engine, migrate, session_factory, transaction
from agora.ingest.schemas import Dataset, EventIn, ItemIn, UserIn
from agora.ingest.service import add_dataset

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


@pytest.fixture
def dp_client(tmp_path: Path, database_url: str) -> Iterator[Callable[..., TestClient]]:
    """``dp_client(dataset=None, **settings)``: the app on a store holding the community
    (keys: ``test-admin`` admin, ``r`` read, ``w`` write); settings such as ``dp_epsilon``."""
    with ExitStack() as stack:

        def make(dataset: Dataset | None = None, **overrides: Any) -> TestClient:
            engine = make_engine(database_url)
            migrate(engine)
            with transaction(session_factory(engine)) as session:
                add_dataset(session, dataset or community(), BUILTIN_EVENT_TYPES)
            engine.dispose()
            settings = Settings(
                data_dir=tmp_path / "data",
                database_url=database_url,
                api_key="test-admin",
                api_keys={"r": ["read"], "w": ["write"]},
                **overrides,
            )
            return stack.enter_context(TestClient(create_app(settings)))

        yield make
