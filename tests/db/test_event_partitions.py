"""PostgreSQL's events partitioned by month: the migration keeps the rows, event ids stay
unique across partitions, and the partitions are made ahead of the rows."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import text

from agora.config import Settings
from agora.db.engine import downgrade, make_engine, migrate, session_factory, transaction
from agora.db.partitions import (
    KEYS_WRITTEN,
    NewPartitions,
    ensure_event_partitions,
    ensure_months_ahead,
    existing_partitions,
)
from agora.ingest.schemas import EventIn
from agora.ingest.service import add_events
from agora.privacy import service as privacy

TYPES = Settings().event_types


def _event(event_id: str, when: datetime, user: str = "u1") -> EventIn:
    return EventIn(event_id=event_id, user_id=user, item_id="p1", type="view", timestamp=when)


def _homes(conn) -> list[tuple[str, str]]:
    rows = conn.execute(text("SELECT event_id, tableoid::regclass::text FROM events ORDER BY id"))
    return [tuple(row) for row in rows]


def test_migration_moves_stored_events_into_monthly_partitions(postgres_url: str) -> None:
    engine = make_engine(postgres_url)
    migrate(engine, "0017")
    with engine.begin() as conn:  # rows stored before 0018 (as the code of the time wrote them)
        conn.execute(
            text("INSERT INTO users (external_id, created, attributes) VALUES ('u1', now(), '{}')")
        )
        conn.execute(
            text(
                "INSERT INTO items (external_id, created, title, body, tags, media, "
                "attributes) VALUES ('p1', now(), '', '', '[]', '{}', '{}')"
            )
        )
        conn.execute(
            text(
                "INSERT INTO events (event_id, user_id, item_id, type, timestamp, context) VALUES "
                "('a', 1, 1, 'view', '2021-03-05T00:00:00Z', '{}'), "
                "('b', 1, 1, 'view', '2021-05-01T00:00:00Z', '{}')"
            )
        )
    factory = session_factory(engine)
    migrate(engine)
    with engine.connect() as conn:
        assert _homes(conn) == [("a", "events_2021_03"), ("b", "events_2021_05")]
        assert "events_2021_04" not in existing_partitions(conn)  # only months holding rows
        keys = conn.execute(text("SELECT event_id, id FROM event_ids ORDER BY id")).all()
        assert keys == [("a", 1), ("b", 2)]
    with transaction(factory) as s:  # the id sequence goes on; a stored id is still skipped
        again = add_events(
            s,
            [
                _event("a", datetime(2021, 3, 5, tzinfo=UTC)),
                _event("c", datetime(2021, 3, 6, tzinfo=UTC)),
            ],
            TYPES,
        )
    assert again.written == {"events": 1} and again.duplicate_events == 1
    with engine.connect() as conn:
        assert conn.execute(text("SELECT id FROM events WHERE event_id = 'c'")).scalar() == 3
    downgrade(engine, "0017")  # and back to one plain table
    with engine.connect() as conn:
        assert [e for e, _ in _homes(conn)] == ["a", "b", "c"]
        assert conn.execute(text("SELECT to_regclass('event_ids')")).scalar() is None
    engine.dispose()


def test_event_ids_stay_unique_when_a_row_moves_or_goes(postgres_url: str) -> None:
    engine = make_engine(postgres_url)
    migrate(engine)
    factory = session_factory(engine)
    with transaction(factory) as s:
        add_events(
            s,
            [
                _event("a", datetime(2022, 1, 10, tzinfo=UTC)),
                _event("b", datetime(2022, 1, 11, tzinfo=UTC), user="u2"),
            ],
            TYPES,
        )
    with engine.begin() as conn:  # a new time moves the row to another month's partition
        conn.execute(text("UPDATE events SET timestamp = '2022-02-10' WHERE event_id = 'a'"))
        assert conn.execute(text("SELECT count(*) FROM event_ids")).scalar() == 2
    with transaction(factory) as s:
        again = add_events(s, [_event("a", datetime(2022, 1, 10, tzinfo=UTC))], TYPES)
    assert again.duplicate_events == 1
    with transaction(factory) as s:  # erasing u2 removes its events and their keys
        assert privacy.erase_user(s, "u2", requested_by="test") is not None
    with engine.connect() as conn:
        assert conn.execute(text("SELECT event_id FROM event_ids")).scalars().all() == ["a"]
    with transaction(factory) as s:  # so the same event sent again is stored again
        back = add_events(s, [_event("b", datetime(2022, 1, 11, tzinfo=UTC), user="u2")], TYPES)
    assert back.written == {"events": 1}
    engine.dispose()


def test_partitions_are_made_for_the_months_ahead(postgres_url: str) -> None:
    engine = make_engine(postgres_url)
    migrate(engine)
    with engine.begin() as conn:
        made = ensure_months_ahead(conn, datetime(2031, 11, 20, tzinfo=UTC))
        assert made == ["events_2031_11", "events_2031_12", "events_2032_01", "events_2032_02"]
        assert ensure_months_ahead(conn, datetime(2031, 12, 1, tzinfo=UTC)) == ["events_2032_03"]
    with transaction(session_factory(engine)) as s:
        add_events(s, [_event("x", datetime(2031, 12, 24, tzinfo=UTC))], TYPES, 1e10)
    with engine.connect() as conn:
        assert _homes(conn) == [("x", "events_2031_12")]
    engine.dispose()


def test_sqlite_keeps_one_plain_table(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    migrate(engine)
    with engine.begin() as conn:
        assert ensure_months_ahead(conn) == []
        indexes = {row[1] for row in conn.execute(text("PRAGMA index_list('events')"))}
    assert "ix_events_timestamp" in indexes


def test_a_new_month_whose_rows_reached_the_default_partition_meanwhile_stays_there(
    postgres_url: str,
) -> None:
    """A bulk writer's loading table of a month is not attached once another writer's row of
    that month went to the default partition (attaching would fail): its rows join them."""
    engine = make_engine(postgres_url)
    migrate(engine)
    month = datetime(2019, 1, 1, tzinfo=UTC)
    with engine.begin() as conn:
        ensure_event_partitions(conn, [datetime(2019, 3, 1, tzinfo=UTC)])
    with transaction(session_factory(engine)) as s:
        add_events(s, [_event("seed", datetime(2019, 3, 1, tzinfo=UTC))], TYPES)
    with engine.begin() as conn:
        new = NewPartitions()
        new.prepare(conn, [month])
        conn.execute(text(f"SELECT set_config('{KEYS_WRITTEN}', 'on', true)"))
        conn.execute(
            text(
                f"INSERT INTO {NewPartitions.LOADING} (event_id, user_id, item_id, type, "
                "timestamp, context) SELECT 'bulk', user_id, item_id, 'view', "
                "'2019-01-10T00:00:00Z', '{}' FROM events"
            )
        )
        conn.execute(text(f"SELECT set_config('{KEYS_WRITTEN}', 'off', true)"))
        conn.execute(  # another writer's row of January: no partition yet, so the default's
            text(
                "INSERT INTO events (event_id, user_id, item_id, type, timestamp, context) "
                "SELECT 'live', user_id, item_id, 'view', '2019-01-20T00:00:00Z', '{}' "
                "FROM events WHERE event_id = 'seed'"
            )
        )
        assert new.attach(conn) == []
    with engine.connect() as conn:
        homes = dict(_homes(conn))
        assert homes == {
            "seed": "events_2019_03",
            "bulk": "events_default",
            "live": "events_default",
        }
        assert "events_2019_01" not in existing_partitions(conn)
        assert (
            conn.execute(text("SELECT to_regclass(:t)"), {"t": NewPartitions.LOADING}).scalar()
            is None
        )
    engine.dispose()
