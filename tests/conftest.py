"""Shared fixtures: real databases (SQLite file and the PostgreSQL server), real data folders."""

from __future__ import annotations

import contextlib
import functools
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from live_server import LiveServer, kill_server, start_server
from spark_jvm import SPARK_TEST_JVM
from sqlalchemy import Engine, create_engine, text
from stores import StoreTemplates, bundled_community, migrated

from agora.db.engine import make_engine

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
SHARED_BENCHMARKS = REPO.parent / "shared" / "benchmarks"
BUNDLED_DUMP = REPO / "data" / "cardano-se"

POSTGRES_URL = os.environ.get(
    "AGORA_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


@functools.cache
def _postgres_problem() -> str | None:
    """Why the PostgreSQL server cannot be reached, or None: asked once per run (a connection
    costs ~7 ms and hundreds of tests ask; a server gone later fails them as they connect)."""
    try:
        engine = create_engine(POSTGRES_URL)
        with engine.connect() as conn:
            conn.execute(text("select 1"))
        engine.dispose()
    except Exception as exc:  # noqa: BLE001 - any connection failure means "not reachable"
        return f"PostgreSQL at {POSTGRES_URL} is not reachable: {exc.__class__.__name__}: {exc}"
    return None


def _postgres_or_skip() -> None:
    """Skip (or fail in CI) when the PostgreSQL server cannot be reached."""
    message = _postgres_problem()
    if message is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(message + " (CI=true: a missing PostgreSQL is a failure)")
    pytest.skip(message)


REDIS_URL = os.environ.get("AGORA_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


@pytest.fixture
def redis_url() -> Iterator[str]:
    """The real Redis server (database 15), emptied after the test; skipped (failed under
    CI=true) when it cannot be reached."""
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.RedisError as exc:
        message = f"Redis at {REDIS_URL} is not reachable: {exc}"
        if os.environ.get("CI") == "true":
            pytest.fail(message + " (CI=true: a missing Redis is a failure)")
        pytest.skip(message)
    try:
        yield REDIS_URL
    finally:
        client.flushdb()
        client.close()


@pytest.fixture(scope="session")
def spark() -> Iterator[SparkSession]:
    """One local[2] Spark session for the whole run (a JVM takes ~6 s to start), its JVM
    started with :data:`SPARK_TEST_JVM`; skipped, or failed under CI=true, when pyspark, Java or
    the JDBC drivers are missing."""
    from agora.db.spark.session import SparkUnavailable, check_spark, spark_session

    try:
        check_spark()
    except SparkUnavailable as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{exc} (CI=true: a missing Spark or Java is a failure)")
        pytest.skip(str(exc))
    with contextlib.ExitStack() as stack:
        with pytest.MonkeyPatch.context() as env:  # for this JVM only, not the tests' processes
            env.setenv("JAVA_TOOL_OPTIONS", SPARK_TEST_JVM)
            session = stack.enter_context(
                spark_session("local[2]", "agora-tests", driver_memory="2g")
            )
        yield session


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'agora.db'}"


@contextlib.contextmanager
def postgres_schema() -> Iterator[str]:
    """A URL to a fresh, empty schema on the real PostgreSQL server, dropped afterwards
    (skipped, or failed under CI=true, when the server cannot be reached)."""
    _postgres_or_skip()
    schema = f"agora_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(scope="session")
def postgres_schemas() -> Callable[[], contextlib.AbstractContextManager[str]]:
    """:func:`postgres_schema` for fixtures of a wider scope than one test."""
    return postgres_schema


@pytest.fixture(scope="session")
def store_templates(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StoreTemplates]:
    """Stores made once per run and copied into the tests' empty stores (``tests/stores.py``),
    and the run's pool of PostgreSQL schemas, all dropped at the end."""
    templates = StoreTemplates(tmp_path_factory.mktemp("store-templates"), POSTGRES_URL)
    yield templates
    templates.close()


@pytest.fixture
def postgres_url(store_templates: StoreTemplates) -> Iterator[str]:
    """A URL to a fresh, empty schema on the real PostgreSQL server of this test's own, dropped
    afterwards (or, once a copy of a template took its place, given back to the run's pool)."""
    _postgres_or_skip()
    with store_templates.postgres_pool().test_schema() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest) -> str:
    """Each storage test runs once on SQLite and once on the real PostgreSQL (an empty store)."""
    return request.getfixturevalue(f"{request.param}_url")


@pytest.fixture
def migrated_store(store_templates: StoreTemplates) -> Callable[[str], str]:
    """``migrated_store(url)``: the empty store at ``url`` (``sqlite_url``, ``postgres_url``,
    ``database_url``) made a copy of one migrated once per run, equal to a store just migrated
    (tests of migrating itself migrate their empty store instead); returns ``url``."""

    def copy(url: str) -> str:
        store_templates.copy_into(url, "migrated", migrated)
        return url

    return copy


@pytest.fixture
def community_store(store_templates: StoreTemplates) -> Callable[[str], str]:
    """``community_store(url)``: the empty store at ``url`` made a copy of one holding the
    bundled community (imported once per run by ``stores.bundled_community``); returns ``url``."""

    def copy(url: str) -> str:
        store_templates.copy_into(url, "community", bundled_community)
        return url

    return copy


@pytest.fixture
def engine(database_url: str, migrated_store: Callable[[str], str]) -> Iterator[Engine]:
    """A migrated engine on either database (a copy of the run's migrated store)."""
    eng = make_engine(migrated_store(database_url))
    yield eng
    eng.dispose()


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real datasets not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture
def shared_benchmarks() -> Path:
    if not SHARED_BENCHMARKS.is_dir():
        pytest.skip(f"benchmark splits not found at {SHARED_BENCHMARKS}")
    return SHARED_BENCHMARKS


@pytest.fixture
def bundled_dump() -> Path:
    """The Cardano Stack Exchange dump shipped in the repository."""
    assert BUNDLED_DUMP.is_dir(), f"the bundled dump is missing at {BUNDLED_DUMP}"
    return BUNDLED_DUMP


@pytest.fixture
def spawn_server(tmp_path: Path) -> Iterator[Callable[..., LiveServer]]:
    """Start a real server process (``command`` gets ``--port``), wait until /health answers."""
    started: list[LiveServer] = []

    def start(command: list[str], env: dict[str, str]) -> LiveServer:
        server = start_server(command, env, tmp_path)
        started.append(server)
        return server

    yield start
    for server in started:
        kill_server(server)


@pytest.fixture(scope="session")
def agora_here() -> Callable[[list[str], dict[str, str]], str]:
    """``agora_here(args, env)``: the ``agora`` command run in this process, with ``env`` over
    the environment as a child process would have it; its output (a failure of the test when it
    exits non-zero). For the commands that prepare a store before a test starts its server: a
    child process spends ~0.9 s starting Python and importing the engine, this ~0.1 s."""
    from typer.testing import CliRunner

    from agora.cli.main import app
    from agora.config import get_settings

    def run(args: list[str], env: dict[str, str]) -> str:
        get_settings.cache_clear()  # the settings are read from ``env``, and forgotten after
        try:
            done = CliRunner().invoke(app, args, env=env)
        finally:
            get_settings.cache_clear()
        assert done.exit_code == 0, done.output
        return done.output

    return run
