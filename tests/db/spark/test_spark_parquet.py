"""``agora export --format parquet`` writes the store's tables as they are stored, and Spark
builds the same interactions from the files as from the database."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from agora.cli.main import app as cli
from agora.config import Settings, get_settings
from agora.db.engine import make_engine, session_factory
from agora.db.spark.parquet import read_parquet_tables
from agora.db.tables import Event, Item, User
from agora.features.store import load_training_data
from agora.models.spark_training import store_interactions


@pytest.fixture
def store(
    tmp_path: Path, community_store: Callable[[str], str], monkeypatch: pytest.MonkeyPatch
) -> str:
    """The bundled community (a copy of the run's) in the data folder's SQLite store, which the
    CLI uses."""
    monkeypatch.setenv("AGORA_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    url = community_store(get_settings().resolved_database_url)
    yield url
    get_settings.cache_clear()


def test_parquet_export_round_trips(spark, store: str, tmp_path: Path) -> None:  # noqa: ANN001
    out = tmp_path / "export"
    done = CliRunner().invoke(cli, ["export", "--format", "parquet", str(out)])
    assert done.exit_code == 0, done.output
    assert "5,112 events" in done.output
    engine = make_engine(store)
    with session_factory(engine)() as session:
        events = {
            e.id: (e.user_id, e.item_id, e.type, e.value, e.timestamp.replace(tzinfo=None))
            for e in session.scalars(select(Event))
        }
        users = {u.id: u.external_id for u in session.scalars(select(User))}
        items = {i.id: i.external_id for i in session.scalars(select(Item))}
        expected, _, last_row = load_training_data(session, Settings().event_weights)
    engine.dispose()
    written = pq.read_table(out / "events.parquet").to_pylist()
    assert {
        r["id"]: (
            r["user_id"], r["item_id"], r["type"], r["value"], r["timestamp"].replace(tzinfo=None)
        )
        for r in written
    } == events  # fmt: skip
    assert (
        dict(zip(*pq.read_table(out / "users.parquet").to_pydict().values(), strict=True)) == users
    )
    assert (
        dict(zip(*pq.read_table(out / "items.parquet").to_pydict().values(), strict=True)) == items
    )
    tables = read_parquet_tables(spark, out)
    data = store_interactions(
        spark, tables["events"], tables["users"], tables["items"], Settings().event_weights
    )
    assert list(data.interactions.user_ids) == list(expected.user_ids)
    assert list(data.interactions.item_ids) == list(expected.item_ids)
    assert (data.interactions.matrix != expected.matrix).nnz == 0
    assert data.last_event_row == last_row


def test_a_folder_that_is_no_export_is_named(spark, tmp_path: Path) -> None:  # noqa: ANN001
    with pytest.raises(FileNotFoundError, match="missing events.parquet, users.parquet"):
        read_parquet_tables(spark, tmp_path)


def test_an_unknown_export_format_is_refused(store: str, tmp_path: Path) -> None:
    done = CliRunner().invoke(cli, ["export", "--format", "orc", str(tmp_path / "x")])
    assert done.exit_code == 2
    assert "unknown export format 'orc' (known: gorse, parquet)" in done.output
