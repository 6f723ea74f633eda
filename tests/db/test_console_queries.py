"""The read queries the operator console added, on both real databases: finding users and
items, events per minute, events per type, one item's reach and stored sentiment."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from agora.analytics.influence import service as influence
from agora.analytics.sentiment.service import item_sentiment
from agora.config import Settings
from agora.db import queries
from agora.db.engine import session_factory, transaction
from agora.ingest import service
from agora.ingest.schemas import Dataset, EventIn, ItemIn, UserIn

NOW = datetime(2026, 12, 5, 12, 0, 30, tzinfo=UTC)


def _store(engine) -> None:
    def event(n: int, user: str, item: str, minutes_ago: float, kind: str = "like") -> EventIn:
        when = NOW - timedelta(minutes=minutes_ago)
        return EventIn(event_id=f"e{n}", user_id=user, item_id=item, type=kind, timestamp=when)

    data = Dataset(
        users=[UserIn(user_id=u) for u in ("28", "280", "2_8", "17", "alice")],
        items=[
            ItemIn(item_id="p1", author_id="alice", title="Staking on Cardano", tags=["staking"],
                   created=NOW - timedelta(days=3)),
            ItemIn(item_id="p2", author_id="17", title="Wallets", tags=["wallet", "staking-pool"],
                   created=NOW - timedelta(days=2)),
            ItemIn(item_id="p3", title="50% off: 100_000 ADA?", tags=["质押"],
                   created=NOW - timedelta(days=1)),
        ],
        events=[
            event(1, "28", "p1", 0.5), event(2, "17", "p1", 0.7, "view"),
            event(3, "17", "p1", 1.5), event(4, "alice", "p1", 2.5),  # the author's own
            event(5, "28", "p2", 45),
        ],
    )  # fmt: skip
    with transaction(session_factory(engine)) as session:
        service.add_dataset(session, data, Settings().event_types, earliest=NOW - timedelta(days=9))


def test_finding_users_by_the_start_of_their_id(engine) -> None:
    _store(engine)
    with session_factory(engine)() as session:
        assert queries.find_users(session, "28", 10) == ["28", "280"]
        assert queries.find_users(session, "2_", 10) == ["2_8"]  # _ is no wildcard
        assert queries.find_users(session, "%", 10) == []
        assert queries.find_users(session, "2", 1) == ["28"]


def test_finding_items_by_id_title_or_tag(engine) -> None:
    _store(engine)
    with session_factory(engine)() as session:

        def ids(text: str) -> list[str]:
            return [i["item_id"] for i in queries.find_items(session, text, 10)]

        assert ids("staking") == ["p1"]  # the title (any case) or the exact tag, not a tag's part
        assert ids("WALLETS") == ["p2"]
        assert ids("staking-pool") == ["p2"]
        assert ids("p3") == ["p3"]
        assert ids("50%") == ["p3"] and ids("100_000") == ["p3"]
        assert ids("1_0") == [] and ids("5%f") == []  # % and _ are no wildcards
        assert ids("质押") == ["p3"]
        found = queries.find_items(session, "p1", 10)[0]
        assert found["title"] == "Staking on Cardano" and found["author_id"] == "alice"


def test_events_per_minute_and_per_type(engine) -> None:
    _store(engine)
    with session_factory(engine)() as session:
        assert queries.events_per_minute(session, NOW, 3) == [1, 1, 2]
        assert sum(queries.events_per_minute(session, NOW, 60)) == 5
        # reading only the two newest events (e4 in the window, e5 before it), e1-e3 go uncounted
        assert queries.events_per_minute(session, NOW, 3, scan=2) == [1, 0, 0]
        assert queries.item_event_counts(session, "p1") == {"like": 3, "view": 1}
        assert queries.item_event_counts(session, "nothing") == {}


def test_one_item_reach_and_its_sentiment_before_scoring(engine) -> None:
    _store(engine)
    with session_factory(engine)() as session:
        (reach,) = influence.reach(session, "item", 5, only="p1")
        assert (reach.key, reach.users, reach.events) == ("p1", 2, 3)  # not the author's own
        assert influence.reach(session, "item", 5, only="p3") == []
        assert [r.key for r in influence.reach(session, "item", 5)] == ["p1", "p2"]
        assert item_sentiment(session, "p1") is None
