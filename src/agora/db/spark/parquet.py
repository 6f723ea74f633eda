"""The store's events, users and items as Parquet files (``agora export --format parquet``),
so Spark can train from files instead of the database (``agora train --engine spark
--from-parquet DIR``).

Each table is streamed in chunks of :data:`CHUNK_ROWS` rows, in row-id order, into
``DIR/<table>.parquet``. The columns are the store's own, as stored (a store with
pseudonymous user ids keeps them sealed in the files too): what
:func:`agora.db.spark.store.read_table` reads over JDBC, so both sources feed the same job.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import String, func, select, type_coerce
from sqlalchemy.orm import Session

from agora.db.tables import Base

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import DataFrame, SparkSession

#: Rows fetched and written per Parquet row group.
CHUNK_ROWS = 50_000

#: The tables a Spark training job needs and the columns it reads, as stored.
EXPORTED: dict[str, tuple[str, ...]] = {
    "events": ("id", "user_id", "item_id", "type", "value", "timestamp"),
    "users": ("id", "external_id"),
    "items": ("id", "external_id"),
}

#: Told after each chunk: (table, rows written so far, rows in the table).
ExportHook = Callable[[str, int, int], None]


@dataclass(frozen=True)
class ParquetExport:
    """What :func:`export_parquet` wrote: the folder and the rows per table."""

    path: Path
    rows: dict[str, int]


def _schema() -> dict[str, pa.Schema]:
    import pyarrow as pa

    ids = [("id", pa.int64())]
    return {
        "events": pa.schema(
            ids
            + [
                ("user_id", pa.int64()),
                ("item_id", pa.int64()),
                ("type", pa.string()),
                ("value", pa.float64()),
                ("timestamp", pa.timestamp("us", tz="UTC")),
            ]
        ),
        "users": pa.schema(ids + [("external_id", pa.string())]),
        "items": pa.schema(ids + [("external_id", pa.string())]),
    }


def export_parquet(
    session: Session, directory: str | Path, on_chunk: ExportHook | None = None
) -> ParquetExport:
    """Write ``events``, ``users`` and ``items`` (:data:`EXPORTED`) under ``directory`` as
    Parquet, chunk by chunk; a file is written under a temporary name and renamed when
    complete. Times are UTC."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    schemas = _schema()
    rows: dict[str, int] = {}
    for table, columns in EXPORTED.items():
        stored = Base.metadata.tables[table]
        total = session.scalar(select(func.count()).select_from(stored)) or 0
        final = out / f"{table}.parquet"
        partial = out / f".{table}.parquet.partial"
        written = 0
        # user ids as stored (sealed ones stay sealed); times as datetimes (naive ones are UTC)
        selected = [
            type_coerce(stored.c[c], String()) if c == "external_id" else stored.c[c]
            for c in columns
        ]
        query = select(*selected).order_by(stored.c.id).execution_options(yield_per=CHUNK_ROWS)
        result = session.execute(query)
        with pq.ParquetWriter(partial, schemas[table]) as writer:
            for chunk in result.partitions(CHUNK_ROWS):
                values = list(zip(*chunk, strict=True))
                batch = pa.record_batch(
                    [pa.array(v, type=schemas[table].field(i).type) for i, v in enumerate(values)],
                    schema=schemas[table],
                )
                writer.write_batch(batch)
                written += len(chunk)
                if on_chunk:
                    on_chunk(table, written, total)
        partial.rename(final)
        rows[table] = written
        if on_chunk and not written:
            on_chunk(table, 0, 0)
    return ParquetExport(out, rows)


def read_parquet_tables(spark: SparkSession, directory: str | Path) -> dict[str, DataFrame]:
    """The tables :func:`export_parquet` wrote, as DataFrames; FileNotFoundError naming the
    missing file when ``directory`` is not such an export."""
    base = Path(directory)
    missing = [f"{t}.parquet" for t in EXPORTED if not (base / f"{t}.parquet").is_file()]
    if missing:
        raise FileNotFoundError(
            f"{base} is not a Parquet export (missing {', '.join(missing)}); "
            "write one with `agora export --format parquet DIR`"
        )
    return {t: spark.read.parquet(str(base / f"{t}.parquet")) for t in EXPORTED}
