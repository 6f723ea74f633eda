"""Migration 0005 creates exactly the market tables models.py declares, and drops them."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect

import agora.market.models  # noqa: F401  (registers the market tables)
from agora.db.engine import downgrade, migrate
from agora.db.tables import Base

MARKET = {"ad_campaigns", "ad_eligibility", "ad_impressions", "ad_clicks", "ad_conversions"}


def _market_diffs(engine: Engine) -> list:
    with engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), Base.metadata)

    def table_of(diff: object) -> str | None:
        op = diff[0] if isinstance(diff, list) else diff
        for part in op[1:]:
            name = getattr(part, "name", None)
            table = getattr(part, "table", None)
            if table is not None and getattr(table, "name", None) in MARKET:
                return table.name
            if name in MARKET:
                return name
            if isinstance(part, str) and part in MARKET:
                return part
        return None

    return [d for d in diffs if table_of(d) is not None]


def test_migration_matches_models_and_downgrades(engine: Engine) -> None:
    assert set(inspect(engine).get_table_names()) >= MARKET
    assert _market_diffs(engine) == []
    downgrade(engine, "0004")
    assert not MARKET & set(inspect(engine).get_table_names())
    migrate(engine)
    assert set(inspect(engine).get_table_names()) >= MARKET
