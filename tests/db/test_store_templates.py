"""The tests' stores copied from run-wide templates (tests/stores.py): a copy equals a store just
migrated, and holds nothing that the test before it wrote or changed."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import func, insert, select, text
from stores import StoreTemplates, migrated, read_shape

from agora.db.engine import downgrade, make_engine
from agora.db.tables import User

WHEN = datetime(2001, 1, 5, tzinfo=UTC)


def _add_user(url: str) -> int:
    """A new user's row id."""
    engine = make_engine(url)
    with engine.begin() as conn:
        found = conn.scalar(
            insert(User).values(external_id="ann", created=WHEN, attributes={}).returning(User.id)
        )
    engine.dispose()
    return found


def _state(url: str) -> tuple[list[str], int, list[str]]:
    """The store's shape, how many users it holds, and its events partitions."""
    engine = make_engine(url)
    with engine.connect() as conn:
        shape = read_shape(conn)
        users = conn.scalar(select(func.count()).select_from(User))
        partitions = conn.execute(
            text(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                "WHERE i.inhparent = to_regclass('events') ORDER BY 1"
            )
        )
        names = list(partitions.scalars())
    engine.dispose()
    return shape, users, names


def _schema_oid(pool_url: str, schema: str) -> int:
    engine = make_engine(pool_url)
    with engine.connect() as conn:
        found = conn.scalar(text("SELECT to_regnamespace(:s)::oid"), {"s": schema})
    engine.dispose()
    return found


def test_a_pooled_copy_is_a_just_migrated_store_whatever_the_test_before_wrote(
    store_templates: StoreTemplates, postgres_url: str
) -> None:
    pool = store_templates.postgres_pool()
    with pool.test_schema() as first:
        store_templates.copy_into(first, "migrated", migrated)
        assert _add_user(first) == 1
        engine = make_engine(first)
        with engine.begin() as conn:  # a month's partition, as a bulk import makes
            conn.execute(
                text(
                    "CREATE TABLE events_2001_01 PARTITION OF events "
                    "FOR VALUES FROM ('2001-01-01') TO ('2001-02-01')"
                )
            )
        engine.dispose()
    pooled = pool.free[-1]
    before = _schema_oid(pool.base_url, pooled)
    with pool.test_schema() as second:
        store_templates.copy_into(second, "migrated", migrated)
        assert _schema_oid(pool.base_url, second.rsplit("%3D", 1)[1]) == before  # reused
        copied = _state(second)
        assert _add_user(second) == 1  # the id sequence starts again
    migrated(postgres_url)
    fresh = _state(postgres_url)
    assert copied == fresh and copied[1] == 0 and "events_2001_01" not in copied[2]


def test_a_pooled_schema_whose_shape_a_test_changed_is_not_reused(
    store_templates: StoreTemplates,
) -> None:
    pool = store_templates.postgres_pool()
    with pool.test_schema() as first:
        store_templates.copy_into(first, "migrated", migrated)
        engine = make_engine(first)
        downgrade(engine, "0017")
        engine.dispose()
    changed = _schema_oid(pool.base_url, pool.free[-1])
    with pool.test_schema() as second:
        store_templates.copy_into(second, "migrated", migrated)
        assert _schema_oid(pool.base_url, second.rsplit("%3D", 1)[1]) != changed
        assert _state(second)[0] == store_templates.schemas["migrated"].state.shape


def test_a_sqlite_copy_is_the_template_file_and_its_writes_stay_in_it(
    store_templates: StoreTemplates, sqlite_url: str
) -> None:
    store_templates.copy_into(sqlite_url, "migrated", migrated)
    template = store_templates.files["migrated"].read_bytes()
    assert Path(sqlite_url.split("///", 1)[1]).read_bytes() == template
    assert _add_user(sqlite_url) == 1
    assert store_templates.files["migrated"].read_bytes() == template
