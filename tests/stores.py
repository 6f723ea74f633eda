"""Stores made once per run (*templates*: a migrated store, the bundled community) and copied
into a test's empty store instead of being made again for each test.

Migrating an empty store costs ~0.1 s on SQLite and ~0.4 s on PostgreSQL (mostly the server's
DDL), importing the bundled community seconds more, and hundreds of tests start from one of a
few such stores. A test's store (``sqlite_url``, ``postgres_url``) is empty until a fixture
calls :meth:`StoreTemplates.copy_into`; it then holds what the template holds and nothing else:

- SQLite: the template's file, copied byte for byte to the test's path (the template's engines
  closed first, so its WAL is checkpointed into the file and removed).
- PostgreSQL: the test's empty schema is dropped and a schema of a run-wide pool, filled as the
  template, is renamed to its name. A pool schema a test gave back is emptied (every table's
  rows deleted, partitions the test made dropped) and compared with the template's shape
  (tables, columns, constraints, indexes, triggers, functions, sequences, owners, grants, the
  migration version): one whose shape the test changed (a downgrade, an ``ALTER TABLE``) is
  dropped, never reused. The template's partitions and rows are then copied in, with the same
  ids, and its sequences set where the template's stand.
"""

from __future__ import annotations

import difflib
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.exc import OperationalError

from agora.config import Settings
from agora.db.engine import make_engine, migrate, session_factory, transaction
from agora.ingest.registry import load_any
from agora.ingest.service import add_dataset

#: The Cardano Stack Exchange dump shipped in the repository.
BUNDLED_DUMP = Path(__file__).resolve().parents[1] / "data" / "cardano-se"

_IN_SCHEMA = "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = current_schema()"

#: The shape of the current schema, one line per thing a migration makes and a test could
#: change (the events partitions apart: a copy gets the template's).
SHAPE = f"""
SELECT line FROM (
  SELECT concat_ws(' ', 'relation', c.relname, c.relkind, pg_get_userbyid(c.relowner),
         c.relacl::text, c.relrowsecurity) AS line
    FROM pg_class c {_IN_SCHEMA} AND NOT c.relispartition
  UNION ALL
  SELECT concat_ws(' ', 'column', c.relname, a.attnum, a.attname,
         format_type(a.atttypid, a.atttypmod), a.attnotnull, a.attisdropped, a.attidentity,
         pg_get_expr(d.adbin, d.adrelid))
    FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
    LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
    {_IN_SCHEMA} AND a.attnum > 0 AND c.relkind IN ('r', 'p', 'v', 'm') AND NOT c.relispartition
  UNION ALL
  SELECT concat_ws(' ', 'constraint', c.relname, o.conname, pg_get_constraintdef(o.oid))
    FROM pg_constraint o JOIN pg_class c ON c.oid = o.conrelid {_IN_SCHEMA}
    AND NOT c.relispartition
  UNION ALL
  SELECT 'index ' || replace(pg_get_indexdef(i.indexrelid), current_schema() || '.', '')
    FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid {_IN_SCHEMA} AND NOT c.relispartition
  UNION ALL
  SELECT concat_ws(' ', 'trigger', t.tgenabled,
         replace(pg_get_triggerdef(t.oid), current_schema() || '.', ''))
    FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid {_IN_SCHEMA} AND NOT t.tgisinternal
    AND NOT c.relispartition
  UNION ALL
  SELECT concat_ws(' ', 'function', p.proname, md5(p.prosrc))
    FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
    WHERE n.nspname = current_schema()
  UNION ALL
  SELECT concat_ws(' ', 'sequence', s.sequencename, s.data_type, s.start_value,
         s.increment_by, s.min_value, s.max_value, s.cycle)
    FROM pg_sequences s WHERE s.schemaname = current_schema()
  UNION ALL
  SELECT concat_ws(' ', 'owned', c.relname, r.relname, d.refobjsubid)
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = c.oid
    JOIN pg_class r ON r.oid = d.refobjid
    WHERE n.nspname = current_schema() AND c.relkind = 'S' AND d.deptype = 'a'
  UNION ALL
  SELECT concat_ws(' ', 'type', t.typname, t.typtype)
    FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
    WHERE n.nspname = current_schema() AND t.typrelid = 0 AND t.typelem = 0
  UNION ALL
  SELECT concat_ws(' ', 'schema', pg_get_userbyid(n.nspowner), n.nspacl::text)
    FROM pg_namespace n WHERE n.nspname = current_schema()
  UNION ALL
  SELECT 'version ' || version_num FROM alembic_version
) AS shape ORDER BY line
"""


def read_shape(conn: Connection) -> list[str]:
    """:data:`SHAPE` of the connection's schema."""
    return list(conn.execute(text(SHAPE)).scalars())


_TABLES = f"""
SELECT c.relname FROM pg_class c {_IN_SCHEMA}
AND c.relkind IN ('r', 'p') AND NOT c.relispartition AND c.relname <> 'alembic_version'
ORDER BY c.relname
"""
_PARTITIONS = f"""
SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_class c {_IN_SCHEMA}
AND c.relispartition AND c.relkind IN ('r', 'p') ORDER BY c.relname
"""
_SEQUENCES = """
SELECT s.sequencename, s.start_value, s.last_value FROM pg_sequences s
WHERE s.schemaname = current_schema() ORDER BY s.sequencename
"""


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def schema_url(base_url: str, schema: str) -> str:
    """``base_url`` with ``schema`` as the search path of every connection."""
    return f"{base_url}?options=-csearch_path%3D{schema}"


@dataclass
class _PostgresState:
    """What one schema holds, read once: its tables, partitions (name -> bound) and sequences
    (name -> (start, last value or None when none was drawn)), and its shape."""

    tables: list[str]
    filled: list[str]
    partitions: dict[str, str]
    sequences: dict[str, tuple[int, int | None]]
    shape: list[str]

    @classmethod
    def read(cls, conn: Connection) -> _PostgresState:
        tables = list(conn.execute(text(_TABLES)).scalars())
        filled = [
            table
            for table in tables
            if conn.execute(text(f"SELECT EXISTS (SELECT 1 FROM {_quote(table)})")).scalar()
        ]
        return cls(
            tables=tables,
            filled=filled,
            partitions=dict(conn.execute(text(_PARTITIONS)).all()),
            sequences={name: (start, last) for name, start, last in conn.execute(text(_SEQUENCES))},
            shape=read_shape(conn),
        )


@dataclass
class PostgresTemplate:
    """A store made once in a schema of its own, and what it holds (copied into pool schemas)."""

    schema: str
    state: _PostgresState


@dataclass
class PostgresPool:
    """Schemas on one PostgreSQL server: the tests' own (:meth:`test_schema`, empty until a copy
    takes their place) and pooled copies of templates, each lent to one test at a time and
    refilled for the next. :meth:`close` drops every schema it made."""

    base_url: str
    free: list[str] = field(default_factory=list)
    lent: set[str] = field(default_factory=set)
    made: set[str] = field(default_factory=set)
    admin: Engine = field(init=False)

    def __post_init__(self) -> None:
        self.admin = create_engine(self.base_url, isolation_level="AUTOCOMMIT")

    def _ddl(self, statement: str) -> None:
        with self.admin.connect() as conn:
            conn.execute(text(statement))

    def _new_schema(self, prefix: str) -> str:
        schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
        self._ddl(f"CREATE SCHEMA {_quote(schema)}")
        self.made.add(schema)
        return schema

    def _drop(self, schema: str) -> None:
        self._ddl(f"DROP SCHEMA {_quote(schema)} CASCADE")
        self.made.discard(schema)

    def _rename(self, schema: str, to: str) -> None:
        self._ddl(f"ALTER SCHEMA {_quote(schema)} RENAME TO {_quote(to)}")
        self.made.discard(schema)
        self.made.add(to)

    def template(self, build: Callable[[str], None]) -> PostgresTemplate:
        """A new schema filled by ``build(url)``, read once to be copied."""
        schema = self._new_schema("agora_template")
        build(schema_url(self.base_url, schema))
        engine = make_engine(schema_url(self.base_url, schema))
        with engine.connect() as conn:
            state = _PostgresState.read(conn)
        engine.dispose()
        return PostgresTemplate(schema, state)

    @contextmanager
    def test_schema(self) -> Iterator[str]:
        """A URL to a new, empty schema for one test; afterwards a copy that took its place goes
        back to the pool, anything else is dropped."""
        schema = self._new_schema("agora_test")
        try:
            yield schema_url(self.base_url, schema)
        finally:
            if schema in self.lent:
                self.lent.remove(schema)
                pooled = f"agora_pool_{uuid.uuid4().hex[:12]}"
                self._rename(schema, pooled)
                self.free.append(pooled)
            else:
                self._drop(schema)

    def copy_into(self, schema: str, template: PostgresTemplate) -> None:
        """Replace the empty ``schema`` by a pooled copy of ``template`` under its name."""
        with self.admin.connect() as conn:
            held = conn.execute(
                text("SELECT count(*) FROM pg_class WHERE relnamespace = to_regnamespace(:s)"),
                {"s": schema},
            ).scalar_one()
        assert held == 0, f"{schema} is not empty: the copy of a template must come first"
        copy = self._acquire(template)
        self._drop(schema)
        self._rename(copy, schema)
        self.lent.add(schema)

    def _acquire(self, template: PostgresTemplate) -> str:
        """A pooled schema holding exactly what ``template`` holds: a free one emptied and
        refilled, or, when none is free, a new one migrated and filled (its shape must then equal
        the template's)."""
        while self.free:
            schema = self.free.pop()
            try:
                if self._refill(schema, template):
                    return schema
            except OperationalError:  # a connection the test left open holds a lock on it
                continue  # left to close()
            self._drop(schema)  # its shape was changed by the test that had it
        schema = self._new_schema("agora_pool")
        engine = make_engine(schema_url(self.base_url, schema))
        migrate(engine)
        engine.dispose()
        if not self._refill(schema, template):
            engine = make_engine(schema_url(self.base_url, schema))
            with engine.connect() as conn:
                shape = read_shape(conn)
            engine.dispose()
            diff = "\n".join(difflib.unified_diff(template.state.shape, shape, lineterm=""))
            raise AssertionError(f"a migrated schema differs from {template.schema}:\n{diff}")
        return schema

    def _refill(self, schema: str, template: PostgresTemplate) -> bool:
        """Empty ``schema`` and copy ``template`` into it; False when its shape differs."""
        engine = make_engine(schema_url(self.base_url, schema))
        try:
            with engine.begin() as conn:
                return self._refill_on(conn, template)
        finally:
            engine.dispose()

    def _refill_on(self, conn: Connection, template: PostgresTemplate) -> bool:
        want = template.state
        conn.execute(text("SET LOCAL lock_timeout = '10s'"))
        # no trigger and no foreign key check while rows are deleted and copied: the copied rows
        # passed them in the template
        conn.execute(text("SET LOCAL session_replication_role = replica"))
        if read_shape(conn) != want.shape:
            return False
        have = dict(conn.execute(text(_PARTITIONS)).all())
        for name, bound in have.items():  # partitions the test made, then those of the template
            if want.partitions.get(name) != bound:
                conn.execute(text(f"DROP TABLE {_quote(name)}"))
        for name, bound in want.partitions.items():
            if have.get(name) != bound:
                conn.execute(text(f"CREATE TABLE {_quote(name)} PARTITION OF events {bound}"))
        conn.execute(text(";".join(f"DELETE FROM {_quote(t)}" for t in want.tables)))
        source = _quote(template.schema)
        for table in map(_quote, want.filled):
            conn.execute(text(f"INSERT INTO {table} SELECT * FROM {source}.{table}"))
        # each sequence where the template's stands: never drawn (its start, not called) or
        # at its last value
        for name, (start, last) in want.sequences.items():
            value, called = (start, False) if last is None else (last, True)
            conn.execute(
                text("SELECT setval(:name, :value, :called)"),
                {"name": _quote(name), "value": value, "called": called},
            )
        return True

    def close(self) -> None:
        for schema in list(self.made):
            self._drop(schema)
        self.admin.dispose()


class StoreTemplates:
    """The run's templates: ``copy_into(url, name, build)`` makes the empty store at ``url`` (a
    test's ``sqlite_url`` or ``postgres_url``) a copy of the template ``name``, which
    ``build(url)`` makes in an empty store the first time it is asked for."""

    def __init__(self, folder: Path, postgres_url: str) -> None:
        self.folder = folder
        self.postgres_url = postgres_url
        self.builds: dict[str, Callable[[str], None]] = {}
        self.copies: dict[str, str] = {}  # test store URL -> the template copied into it
        self.files: dict[str, Path] = {}
        self.schemas: dict[str, PostgresTemplate] = {}
        self.pool: PostgresPool | None = None

    def postgres_pool(self) -> PostgresPool:
        if self.pool is None:
            self.pool = PostgresPool(self.postgres_url)
        return self.pool

    def copy_into(self, url: str, name: str, build: Callable[[str], None]) -> None:
        """Make the empty store at ``url`` a copy of the template ``name`` (nothing to do when it
        already is one: two fixtures of a test may both ask for it)."""
        assert self.builds.setdefault(name, build) is build, f"two builds of the template {name}"
        if url in self.copies:
            assert self.copies[url] == name, f"{url} is a copy of {self.copies[url]}, not {name}"
            return
        self.copies[url] = name
        if url.startswith("sqlite"):
            if name not in self.files:
                path = self.folder / f"{name}.db"
                build(f"sqlite:///{path}")
                assert not Path(f"{path}-wal").exists(), f"{name}: an engine on it is still open"
                self.files[name] = path
            target = Path(url.split("///", 1)[1])
            assert not target.exists(), f"{target} exists: the copy of a template must come first"
            target.parent.mkdir(parents=True, exist_ok=True)  # as make_engine does
            shutil.copyfile(self.files[name], target)
            return
        pool = self.postgres_pool()
        if name not in self.schemas:
            self.schemas[name] = pool.template(build)
        pool.copy_into(url.rsplit("search_path%3D", 1)[1], self.schemas[name])

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()


def migrated(url: str) -> None:
    """Migrate the empty store at ``url``: the ``migrated`` template."""
    engine = make_engine(url)
    migrate(engine)
    engine.dispose()


def bundled_community(url: str) -> None:
    """Migrate the empty store at ``url`` and import the bundled community into it, every event
    type and time kept: the ``community`` template."""
    engine = make_engine(url)
    migrate(engine)
    settings = Settings()
    with transaction(session_factory(engine)) as session:
        dataset = load_any(BUNDLED_DUMP, None, event_types=settings.event_types)
        add_dataset(session, dataset, settings.event_types, float("inf"))
    engine.dispose()
