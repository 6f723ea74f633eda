"""The store's tables read by Spark over JDBC equal what SQLAlchemy reads, on both databases."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import select

from agora.db.engine import make_engine, session_factory
from agora.db.spark.session import _local_cores
from agora.db.spark.store import jdbc_source, read_table
from agora.db.tables import Event, User


@pytest.fixture
def community(database_url: str, community_store: Callable[[str], str]) -> str:
    """The bundled community in a fresh store on either database (a copy of the run's)."""
    return community_store(database_url)


def test_events_read_by_spark_equal_the_store(spark, community: str) -> None:
    engine = make_engine(community)
    with session_factory(engine)() as session:
        stored = {
            e.id: (e.event_id, e.user_id, e.item_id, e.type, e.timestamp.replace(tzinfo=None))
            for e in session.scalars(select(Event))
        }
        users = {u.id: u.external_id for u in session.scalars(select(User))}
    engine.dispose()
    frame = read_table(spark, community, "events", partitions=3)
    read = {
        r["id"]: (r["event_id"], r["user_id"], r["item_id"], r["type"], r["timestamp"])
        for r in frame.collect()
    }
    assert len(stored) > 5000
    assert read == stored
    names = read_table(spark, community, "users", ["id", "external_id", "created"])
    assert dict(names.select("id", "external_id").collect()) == users
    assert dict(names.dtypes)["created"] == "timestamp"


def test_jdbc_urls() -> None:
    pg = jdbc_source(
        "postgresql+psycopg://app:s3cret@db.internal:6543/agora?options=-csearch_path%3Dt1"
    )
    assert pg.url == "jdbc:postgresql://db.internal:6543/agora"
    assert pg.properties["user"] == "app" and pg.properties["password"] == "s3cret"
    assert pg.properties["options"] == "-csearch_path=t1"
    assert jdbc_source("sqlite:////srv/agora/agora.db").url == "jdbc:sqlite:/srv/agora/agora.db"
    with pytest.raises(ValueError, match="in-memory"):
        jdbc_source("sqlite://")
    with pytest.raises(ValueError, match="not mysql"):
        jdbc_source("mysql://u@h/db")
    assert _local_cores("local[2]") == 2 and _local_cores("local[3,2]") == 3
