"""Datetimes come back from the store aware and in UTC on SQLite as on PostgreSQL (SQLite keeps no
time zone: a naive value read back made responses break their own ``date-time`` schema)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from agora.db.tables import User


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
