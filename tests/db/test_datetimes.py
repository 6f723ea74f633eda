"""Datetimes come back from the store aware and in UTC on SQLite as on PostgreSQL (SQLite keeps no
time zone: a naive value read back made responses break their own ``date-time`` schema)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from agora.db.tables import TIME_CEILING, TIME_FLOOR, User, epoch_seconds


def test_datetimes_are_read_back_aware_in_utc(engine: Engine) -> None:
    east = timezone(timedelta(hours=5, minutes=30))
    given = {
        "utc": datetime(2024, 3, 1, 12, 0, tzinfo=UTC),
        "east": datetime(2024, 3, 1, 17, 30, tzinfo=east),  # the same instant as "utc"
    }
    with Session(engine) as session, session.begin():
        session.add_all(User(external_id=k, created=v, attributes={}) for k, v in given.items())
    with Session(engine) as session:
        stored = dict(session.execute(select(User.external_id, User.created)).all())
    for name, value in stored.items():
        assert value.tzinfo is not None, (name, value)
        assert value.utcoffset() == timedelta(0), (name, value)
        assert value == given[name]


def test_epoch_seconds_in_sql_agree_with_the_stored_times_and_clamp_odd_ones(
    engine: Engine,
) -> None:
    """Bulk reads take times as epoch seconds from the database: the same instants as the
    datetimes read back (to a millisecond on SQLite), and odd stored years read as the
    bounds, as :class:`StoredTime` reads them."""
    east = timezone(timedelta(hours=5, minutes=30))
    given = {
        "utc": datetime(2024, 3, 1, 12, 0, 0, 123456, tzinfo=UTC),
        "east": datetime(2024, 3, 1, 17, 30, tzinfo=east),
        "now": datetime.now(UTC),
    }
    with Session(engine) as session, session.begin():
        session.add_all(User(external_id=k, created=v, attributes={}) for k, v in given.items())
    with Session(engine) as session:
        stored = dict(session.execute(select(User.external_id, epoch_seconds(User.created))).all())
        for name, value in given.items():
            assert abs(stored[name] - value.timestamp()) < 1e-3, name
        session.execute(
            update(User).where(User.external_id == "utc").values(created=datetime(1, 1, 2))
        )
        session.execute(
            update(User).where(User.external_id == "east").values(created=datetime(9999, 1, 1))
        )
        odd = dict(session.execute(select(User.external_id, epoch_seconds(User.created))).all())
    assert odd["utc"] == TIME_FLOOR.timestamp()
    assert odd["east"] == TIME_CEILING.timestamp()
