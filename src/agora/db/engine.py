"""Database engine and sessions: SQLite (WAL) by default, PostgreSQL by URL, one code path."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from filelock import FileLock
from sqlalchemy import (
    JSON,
    DateTime,
    Engine,
    Table,
    Text,
    bindparam,
    cast,
    create_engine,
    event,
    func,
    select,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from agora.config import Settings
from agora.db.pseudonyms import IdSealer, check_store

MIGRATIONS = Path(__file__).parent / "migrations"
#: How long a process waits for another one's migration before giving up.
MIGRATION_LOCK_SECONDS = 600.0


class UtcSqliteDateTime(sqlite.DATETIME):
    """SQLite keeps no time zone: ``DateTime(timezone=True)`` values are stored in UTC and read
    back aware (UTC), as PostgreSQL gives them, so no naive datetime leaves the store."""

    cache_ok = True

    def bind_processor(self, dialect: Any) -> Callable[[Any], Any] | None:
        process = super().bind_processor(dialect)
        if not self.timezone:
            return process

        def bind(value: Any) -> Any:
            if isinstance(value, datetime) and value.tzinfo is not None:
                value = value.astimezone(UTC).replace(tzinfo=None)
            return process(value) if process else value

        return bind

    def result_processor(self, dialect: Any, coltype: Any) -> Callable[[Any], Any] | None:
        process = super().result_processor(dialect, coltype)
        if not self.timezone:
            return process

        def result(value: Any) -> Any:
            value = process(value) if process else value
            if isinstance(value, datetime) and value.tzinfo is None:
                value = value.replace(tzinfo=UTC)
            return value

        return result


def open_store(settings: Settings) -> Engine:
    """An engine on the configured store, its schema brought up to date and its user ids
    checked against ``settings`` (sealed under the same secret, or plain on both sides)."""
    sealer = (
        IdSealer(settings.id_secret.get_secret_value())
        if settings.pseudonymize_ids and settings.id_secret
        else None
    )
    engine = make_engine(settings.resolved_database_url, ids=sealer)
    migrate(engine)
    check_store(engine)
    return engine


def make_engine(url: str, ids: IdSealer | None = None) -> Engine:
    """An engine for ``url``; SQLite gets WAL, foreign keys and a busy timeout, and its folder.
    ``ids``: user ids are sealed with it on the way in and opened on the way out
    (:mod:`agora.db.pseudonyms`)."""
    engine = _engine(url)
    engine.dialect.agora_ids = ids  # type: ignore[attr-defined]
    return engine


def _engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        engine.dialect.colspecs = {**engine.dialect.colspecs, DateTime: UtcSqliteDateTime}

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record) -> None:  # noqa: ANN001
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    engine = create_engine(url, pool_pre_ping=True)
    if engine.dialect.driver == "psycopg":
        event.listen(engine, "connect", _check_client)
    return engine


#: How often a PostgreSQL backend running a statement checks that its client is still there.
#: Without it, a query of a killed process runs to its end: at 20M events the refresher's
#: read of every user ran on for 22 minutes after its `agora worker` was stopped, five of them
#: at once after five server restarts, taking the CPU the next server's requests needed.
CLIENT_CHECK = "10s"


def _check_client(dbapi_conn: Any, _record: Any) -> None:  # noqa: ANN401 - a DBAPI connection
    """Have the backend check its client every :data:`CLIENT_CHECK` during a statement
    (``client_connection_check_interval``, PostgreSQL 14 and later; older servers lack it)."""
    if dbapi_conn.info.server_version >= 140000:
        dbapi_conn.execute(f"SET client_connection_check_interval = '{CLIENT_CHECK}'")
        dbapi_conn.commit()


def display_url(url: str) -> str:
    """``url`` safe to print or log: its password masked (``postgresql://user:***@host/db``)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - not a URL SQLAlchemy can parse: show nothing of it
        return "<database URL>"


def alembic_config(engine: Engine) -> Config:
    """Alembic configuration pointing at the packaged migrations and this engine."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def migrate(engine: Engine, revision: str = "head") -> None:
    """Bring the schema up to ``revision`` (Alembic upgrade), one process at a time: every
    worker of ``agora serve --workers N`` migrates at start, and the later ones find it done."""
    with migration_lock(engine):
        command.upgrade(alembic_config(engine), revision)


@contextmanager
def migration_lock(engine: Engine, timeout: float = MIGRATION_LOCK_SECONDS) -> Iterator[None]:
    """Held while one process migrates the store: a PostgreSQL advisory lock per schema (on its
    own connection, released at the end or when the process dies), a lock file beside a SQLite
    file (``<file>.migrate.lock``); an in-memory SQLite has nothing to share."""
    if engine.dialect.name == "postgresql":
        key = text("SELECT hashtext('agora.migrate:' || current_schema())")
        with engine.connect() as conn:
            conn.execute(text(f"SET lock_timeout = '{int(timeout)}s'"))
            lock_id = conn.execute(key).scalar_one()
            conn.execute(text("SELECT pg_advisory_lock(:id)"), {"id": lock_id})
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": lock_id})
                conn.rollback()
        return
    database = engine.url.database
    if engine.dialect.name == "sqlite" and database and database != ":memory:":
        with FileLock(f"{database}.migrate.lock", timeout=timeout):
            yield
        return
    yield


def downgrade(engine: Engine, revision: str = "base") -> None:
    """Take the schema down to ``revision`` (Alembic downgrade)."""
    command.downgrade(alembic_config(engine), revision)


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded objects usable after commit."""
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session], *, writes: bool = False) -> Iterator[Session]:
    """A session whose work commits on success and rolls back entirely on any error.

    ``writes``: on SQLite, take the write lock first (``BEGIN IMMEDIATE``, waiting up to the
    busy timeout for another writer). A transaction that reads and then writes, such as one
    opened by a savepoint, otherwise fails at its first write ("database is locked", at once,
    no waiting) whenever another connection committed since its first read."""
    with factory() as session, session.begin():
        if writes and session.get_bind().dialect.name == "sqlite":
            session.connection().exec_driver_sql("BEGIN IMMEDIATE")
        yield session


def insert_for(session: Session, table: Any) -> Any:
    """INSERT with ON CONFLICT support for the session's dialect (SQLite or PostgreSQL)."""
    module = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    return module.insert(table)


#: Rows per INSERT statement where they go in row by row (keeps SQLite under its bound-parameter
#: limit).
CHUNK = 2000


def upsert_rows(
    session: Session,
    table: Table,
    rows: Sequence[dict[str, Any]],
    key: tuple[str, ...],
    update: tuple[str, ...],
) -> None:
    """Create or replace ``rows`` (dicts with the same columns) of ``table``: where ``key`` is
    stored already, only the columns of ``update`` are replaced. A key repeated in ``rows`` is
    written once with its last values, as writing them one after the other leaves it.

    PostgreSQL takes all of them in one statement over one array per column, rows inserted in
    the order given (20k items and 68k edges of an import: one statement each, not one per
    row); SQLite :data:`CHUNK` rows per statement."""
    if not rows:
        return
    latest = list({tuple(row[c] for c in key): row for row in rows}.values())
    columns = tuple(latest[0])
    dialect = session.get_bind().dialect.name
    stmt = _upsert(dialect, table, columns, key, update)
    if dialect == "postgresql":
        arrays = {c: [row[c] for row in latest] for c in columns}
        for c in columns:  # as text: a list value would read as one more array dimension
            if isinstance(table.c[c].type, JSON):
                arrays[c] = [json.dumps(value) for value in arrays[c]]
        session.execute(stmt, arrays)
        return
    for start in range(0, len(latest), CHUNK):
        session.execute(stmt, latest[start : start + CHUNK])


@cache
def _upsert(
    dialect: str,
    table: Table,
    columns: tuple[str, ...],
    key: tuple[str, ...],
    update: tuple[str, ...],
) -> Any:
    """The statement of :func:`upsert_rows`, built once per dialect, table and columns."""
    if dialect == "postgresql":
        arrays = [_unnest(table.c[c]).label(c) for c in columns]
        stmt = postgresql.insert(table).from_select(list(columns), select(*arrays))
    else:
        stmt = sqlite.insert(table)
    return stmt.on_conflict_do_update(
        index_elements=list(key), set_={c: stmt.excluded[c] for c in update}
    )


def _unnest(column: Any) -> Any:
    """``unnest`` of an array parameter named as ``column``, of its type (JSON as text, cast)."""
    if isinstance(column.type, JSON):
        return cast(func.unnest(bindparam(column.name, type_=postgresql.ARRAY(Text))), column.type)
    return func.unnest(bindparam(column.name, type_=postgresql.ARRAY(column.type)))


def insert_new(session: Session, table: Table, key: tuple[str, ...]) -> Any:
    """``INSERT ... ON CONFLICT (key) DO NOTHING`` into ``table`` for the session's dialect
    (``key`` empty: any conflict, as on PostgreSQL's partitioned events, see db/partitions.py),
    built once per dialect and table: a statement built afresh costs more to build and to key
    for the compiled cache than a small insert costs to run (hot write paths use this)."""
    return _insert_new(session.get_bind().dialect.name, table, key)


@cache
def _insert_new(dialect: str, table: Table, key: tuple[str, ...]) -> Any:
    module = postgresql if dialect == "postgresql" else sqlite
    return module.insert(table).on_conflict_do_nothing(index_elements=list(key) or None)
