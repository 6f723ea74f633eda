"""Storage behaviour on both real databases: idempotent events, cascades, rollbacks, migrations."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event, inspect, select
from sqlalchemy.exc import OperationalError

from agora.config import Settings
from agora.db import queries
from agora.db.engine import downgrade, migrate, session_factory, transaction
from agora.db.tables import Event, Item, SocialEdge, User
from agora.ingest import service
from agora.ingest.schemas import Dataset, EdgeIn, EventIn, GroupIn, ItemIn, MembershipIn, UserIn
from agora.privacy import service as privacy

TYPES = Settings().event_types


def _event(n: int, user: str = "u1", item: str = "p1", kind: str = "like", **kw) -> EventIn:
    return EventIn(event_id=f"e{n}", user_id=user, item_id=item, type=kind, **kw)


def test_sqlite_runs_in_wal_mode(sqlite_url: str) -> None:
    from agora.db.engine import make_engine

    eng = make_engine(sqlite_url)
    with eng.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_migrations_go_up_and_down(engine) -> None:
    names = set(inspect(engine).get_table_names())
    assert {"users", "items", "events", "social_edges", "groups", "memberships"} <= names
    feed = {"feed_settings", "feed_feedback", "feed_impressions"}
    assert feed <= names
    downgrade(engine, "0001")
    names = set(inspect(engine).get_table_names())
    assert "events" in names and not feed & names
    downgrade(engine, "base")
    assert "events" not in set(inspect(engine).get_table_names())
    migrate(engine)
    assert feed | {"events"} <= set(inspect(engine).get_table_names())


def test_migrations_create_exactly_the_tables_every_domain_declares(engine) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from agora.db.migrations.domains import METADATA
    from agora.db.partitions import managed_outside_metadata

    with engine.connect() as conn:
        opts = {"compare_type": True, "include_object": managed_outside_metadata}
        context = MigrationContext.configure(conn, opts=opts)
        assert compare_metadata(context, METADATA) == []


def test_resent_event_is_stored_once(engine) -> None:
    factory = session_factory(engine)
    with transaction(factory) as s:
        first = service.add_events(s, [_event(1), _event(2, item="p2")], TYPES)
    with transaction(factory) as s:
        again = service.add_events(s, [_event(1), _event(1), _event(3, item="p3")], TYPES)
    assert first.written == {"events": 2} and first.duplicate_events == 0
    assert again.written == {"events": 1} and again.duplicate_events == 2
    with factory() as s:
        assert s.scalar(select(Event).where(Event.event_id == "e1")).type == "like"
        assert queries.counts(s)["events"] == 3


def test_unknown_ids_in_events_are_created(engine) -> None:
    factory = session_factory(engine)
    ts = datetime(2024, 5, 1, 10, tzinfo=UTC)
    with transaction(factory) as s:
        service.add_events(s, [_event(1, user="newbie", item="fresh", timestamp=ts)], TYPES)
    with factory() as s:
        assert queries.user_record(s, "newbie")["n_events"] == 1
        assert queries.item_record(s, "fresh")["item_id"] == "fresh"
        assert queries.user_events(s, "newbie")[0][3] == ts


def test_a_one_event_write_of_a_known_user_and_item_is_two_statements(engine) -> None:
    """The stored-event check and the user and item look-ups are one statement; the insert
    the other."""
    factory = session_factory(engine)
    with transaction(factory) as s:
        service.add_events(s, [_event(1)], TYPES)
    statements: list[str] = []

    def record(conn, cursor, statement, params, context, many) -> None:  # noqa: ANN001, ARG001
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        with transaction(factory) as s:
            summary = service.add_events(s, [_event(2, item="p1")], TYPES)
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert summary.written == {"events": 1} and len(statements) == 2


def test_a_batch_past_one_look_up_stores_each_new_event_once_with_its_user_and_item(
    engine,
) -> None:
    """700 events (three look-up statements): stored ones and repeats skipped, known and new
    users and items on both sides of each look-up's bound, every row with its own ids."""
    factory = session_factory(engine)
    with transaction(factory) as s:
        service.add_events(s, [_event(n, user=f"u{n}", item=f"p{n}") for n in range(0, 700, 7)],
                           TYPES)  # fmt: skip
    batch = [_event(n, user=f"u{n % 350}", item=f"p{n}") for n in range(700)]
    with transaction(factory) as s:
        summary = service.add_events(s, [*batch, batch[3], batch[650]], TYPES)
    assert summary.written == {"events": 600} and summary.duplicate_events == 102
    with factory() as s:
        stored = s.execute(
            select(Event.event_id, User.external_id, Item.external_id)
            .join(User, User.id == Event.user_id)
            .join(Item, Item.id == Event.item_id)
        ).all()
    owners = {eid: (user, item) for eid, user, item in stored}
    first = {f"e{n}": (f"u{n}", f"p{n}") for n in range(0, 700, 7)}
    assert owners == {f"e{n}": (f"u{n % 350}", f"p{n}") for n in range(700)} | first
    with factory() as s:
        assert queries.counts(s)["users"] == 350 + len([n for n in range(0, 700, 7) if n >= 350])


def test_rejected_batch_writes_nothing(engine) -> None:
    factory = session_factory(engine)
    future = datetime.now(UTC) + timedelta(days=30)
    batch = [_event(1), _event(2, kind="teleport"), _event(3, timestamp=future)]
    with pytest.raises(service.Rejected) as err, transaction(factory) as s:
        service.add_events(s, batch, TYPES)
    fields = {(p.index, p.field) for p in err.value.problems}
    assert fields == {(1, "type"), (2, "timestamp")}
    with factory() as s:
        assert queries.counts(s) == {k: 0 for k in queries.counts(s)}


def test_failure_midway_rolls_back_the_whole_transaction(engine) -> None:
    factory = session_factory(engine)
    with pytest.raises(service.Rejected), transaction(factory) as s:
        service.upsert_users(s, [UserIn(user_id="a"), UserIn(user_id="b")])
        service.add_events(s, [_event(1, kind="nope")], TYPES)
    with factory() as s:
        assert queries.counts(s)["users"] == 0


def test_deleting_a_user_removes_their_rows_and_keeps_their_posts(engine) -> None:
    factory = session_factory(engine)
    data = Dataset(
        users=[UserIn(user_id="alice"), UserIn(user_id="bob")],
        groups=[GroupIn(group_id="g1", name="Plutus devs")],
        items=[ItemIn(item_id="p1", author_id="alice", title="Hello", tags=["intro"])],
        events=[_event(1, user="alice", item="p1"), _event(2, user="bob", item="p1")],
        edges=[EdgeIn(source_id="alice", target_id="bob", type="friend")],
        memberships=[MembershipIn(group_id="g1", user_id="alice")],
    )
    with transaction(factory) as s:
        summary = service.add_dataset(s, data, TYPES)
    assert summary.written["edges"] == 2  # friend edges go both ways
    with transaction(factory) as s:
        assert privacy.erase_user(s, "alice", requested_by="test") is not None
        assert privacy.erase_user(s, "alice", requested_by="test") is None
    with factory() as s:
        c = queries.counts(s)
        assert (c["users"], c["events"], c["edges"], c["memberships"]) == (1, 1, 0, 0)
        assert queries.item_record(s, "p1")["author_id"] is None
    with transaction(factory) as s:
        assert service.delete_item(s, "p1")
    with factory() as s:
        assert queries.counts(s)["events"] == 0


def test_upserts_replace_fields(engine) -> None:
    factory = session_factory(engine)
    with transaction(factory) as s:
        service.upsert_items(s, [ItemIn(item_id="p1", title="Draft", tags=["a"])])
    with transaction(factory) as s:
        service.upsert_items(
            s, [ItemIn(item_id="p1", title="Final", tags=["a", "b"], author_id="z")]
        )
    with factory() as s:
        rec = queries.item_record(s, "p1")
        assert (rec["title"], rec["tags"], rec["author_id"]) == ("Final", ["a", "b"], "z")
        assert s.scalar(select(User.external_id)) == "z"
        assert len(s.scalars(select(Item)).all()) == 1


def test_one_write_of_many_records_keeps_their_order_and_the_last_of_a_repeated_id(engine) -> None:
    """PostgreSQL writes a whole list in one statement: items get ids in the list's order (the
    feed catalogue reads new items by id), and an id given twice is stored once, as the later
    record says, on both stores (one statement may not touch a row twice)."""
    factory = session_factory(engine)
    items = [ItemIn(item_id=f"p{n}", title=f"t{n}", tags=[f"g{n}", "x"]) for n in range(5)]
    items.append(ItemIn(item_id="p2", title="again", tags=[], attributes={"k": [1, "二"]}))
    edges = [EdgeIn(source_id="a", target_id="b", type="friend", weight=w) for w in (0.3, 0.7)]
    with transaction(factory) as s:
        assert service.upsert_items(s, items) == 6
        assert service.add_edges(s, edges) == 2  # a friend edge both ways, once each
    with factory() as s:
        stored = s.execute(select(Item.external_id, Item.title, Item.tags).order_by(Item.id))
        assert [tuple(row) for row in stored] == [
            ("p0", "t0", ["g0", "x"]), ("p1", "t1", ["g1", "x"]), ("p2", "again", []),
            ("p3", "t3", ["g3", "x"]), ("p4", "t4", ["g4", "x"]),
        ]  # fmt: skip
        assert queries.item_record(s, "p2")["attributes"] == {"k": [1, "二"]}
        weights = s.scalars(select(SocialEdge.weight)).all()
        assert weights == [0.7, 0.7]


def test_edges_validate_and_delete(engine) -> None:
    factory = session_factory(engine)
    with pytest.raises(service.Rejected), transaction(factory) as s:
        service.add_edges(s, [EdgeIn(source_id="a", target_id="a", type="follow")])
    with transaction(factory) as s:
        service.add_edges(s, [EdgeIn(source_id="a", target_id="b", type="trust", weight=0.5)])
        service.add_edges(s, [EdgeIn(source_id="a", target_id="b", type="trust", weight=0.9)])
    with factory() as s:
        edges = queries.user_edges(s, "a")
        assert [(e["target_id"], e["type"], e["weight"]) for e in edges] == [("b", "trust", 0.9)]
    with transaction(factory) as s:
        assert service.delete_edge(s, "a", "b", "trust")
    with factory() as s:
        assert s.scalars(select(SocialEdge)).all() == []


@pytest.mark.parametrize("writes", [False, True])
def test_a_read_then_write_transaction_on_sqlite_waits_its_turn_when_it_says_it_writes(
    sqlite_url: str, writes: bool
) -> None:
    """A savepoint opens SQLite's read transaction; another connection's commit in between
    makes its first write fail at once. ``transaction(writes=True)`` takes the write lock
    first, so the other writer waits instead."""
    from agora.db.engine import make_engine

    eng = make_engine(sqlite_url)
    migrate(eng)
    factory = session_factory(eng)
    with transaction(factory) as session:
        service.upsert_users(session, [UserIn(user_id="u0")])

    def other_writer() -> None:
        with transaction(factory) as session:
            service.upsert_users(session, [UserIn(user_id="u1")])

    def read_then_write() -> None:
        with transaction(factory, writes=writes) as session, session.begin_nested():
            session.scalars(select(User)).all()
            writer = threading.Thread(target=other_writer)
            writer.start()
            writer.join(timeout=0.5 if writes else 30)  # waits for our lock when we hold it
            service.upsert_users(session, [UserIn(user_id="u2")])
        writer.join()

    if writes:
        read_then_write()
        with factory() as session:
            assert set(session.scalars(select(User.external_id))) == {"u0", "u1", "u2"}
    else:
        with pytest.raises(OperationalError, match="database is locked"):
            read_then_write()


def test_feed_records_are_compressed_with_lz4_on_postgresql(postgres_url: str) -> None:
    """pglz took 3.5-10 ms per ~20 KB record, most of a full refresh on PostgreSQL; lz4 about
    0.2 ms (migration 0017). Down again, the column has PostgreSQL's default back."""
    from agora.db.engine import make_engine

    eng = make_engine(postgres_url)
    column = (
        "SELECT attcompression, attstorage FROM pg_attribute "
        "WHERE attrelid = 'feed_candidates'::regclass AND attname = 'payload'"
    )
    try:
        migrate(eng)
        with eng.connect() as conn:
            assert tuple(conn.exec_driver_sql(column).one()) == ("l", "x")
        downgrade(eng, "0016")
        with eng.connect() as conn:
            assert tuple(conn.exec_driver_sql(column).one()) == ("", "x")
    finally:
        eng.dispose()
