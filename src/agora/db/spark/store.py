"""The store's tables as Spark DataFrames, read over JDBC.

PostgreSQL is read in parallel: ``partitions`` range reads split on the integer primary key,
so each Spark task streams its own slice. SQLite (one file, one writer) is read as one slice.
Times arrive as Spark timestamps in UTC on both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import JSON
from sqlalchemy.engine import make_url

from agora.db.tables import TIME_CEILING, TIME_FLOOR, Base, StoredTime

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, DataFrameReader, SparkSession

#: Rows each JDBC round trip fetches: PostgreSQL's driver otherwise buffers a whole slice.
FETCH_SIZE = 10_000


@dataclass(frozen=True)
class JdbcSource:
    """Where Spark reads the store: a JDBC URL, its driver and the login properties."""

    url: str
    driver: str
    properties: dict[str, str]

    @property
    def is_postgresql(self) -> bool:
        return self.url.startswith("jdbc:postgresql:")


def jdbc_source(database_url: str) -> JdbcSource:
    """Translate the store's SQLAlchemy URL into the JDBC URL Spark connects with."""
    url = make_url(database_url)
    backend = url.get_backend_name()
    if backend == "postgresql":
        host = url.host or "127.0.0.1"
        port = url.port or 5432
        props = {"user": url.username or "postgres", "fetchsize": str(FETCH_SIZE)}
        if url.password:
            props["password"] = str(url.password)
        if "options" in url.query:  # e.g. -csearch_path=tenant: the driver passes it on as-is
            props["options"] = str(url.query["options"])
        return JdbcSource(
            f"jdbc:postgresql://{host}:{port}/{url.database}", "org.postgresql.Driver", props
        )
    if backend == "sqlite":
        if not url.database or url.database == ":memory:":
            raise ValueError("Spark cannot read an in-memory SQLite store; use a file")
        return JdbcSource(f"jdbc:sqlite:{url.database}", "org.sqlite.JDBC", {})
    raise ValueError(f"Spark reads PostgreSQL or SQLite stores, not {backend}")


def read_table(
    spark: SparkSession,
    database_url: str,
    table: str,
    columns: list[str] | None = None,
    partitions: int = 4,
) -> DataFrame:
    """One table (or its ``columns``) as a DataFrame; PostgreSQL in ``partitions`` id ranges."""
    source = jdbc_source(database_url)
    select = ", ".join(columns) if columns else "*"
    reader = (
        spark.read.format("jdbc")
        .option("url", source.url)
        .option("driver", source.driver)
        .options(**source.properties)
    )
    if source.is_postgresql and partitions > 1:
        low, high = _id_bounds(spark, source, table)
        if high > low:
            return (
                reader.option("dbtable", f"(SELECT {select} FROM {table}) AS t")
                .option("partitionColumn", "id")
                .option("lowerBound", str(low))
                .option("upperBound", str(high + 1))
                .option("numPartitions", str(partitions))
                .load()
            )
    if not source.is_postgresql:
        return _read_sqlite(reader, table, columns)
    return reader.option("dbtable", f"(SELECT {select} FROM {table}) AS t").load()


def _id_bounds(spark: SparkSession, source: JdbcSource, table: str) -> tuple[int, int]:
    row = (
        spark.read.format("jdbc")
        .option("url", source.url)
        .option("driver", source.driver)
        .options(**source.properties)
        .option(
            "query", f"SELECT COALESCE(MIN(id), 0) AS lo, COALESCE(MAX(id), 0) AS hi FROM {table}"
        )
        .load()
        .first()
    )
    return int(row["lo"]), int(row["hi"])


def _read_sqlite(reader: DataFrameReader, table: str, columns: list[str] | None) -> DataFrame:
    """SQLite declares no types the driver maps well: times are text ('2024-01-02
    03:04:05.000006', UTC) and JSON is text. Read both as strings, then make times timestamps."""
    from pyspark.sql import functions as F  # noqa: N812 - Spark's own convention

    declared = Base.metadata.tables[table].columns
    names = columns or [c.name for c in declared]
    times = [n for n in names if isinstance(declared[n].type, StoredTime)]
    texts = [n for n in names if isinstance(declared[n].type, JSON)]
    select = ", ".join(f'"{n}"' for n in names)
    custom = ", ".join(f"`{n}` STRING" for n in times + texts)
    if custom:
        reader = reader.option("customSchema", custom)
    frame = reader.option("dbtable", f"(SELECT {select} FROM {table}) AS t").load()
    for name in times:
        frame = frame.withColumn(name, F.to_timestamp(F.col(name)))
    return frame


def epoch_seconds(column: str | Column, whole: bool = False) -> Column:
    """A timestamp column as epoch seconds (a double, NULL stays NULL), clamped to
    [TIME_FLOOR, TIME_CEILING] as :class:`~agora.db.tables.StoredTime` reads and
    :class:`~agora.db.tables.epoch_seconds` are; ``whole`` drops the fraction, as SQLite's
    ``strftime('%s')`` does in queries that use it."""
    from pyspark.sql import functions as F  # noqa: N812 - Spark's own convention

    micros = F.unix_micros(F.col(column) if isinstance(column, str) else column)
    seconds = F.floor(micros / 1_000_000).cast("double") if whole else micros / 1_000_000.0
    clamped = F.least(
        F.greatest(seconds, F.lit(TIME_FLOOR.timestamp())), F.lit(TIME_CEILING.timestamp())
    )
    return F.when(micros.isNull(), F.lit(None).cast("double")).otherwise(clamped)
