"""What PostgreSQL's compression of the feed's ready records costs: upserting the bench
community's real records into a scratch table whose ``payload`` column uses pglz (the server's
default before migration 0017), lz4 (0017) or no compression (where lz4 is missing).

    OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/pg_record_compression.py [--rows 4096] \
        [--rounds 2]

Reads ``--rows`` records from the ``feed_candidates`` table of bench/serve_load.py's PostgreSQL
store (run that first), then for each round and each compression, taking turns: creates the
scratch table ``record_compression_trial`` in the ``--scratch-url`` database, inserts every
record in chunks of 128 (the refresher's chunk, one ``executemany`` and commit each), upserts
them all again (the refresher's later passes), and reads the table's size. Prints a table and
writes bench/results/pg_record_compression.json; the scratch table is dropped at the end.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import psycopg
from _record import run_record, write_report
from rich.console import Console
from rich.table import Table
from serve_load import RESULTS

console = Console()
CHUNK = 128
UPSERT = (
    "INSERT INTO record_compression_trial (user_id, payload, stored) VALUES (%s, %s, %s) "
    "ON CONFLICT (user_id) DO UPDATE SET payload = excluded.payload, stored = excluded.stored"
)
COLUMN = {
    "pglz": "SET COMPRESSION pglz",
    "lz4": "SET COMPRESSION lz4",
    "none": "SET STORAGE EXTERNAL",
}


def create(conn: psycopg.Connection, compression: str) -> None:
    conn.execute("DROP TABLE IF EXISTS record_compression_trial")
    conn.execute(
        "CREATE TABLE record_compression_trial (user_id bigint PRIMARY KEY, "
        "payload bytea NOT NULL, stored double precision NOT NULL)"
    )
    conn.execute("CREATE INDEX ON record_compression_trial (stored)")  # as feed_candidates
    conn.execute(f"ALTER TABLE record_compression_trial ALTER COLUMN payload {COLUMN[compression]}")
    conn.commit()


def write_all(conn: psycopg.Connection, rows: list[tuple[int, bytes]]) -> float:
    """Seconds to upsert every row in the refresher's chunks, a commit each."""
    t0 = time.perf_counter()
    for start in range(0, len(rows), CHUNK):
        with conn.cursor() as cur:
            cur.executemany(
                UPSERT, [(pk, payload, time.time()) for pk, payload in rows[start : start + CHUNK]]
            )
        conn.commit()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description="pglz vs lz4 vs none on the feed's ready records.")
    ap.add_argument("--rows", type=int, default=4096)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--source-url", default="postgresql://postgres@127.0.0.1:5432/agora_bench")
    ap.add_argument("--scratch-url", default="postgresql://postgres@127.0.0.1:5432/test")
    ap.add_argument("--out", default=str(RESULTS / "pg_record_compression.json"))
    args = ap.parse_args()
    with psycopg.connect(args.source_url) as source:
        rows = source.execute(
            "SELECT user_id, payload FROM feed_candidates ORDER BY user_id LIMIT %s", (args.rows,)
        ).fetchall()
    if not rows:
        raise SystemExit(
            f"no feed records in {args.source_url}: run bench/serve_load.py --db postgresql"
        )
    mean_kb = sum(len(payload) for _, payload in rows) / len(rows) / 1024
    runs = []
    with psycopg.connect(args.scratch_url) as conn:
        for round_no in range(1, args.rounds + 1):
            for compression in COLUMN:
                create(conn, compression)
                insert = write_all(conn, rows)
                update = write_all(conn, rows)
                size = conn.execute(
                    "SELECT pg_total_relation_size('record_compression_trial')"
                ).fetchone()[0]
                runs.append(
                    {
                        "round": round_no,
                        "compression": compression,
                        "insert_seconds": round(insert, 2),
                        "update_seconds": round(update, 2),
                        "ms_per_record": round(1000 * (insert + update) / (2 * len(rows)), 3),
                        "table_mb": round(size / 2**20, 1),
                    }
                )
                console.print(runs[-1])
        conn.execute("DROP TABLE IF EXISTS record_compression_trial")
        conn.commit()
    table = Table(
        title=f"{len(rows):,} feed records ({mean_kb:.1f} KB on average) upserted {CHUNK} at a time"
    )
    for column in ("round", "compression", "insert s", "update s", "ms per record", "table MB"):
        table.add_column(column, justify="right")
    for r in runs:
        seconds = (f"{r['insert_seconds']:.2f}", f"{r['update_seconds']:.2f}")
        size = (f"{r['ms_per_record']:.3f}", f"{r['table_mb']:.1f}")
        table.add_row(str(r["round"]), r["compression"], *seconds, *size)
    console.print(table)
    report = {"records": len(rows), "mean_record_kb": round(mean_kb, 1), "runs": runs}
    write_report(Path(args.out), {**report, "run": run_record(vars(args))})
    console.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
