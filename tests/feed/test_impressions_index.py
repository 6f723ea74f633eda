"""The unauthenticated home page counts the feed impressions of the last 24 hours: that query
reads an index on ``feed_impressions.served`` rather than every impression ever stored."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, inspect, select, text

from agora.db.tables import FeedImpression


def test_impressions_are_indexed_by_serving_time(engine: Engine) -> None:
    indexes = {
        i["name"]: i["column_names"] for i in inspect(engine).get_indexes("feed_impressions")
    }
    assert indexes.get("ix_feed_impressions_served") == ["served"]


def test_the_home_page_count_uses_the_index(sqlite_url: str) -> None:
    from agora.db.engine import make_engine, migrate

    engine = make_engine(sqlite_url)
    migrate(engine)
    since = datetime.now(UTC) - timedelta(hours=24)
    query = select(FeedImpression.source).where(FeedImpression.served >= since)
    compiled = query.compile(engine, compile_kwargs={"literal_binds": True})
    with engine.connect() as conn:
        plan = " ".join(
            str(row[-1]) for row in conn.execute(text(f"EXPLAIN QUERY PLAN {compiled}"))
        )
    engine.dispose()
    assert "ix_feed_impressions_served" in plan, plan
