"""The bulk import (COPY) stores what the normal import stores, and refuses what it refuses."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import IntegrityError, OperationalError
from typer.testing import CliRunner

from agora.cli.main import app
from agora.config import Settings, get_settings
from agora.db.engine import make_engine, migrate, session_factory, transaction
from agora.db.partitions import ensure_event_partitions
from agora.ingest import bulk as bulk_module
from agora.ingest import event_ids
from agora.ingest.bulk import ANALYZED, NotBulkable, bulk_import
from agora.ingest.errors import ImportFailed
from agora.ingest.registry import load_any
from agora.ingest.schemas import EventIn
from agora.ingest.service import add_dataset, add_events, ensure_items, ensure_users

TYPES = Settings().event_types
NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
LINES: list[dict[str, Any]] = [
    {"kind": "user", "user_id": "u1", "created": "2024-04-01T09:00:00Z", "attributes": {"r": 1}},
    {"kind": "item", "item_id": "p1", "author_id": "writer", "title": "t", "tags": ["a", "b"]},
    {"kind": "group", "group_id": "g1", "name": "G"},
    {"kind": "membership", "group_id": "g1", "user_id": "u1"},
    {"kind": "edge", "source_id": "u1", "target_id": "u2", "type": "friend"},
    {"event_id": "e1", "user_id": "u1", "item_id": "p1", "type": "like", "timestamp": 1714557600},
    {
        "event_id": "e2",
        "user_id": 7,
        "item_id": "p1",
        "type": "rating",
        "value": 4,
        "timestamp": "2024-05-01T10:05:00+02:00",
        "context": {"surface": "feed", "n": [1, 2]},
    },
    {
        "event_id": "e3",
        "user_id": "ü ser",
        "item_id": "p2",
        "type": "view",
        "value": 2.5,
        "timestamp": 1714557600.123456,
    },  # a float time: read through the schema
    {
        "event_id": "e4",
        "user_id": "u2",
        "item_id": "p3",
        "type": " share ",
        "timestamp": "2024-05-01 10:00:00",
    },  # spellings the quick check leaves to the schema
    {"event_id": "e5", "user_id": "u3", "item_id": "p1", "type": "click"},  # no time: now
    {
        "event_id": "stored",
        "user_id": "u9",
        "item_id": "p9",
        "type": "view",
        "timestamp": "2024-02-03T04:05:06.5Z",
    },
    {
        "event_id": "e6",
        "user_id": "u1",
        "item_id": "p4",
        "type": "view",
        "timestamp": "2023-12-31T23:59:59Z",
    },
]


def _write(path: Path, lines: list[dict[str, Any]], raw: list[str] = ()) -> Path:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines) + "".join(raw))
    return path


@pytest.fixture
def two_stores(postgres_schemas, request: pytest.FixtureRequest) -> Iterator[tuple[Engine, Engine]]:
    """Two migrated stores holding one event (``"an-event"``, the default) or none
    (``"empty"``, as an indirect parameter)."""
    with postgres_schemas() as first, postgres_schemas() as second:
        engines = make_engine(first), make_engine(second)
        for engine in engines:
            migrate(engine)
            if getattr(request, "param", "an-event") == "empty":
                continue
            with transaction(session_factory(engine)) as s:  # one event stored before
                add_events(
                    s,
                    [
                        EventIn(
                            event_id="stored",
                            user_id="u0",
                            item_id="p0",
                            type="like",
                            timestamp=NOW,
                        )
                    ],
                    TYPES,
                )
        yield engines
        for engine in engines:
            engine.dispose()


def _contents(engine: Engine) -> dict[str, Any]:
    """What a store holds, by external ids: users and items in their ids' order (the bulk path
    writes events before the user and item records, so their internal ids may come in another
    order), events in internal id order (file order on both paths)."""
    with engine.connect() as conn:
        events = conn.execute(
            text(
                "SELECT e.event_id, u.external_id, i.external_id, e.type, e.value, e.timestamp, "
                "e.context::text FROM events e JOIN users u ON u.id = e.user_id "
                "JOIN items i ON i.id = e.item_id ORDER BY e.id"
            )
        ).all()
        users = conn.execute(
            text(
                "SELECT external_id, attributes::text, created < now() - interval '1 hour' "
                "FROM users ORDER BY external_id"
            )
        ).all()
        items = conn.execute(
            text(
                "SELECT i.external_id, a.external_id, i.title, i.tags::text FROM items i "
                "LEFT JOIN users a ON a.id = i.author_id ORDER BY i.external_id"
            )
        ).all()
        edges = conn.execute(text("SELECT count(*) FROM social_edges")).scalar()
        members = conn.execute(text("SELECT count(*) FROM memberships")).scalar()
        keys = conn.execute(
            text("SELECT count(*) FROM event_ids k JOIN events e USING (event_id, id)")
        ).scalar()
    return {
        "events": events,
        "users": users,
        "items": items,
        "edges": edges,
        "memberships": members,
        "keys": keys,
    }


@pytest.mark.parametrize("two_stores", ["an-event", "empty"], indirect=True)
@pytest.mark.parametrize(
    "batch_events", [bulk_module.BATCH_EVENTS, 2], ids=["one-batch", "batches-of-2"]
)
def test_bulk_import_stores_what_the_normal_import_stores(
    two_stores, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, batch_events: int
) -> None:
    """In one batch or in many (a re-sent event id in a later batch than its first line's), into
    a store that held an event (each batch's ids looked up, its users and items read from its
    staged rows) or none (the users and items a batch names first, from the reader)."""
    monkeypatch.setattr(bulk_module, "BATCH_EVENTS", batch_events)
    normal_store, bulk_store = two_stores
    held = _contents(bulk_store)["keys"]  # 1: the event "stored" is, 0: the store is empty
    path = _write(tmp_path / "mixed.jsonl", LINES)
    options = {"event_types": TYPES, "max_future_seconds": 300.0}
    with transaction(session_factory(normal_store)) as s:
        normal = add_dataset(s, load_any(path, **options), TYPES)
    with transaction(session_factory(bulk_store)) as s:
        bulk = bulk_import(s, path, TYPES)
    assert (
        bulk.written
        == normal.written
        == {"users": 1, "groups": 1, "items": 1, "edges": 2, "memberships": 1, "events": 7 - held}
    )
    assert bulk.duplicate_events == normal.duplicate_events == held
    stored, expected = _contents(bulk_store), _contents(normal_store)
    # the time of an event sent without one is the time of each write
    untimed = [i for i, row in enumerate(expected["events"]) if row[0] == "e5"]
    for rows in (stored["events"], expected["events"]):
        rows[untimed[0]] = rows[untimed[0]][:5] + rows[untimed[0]][6:]
    assert stored == expected
    order = ["e1", "e2", "e3", "e4", "e5", "e6"]
    order.insert(0 if held else 5, "stored")  # the stored event first, or as the file has it
    assert [row[0] for row in stored["events"]] == order
    assert stored["keys"] == 7

    with transaction(session_factory(bulk_store)) as s:  # the same file again: all stored
        again = bulk_import(s, path, TYPES)
    assert again.written["events"] == 0 and again.duplicate_events == 7
    assert _contents(bulk_store)["keys"] == 7


@pytest.mark.parametrize("two_stores", ["an-event", "empty"], indirect=True)
def test_ids_of_one_hash_are_told_apart_by_their_lines(
    two_stores, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every event id of one hash and two kept as text (the others as hashes, found again for
    each new id and read again from their lines): no event is taken for a duplicate it is not,
    and the store holds what the normal import stores."""
    monkeypatch.setattr(event_ids, "id_hash", lambda _: 7)
    monkeypatch.setattr(event_ids, "RECENT_IDS", 2)
    monkeypatch.setattr(bulk_module, "BATCH_EVENTS", 2)
    normal_store, bulk_store = two_stores
    held = _contents(bulk_store)["keys"]
    path = _write(tmp_path / "mixed.jsonl", LINES)
    with transaction(session_factory(normal_store)) as s:
        normal = add_dataset(s, load_any(path, event_types=TYPES, max_future_seconds=300.0), TYPES)
    with transaction(session_factory(bulk_store)) as s:
        bulk = bulk_import(s, path, TYPES)
    assert bulk.written == normal.written and bulk.written["events"] == 7 - held
    assert bulk.duplicate_events == normal.duplicate_events == held
    stored, expected = _contents(bulk_store), _contents(normal_store)
    for contents in (stored, expected):  # e5 came without a time: each store's is its write's
        contents["events"] = [row if row[0] != "e5" else row[:5] for row in contents["events"]]
    assert stored == expected


def test_an_id_repeated_batches_later_is_refused_before_its_batch_is_written(
    postgres_url, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An id used again long after its first line (hashed by then, among ids of one hash): the
    file is refused with the normal import's problems, in its order, the batch holding the
    repeat never written, and nothing stored."""
    monkeypatch.setattr(event_ids, "id_hash", len)
    monkeypatch.setattr(event_ids, "RECENT_IDS", 2)
    monkeypatch.setattr(bulk_module, "BATCH_EVENTS", 2)
    written: list[str] = []
    write = bulk_module._EventWriter.write

    def note_then_write(self, staged, batch):
        written.extend(line.split("\t")[0] for line in batch.lines)
        return write(self, staged, batch)

    monkeypatch.setattr(bulk_module._EventWriter, "write", note_then_write)
    engine = make_engine(postgres_url)
    migrate(engine)
    good = {"user_id": "u1", "item_id": "p1", "type": "view", "timestamp": 1714557600}
    path = _write(
        tmp_path / "again.jsonl",
        [
            *({"event_id": f"e{n}", **good} for n in range(8)),
            {"event_id": "e1", **good},  # line 9, in the fifth batch (1, then 2 a batch)
            {"event_id": "f0", **good, "type": "upvote"},
            {"event_id": "e6", **good},
        ],
    )
    with pytest.raises(ImportFailed) as normal:
        load_any(path, event_types=TYPES, max_future_seconds=300.0)
    with pytest.raises(ImportFailed) as bulk, transaction(session_factory(engine)) as s:
        bulk_import(s, path, TYPES)
    assert [str(p) for p in bulk.value.problems] == [str(p) for p in normal.value.problems]
    assert [p.line for p in bulk.value.problems] == [9, 10, 11]
    assert "duplicate event_id 'e1': first used on line 2" in str(bulk.value.problems[0])
    assert written == [f"e{n}" for n in range(7)]
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM events")).scalar() == 0
    engine.dispose()


_COUNT_ROW_TRIGGERS = """
CREATE TABLE row_trigger_calls (n int);
CREATE FUNCTION count_row_trigger() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN INSERT INTO row_trigger_calls VALUES (1); RETURN NULL; END $$;
CREATE TRIGGER count_rows AFTER INSERT ON events FOR EACH ROW EXECUTE FUNCTION count_row_trigger();
"""


def test_bulk_import_checks_keys_per_row_only_when_the_role_may_not_skip_it(
    two_stores, tmp_path: Path
) -> None:
    """Into months that have their partitions: a superuser's import skips the per-row triggers
    (the foreign-key checks among them); a plain role's keeps them; both store the same rows."""
    path = _write(tmp_path / "mixed.jsonl", LINES)
    months = [datetime(2023, 12, 1, tzinfo=UTC), datetime(2024, 5, 1, tzinfo=UTC)]
    for engine in two_stores:
        with engine.begin() as conn:
            conn.exec_driver_sql(_COUNT_ROW_TRIGGERS)
            ensure_event_partitions(conn, [*months, datetime.now(UTC)])  # e5 has no time: now
    superuser_store, plain_store = two_stores
    with plain_store.begin() as conn:
        conn.exec_driver_sql(
            "DO $$ BEGIN CREATE ROLE agora_bulk_plain NOLOGIN; "
            "EXCEPTION WHEN duplicate_object THEN NULL; END $$"
        )
        schema = conn.exec_driver_sql("SELECT current_schema()").scalar()
        conn.exec_driver_sql(f'GRANT ALL ON SCHEMA "{schema}" TO agora_bulk_plain')
        tables = conn.execute(
            text(
                "SELECT c.oid::regclass::text FROM pg_class c WHERE c.relkind IN ('r', 'p') "
                "AND c.relnamespace = CAST(:schema AS regnamespace)"
            ),
            {"schema": schema},
        ).scalars()
        for table in tables:  # the store's owner, as a deployment's migrating role would be
            conn.exec_driver_sql(f"ALTER TABLE {table} OWNER TO agora_bulk_plain")
    with transaction(session_factory(superuser_store)) as s:
        bulk_import(s, path, TYPES)
    with transaction(session_factory(plain_store)) as s:
        s.execute(text("SET LOCAL ROLE agora_bulk_plain"))
        bulk_import(s, path, TYPES)
    calls = []
    for engine in two_stores:
        with engine.connect() as conn:
            calls.append(conn.exec_driver_sql("SELECT count(*) FROM row_trigger_calls").scalar())
    assert calls == [0, 6]  # the six new events; "stored" was written before the trigger
    stored = [_contents(engine) for engine in two_stores]
    for contents in stored:  # e5 came without a time: each store's is its write's
        contents["events"] = [row if row[0] != "e5" else row[:5] for row in contents["events"]]
    assert stored[0] == stored[1]
    assert stored[0]["keys"] == 7


def _partition_shape(conn, name: str) -> dict[str, list[str]]:
    """A partition's indexes, constraints and triggers, its own name written as ``P``."""
    queries = {
        "indexes": "SELECT indexname || ' ' || indexdef FROM pg_indexes WHERE tablename = :t",
        "constraints": "SELECT conname || ' ' || pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = CAST(:t AS regclass)",
        "triggers": "SELECT tgname || ' ' || tgenabled::text FROM pg_trigger "
        "WHERE tgrelid = CAST(:t AS regclass) AND NOT tgisinternal",
    }
    return {
        kind: sorted(
            row.replace(name, "P") for row in conn.execute(text(query), {"t": name}).scalars()
        )
        for kind, query in queries.items()
    }


def test_bulk_import_makes_the_partitions_of_the_months_it_writes(postgres_url, tmp_path) -> None:
    """Months with no partition get theirs, indexed after the rows went in, and shaped as the
    partitions the store makes ahead (same indexes, foreign keys and triggers)."""
    engine = make_engine(postgres_url)
    migrate(engine)
    with engine.begin() as conn:
        ensure_event_partitions(conn, [datetime(2018, 12, 1, tzinfo=UTC)])
    times = ["2019-01-15", "2019-02-15", "2019-02-16", "2018-12-24"]  # the last month exists
    path = _write(
        tmp_path / "old.jsonl",
        [
            {"event_id": f"o{n}", "user_id": "u", "item_id": "p", "type": "view", "timestamp": t}
            for n, t in enumerate(times)
        ],
    )
    with transaction(session_factory(engine)) as s:
        bulk_import(s, path, TYPES)
    with engine.connect() as conn:
        homes = (
            conn.execute(text("SELECT tableoid::regclass::text FROM events ORDER BY id"))
            .scalars()
            .all()
        )
        made_ahead = _partition_shape(conn, "events_2018_12")
        shapes = [_partition_shape(conn, name) for name in ("events_2019_01", "events_2019_02")]
        loading = conn.execute(text("SELECT to_regclass('agora_bulk_new_months')")).scalar()
    assert homes == ["events_2019_01", "events_2019_02", "events_2019_02", "events_2018_12"]
    assert len(made_ahead["indexes"]) == 4 and len(made_ahead["constraints"]) >= 3
    assert shapes == [made_ahead, made_ahead]
    assert loading is None
    with pytest.raises(IntegrityError), engine.begin() as conn:  # their foreign keys hold
        conn.execute(
            text(
                "INSERT INTO events (event_id, user_id, item_id, type, timestamp, context) "
                "VALUES ('x', 999999, 1, 'view', '2019-01-02T00:00:00Z', '{}')"
            )
        )
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM events")).scalar() == 4
    engine.dispose()


@pytest.mark.parametrize("month", ["partitioned", "new"])
@pytest.mark.parametrize("before", ["an-event", "no-event"])
def test_an_event_id_a_concurrent_writer_stores_during_the_import_is_stored_once(
    postgres_url, tmp_path, monkeypatch: pytest.MonkeyPatch, month: str, before: str
) -> None:
    """The bulk path writes a batch's keys after its events: an event id another writer
    stores in between keeps that writer's row, and the import counts its own as stored before,
    whether its events went to a partition made ahead or to a month's new table, and whether
    the store held events (their ids looked up before each batch) or none (not looked up)."""
    engine = make_engine(postgres_url)
    migrate(engine)
    may = datetime(2024, 5, 1, tzinfo=UTC)
    if month == "partitioned":
        with engine.begin() as conn:
            ensure_event_partitions(conn, [may])
    factory = session_factory(engine)
    with transaction(factory) as s:  # the live writer's user and item exist already
        if before == "an-event":
            seed = EventIn(event_id="seed", user_id="live", item_id="p1", type="view")
            add_events(s, [seed], TYPES)
        else:
            ensure_users(s, ["live"])
            ensure_items(s, ["p1"])
    path = _write(
        tmp_path / "b.jsonl",
        [
            {
                "event_id": f"b{n}",
                "user_id": "u1",
                "item_id": "p1",
                "type": "view",
                "timestamp": 1714557600 + n,
            }
            for n in range(5)
        ],  # fmt: skip
    )
    write_keys = bulk_module._write_keys

    def write_live_then_the_keys(cur, tables):  # after the events, before their keys
        with transaction(factory) as live:
            add_events(
                live,
                [EventIn(event_id="b3", user_id="live", item_id="p1", type="like", timestamp=may)],
                TYPES,
            )
        return write_keys(cur, tables)

    monkeypatch.setattr(bulk_module, "_write_keys", write_live_then_the_keys)
    with transaction(factory) as s:
        summary = bulk_import(s, path, TYPES)
    assert summary.written["events"] == 4 and summary.duplicate_events == 1
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT e.event_id, u.external_id, e.type, k.id = e.id FROM events e "
                "JOIN users u ON u.id = e.user_id JOIN event_ids k USING (event_id) "
                "WHERE e.event_id LIKE 'b%' ORDER BY e.event_id"
            )
        ).all()
    assert rows == [
        ("b0", "u1", "view", True),
        ("b1", "u1", "view", True),
        ("b2", "u1", "view", True),
        ("b3", "live", "like", True),
        ("b4", "u1", "view", True),
    ]
    engine.dispose()


def test_a_user_or_item_an_earlier_batch_named_cannot_be_deleted_until_the_import_ends(
    postgres_url, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each user and item is locked once, by the batch that first names it; the lock holds
    through the later batches (an erasure of them waits), as each event's key check would."""
    engine = make_engine(postgres_url)
    migrate(engine)
    factory = session_factory(engine)
    with transaction(factory) as s:  # stored before the import (the import's own rows are
        ensure_users(s, ["u1", "u2"])  # invisible to others until it commits)
        ensure_items(s, ["p1", "p2"])
    lines = [
        {"event_id": f"e{n}", "user_id": user, "item_id": item, "type": "view"}
        for n, (user, item) in enumerate([("u1", "p1"), ("u2", "p2"), ("u2", "p2"), ("u3", "p3")])
    ]
    path = _write(tmp_path / "b.jsonl", lines)
    monkeypatch.setattr(bulk_module, "BATCH_EVENTS", 2)
    write_keys = bulk_module._write_keys
    refused: list[str] = []

    def delete_then_the_keys(cur, tables):  # after each batch's events, before their keys
        with engine.connect() as other:
            other.execute(text("SET lock_timeout = '300ms'"))
            for statement in (
                "DELETE FROM users WHERE external_id = 'u1'",
                "DELETE FROM items WHERE external_id = 'p1'",
            ):
                try:
                    with other.begin_nested():
                        other.execute(text(statement))
                except OperationalError as error:
                    assert "lock timeout" in str(error)
                    refused.append(statement)
            other.rollback()
        return write_keys(cur, tables)

    monkeypatch.setattr(bulk_module, "_write_keys", delete_then_the_keys)
    with transaction(factory) as s:
        summary = bulk_import(s, path, TYPES)
    assert summary.written["events"] == 4
    assert len(refused) == 2 * 3  # in each of the three batches (the first a quarter size: 1)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM users")).scalar() == 3
    engine.dispose()


def test_bulk_import_refuses_bad_lines_with_the_normal_messages(
    postgres_url, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing is stored, not even the batches written before the first bad line was read."""
    monkeypatch.setattr(bulk_module, "BATCH_EVENTS", 1)
    engine = make_engine(postgres_url)
    migrate(engine)
    good = {"user_id": "u1", "item_id": "p1", "type": "view", "timestamp": 1714557600}
    path = _write(
        tmp_path / "bad.jsonl",
        [
            *({"event_id": f"early{n}", **good} for n in range(3)),
            {"event_id": "a", **good},
            {"event_id": "b", **good, "type": "upvote"},
            {"event_id": "a", **good},
            {"event_id": "c", **good, "timestamp": 4102444800 + 10},
            {"event_id": "d/x", **good},
            {"event_id": "e", **good, "value": "high"},
            {"event_id": "f", **good, "nickname": "x"},
            {"event_id": "g", **good, "timestamp": "2999-01-01T00:00:00Z"},
        ],
        ['{"event_id": "h", "user_id": \n', '{"event_id": "i", "user_id": "u\\u0000"}\n'],
    )
    with pytest.raises(ImportFailed) as normal:
        load_any(path, event_types=TYPES, max_future_seconds=300.0)
    with pytest.raises(ImportFailed) as bulk, transaction(session_factory(engine)) as s:
        bulk_import(s, path, TYPES)
    assert [str(p) for p in bulk.value.problems] == [str(p) for p in normal.value.problems]
    assert len(bulk.value.problems) >= 9
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM events")).scalar() == 0
    engine.dispose()


def test_bulk_import_keeps_what_copy_text_must_escape(postgres_url, tmp_path) -> None:
    """Tabs, line ends, backslashes and ``\\N`` in a context reach the store unchanged, as do a
    large value and a time with microseconds (the rows travel in COPY's text format)."""
    engine = make_engine(postgres_url)
    migrate(engine)
    context = {"q": "tab\there back\\slash\nline\r end \\N", "k\t": ["\\."]}
    line = {
        "event_id": "esc",
        "user_id": "ü",
        "item_id": "p",
        "type": "rating",
        "value": 1.5e16,
        "timestamp": "2024-05-01T10:00:00.000123+02:00",
        "context": context,
    }
    with transaction(session_factory(engine)) as s:
        bulk_import(s, _write(tmp_path / "esc.jsonl", [line]), TYPES)
    with engine.connect() as conn:
        stored = conn.execute(
            text(
                "SELECT e.context::text, e.value, e.timestamp, u.external_id FROM events e "
                "JOIN users u ON u.id = e.user_id"
            )
        ).one()
    assert json.loads(stored[0]) == context
    assert stored[1:] == (1.5e16, datetime(2024, 5, 1, 8, 0, 0, 123, tzinfo=UTC), "ü")
    engine.dispose()


def test_bulk_import_needs_postgresql(sqlite_url: str, tmp_path: Path) -> None:
    engine = make_engine(sqlite_url)
    migrate(engine)
    path = _write(tmp_path / "e.jsonl", LINES[5:6])
    with pytest.raises(NotBulkable), transaction(session_factory(engine)) as s:
        bulk_import(s, path, TYPES)


@pytest.fixture
def fresh_settings() -> Iterator[None]:
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.mark.usefixtures("fresh_settings")
def test_agora_import_bulk_on_the_command_line(postgres_url, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("AGORA_DATABASE_URL", postgres_url)
    monkeypatch.setenv("AGORA_DATA_DIR", str(tmp_path))
    path = _write(tmp_path / "events.jsonl", LINES[5:])
    result = CliRunner().invoke(app, ["import", str(path), "--bulk"])
    assert result.exit_code == 0, result.output
    assert "7 events; 0 events already stored" in result.output
    bad = _write(tmp_path / "bad.jsonl", [{**LINES[5], "type": "upvote"}])
    result = CliRunner().invoke(app, ["import", str(bad), "--bulk"])
    assert result.exit_code == 2
    assert "bad.jsonl:1: field 'type': unknown event type 'upvote'" in result.output


def test_bulk_import_leaves_the_tables_it_filled_analysed(postgres_url, tmp_path) -> None:
    """The planner knows the new rows at once (autovacuum may be a minute away, or off)."""
    engine = make_engine(postgres_url)
    migrate(engine)
    path = _write(
        tmp_path / "some.jsonl",
        [
            {"kind": "edge", "source_id": "u1", "target_id": "u2", "type": "follow"},
            *(
                {"event_id": f"e{n}", "user_id": f"u{n}", "item_id": f"p{n % 2}", "type": "view"}
                for n in range(4)
            ),
        ],
    )
    rows = "SELECT reltuples FROM pg_class WHERE oid = to_regclass(:table)"
    plain = [t for t in ANALYZED if t != "events"]  # a partitioned table keeps no row count
    with engine.connect() as conn:  # never analysed: -1
        assert {conn.scalar(text(rows), {"table": t}) for t in plain} == {-1}
    with transaction(session_factory(engine)) as s:
        bulk_import(s, path, TYPES)
    with engine.connect() as conn:
        tuples = {t: conn.scalar(text(rows), {"table": t}) for t in plain}
    assert tuples == {"event_ids": 4, "users": 4, "items": 2, "social_edges": 1}
    engine.dispose()
