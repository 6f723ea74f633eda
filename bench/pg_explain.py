"""The hot queries of a PostgreSQL store, checked with EXPLAIN (ANALYZE, BUFFERS).

    OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/pg_explain.py --url postgresql+psycopg://... \
        [--out bench/results/pg_explain.json] [--skip training_read]

Each query is the statement the code runs (imported from its module, or built as the module
builds it), bound to values taken from the store: the user of the middle stored event, a batch
of 500 users for the refresher's state reads, the last 1,000 events for its tail. Every query
runs once to warm the cache, then once under ``EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON)``
(writes inside a transaction rolled back). Prints a table (execution time, buffers hit and
read, the indexes used, whether any partition or table was scanned whole, how many partitions
were touched) and writes the plans and figures with ``run_record`` to ``--out``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from _record import run_record, write_report  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402
from sqlalchemy import Connection, Select, bindparam, func, insert, select  # noqa: E402
from sqlalchemy.dialects import postgresql  # noqa: E402

from agora.db.engine import make_engine  # noqa: E402
from agora.db.tables import Event, Item, User  # noqa: E402
from agora.feed.state import _NEW_EVENTS, _STATE_EVENTS  # noqa: E402
from agora.ingest.service import _look_up_query  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
console = Console(width=max(Console().width, 150))


def _user_events(conn: Connection, values: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    # agora.serving.service.user_event_rows: a feed or recommendations request's history
    stmt = (
        select(Item.external_id, Event.type, Event.value, Event.timestamp)
        .join(Event, Event.item_id == Item.id)
        .join(User, Event.user_id == User.id)
        .where(User.external_id == bindparam("user"))
    )
    return stmt, {"user": values["user"]}


def _look_up(conn: Connection, values: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    # agora.ingest.service._look_up: an event write's look-up (event id, user, item)
    ids = {"events": ["not-stored-yet"], "users": [values["user"]], "items": [values["item"]]}
    return _look_up_query("postgresql"), ids


def _write(conn: Connection, values: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    # agora.ingest.service.add_events: the insert of one event (rolled back)
    row = {
        "event_id": "explain-probe",
        "user_id": values["user_pk"],
        "item_id": values["item_pk"],
        "type": "view",
        "value": None,
        "timestamp": datetime.now(UTC),
        "context": "{}",
    }
    return insert(Event.__table__).values(**{k: bindparam(k) for k in row}), row


def _state_events(conn: Connection, values: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    # agora.feed.state.read_states: the events of a batch of 500 users (full refresh)
    return _STATE_EVENTS, {"pks": values["batch"]}


def _new_events(conn: Connection, values: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    # agora.feed.state: the refresher's tail of new events past its mark
    return _NEW_EVENTS, {"after": values["max_id"] - 1000}


def _training_read(conn: Connection, values: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    # agora.features.store.load_training_data: every event, in id order
    stmt = (
        select(
            Event.id, User.external_id, Item.external_id, Event.type, Event.value, Event.timestamp
        )
        .join(User, Event.user_id == User.id)
        .join(Item, Event.item_id == Item.id)
        .order_by(Event.id)
    )
    return stmt, {}


def _newest_id(conn: Connection, values: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    # agora.db.queries.events_per_minute, first: the newest event id
    return select(func.max(Event.id)), {}


def _live_rate(conn: Connection, values: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    # agora.db.queries.events_per_minute: the console's live rate (the last hour)
    until = values["newest_time"]
    stmt = select(Event.timestamp).where(
        Event.id > bindparam("floor"),
        Event.timestamp >= bindparam("start"),
        Event.timestamp < bindparam("until"),
    )
    params = {"floor": values["max_id"] - 200_000, "start": until - timedelta(hours=1)}
    return stmt, {**params, "until": until}


QUERIES: dict[str, Callable[[Connection, dict[str, Any]], tuple[Any, dict[str, Any]]]] = {
    "user_events": _user_events,
    "event_look_up": _look_up,
    "event_insert": _write,
    "refresher_state_events": _state_events,
    "refresher_new_events": _new_events,
    "console_newest_id": _newest_id,
    "console_live_rate": _live_rate,
    "training_read": _training_read,
}


def sample_values(conn: Connection) -> dict[str, Any]:
    """Values to bind: the middle event's user and item, a batch of users, the newest id."""
    max_id = conn.scalar(select(func.max(Event.id)))
    if max_id is None:
        sys.exit("the store holds no events")
    middle = conn.execute(
        select(Event.user_id, Event.item_id).where(Event.id >= max_id // 2).limit(1)
    ).one()
    user = conn.scalar(select(User.external_id).where(User.id == middle[0]))
    item = conn.scalar(select(Item.external_id).where(Item.id == middle[1]))
    batch = list(conn.scalars(select(User.id).where(User.id >= middle[0]).limit(500)))
    newest = conn.scalar(select(Event.timestamp).where(Event.id == max_id))
    return {
        "max_id": max_id,
        "user": user,
        "user_pk": middle[0],
        "item": item,
        "item_pk": middle[1],
        "batch": batch,
        "newest_time": newest,
    }


def explain(conn: Connection, stmt: Select[Any] | Any, params: dict[str, Any]) -> dict[str, Any]:
    """One warm-up run (of a read), then the plan of a second run with ANALYZE and BUFFERS
    (in a transaction rolled back)."""
    compiled = stmt.compile(dialect=postgresql.psycopg.dialect())
    expanded = compiled.construct_expanded_state({**compiled.params, **params})
    sql, bound = expanded.statement, expanded.parameters
    with conn.begin() as tx:
        if stmt.is_select:
            conn.exec_driver_sql(sql, bound).fetchall()
        tx.rollback()
    with conn.begin() as tx:
        explained = "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + sql
        plan = conn.exec_driver_sql(explained, bound).scalar_one()[0]
        tx.rollback()
    return {"sql": sql, "plan": plan, **summarise(plan)}


def summarise(plan: dict[str, Any]) -> dict[str, Any]:
    """Time, buffers, indexes used, whole-relation scans and partitions touched of a plan."""
    nodes: list[dict[str, Any]] = []
    stack = [plan["Plan"]]
    while stack:
        node = stack.pop()
        nodes.append(node)
        stack.extend(node.get("Plans", []))
    top = plan["Plan"]
    relations = {n["Relation Name"] for n in nodes if "Relation Name" in n}
    return {
        "execution_ms": plan["Execution Time"],
        "planning_ms": plan["Planning Time"],
        "rows": top.get("Actual Rows"),
        "shared_hit": top.get("Shared Hit Blocks", 0),
        "shared_read": top.get("Shared Read Blocks", 0),
        "indexes": sorted({n["Index Name"] for n in nodes if "Index Name" in n}),
        "seq_scans": sorted(
            {n.get("Relation Name", "?") for n in nodes if n["Node Type"] == "Seq Scan"}
        ),
        "partitions": len([r for r in relations if r.startswith("events_")]),
    }


def table(results: dict[str, dict[str, Any]], events: int) -> Table:
    out = Table(title=f"hot queries, EXPLAIN (ANALYZE, BUFFERS), {events:,} events")
    for column in ("query", "ms", "rows", "hit", "read", "partitions", "indexes", "seq scans"):
        out.add_column(column, justify="right" if column not in ("query", "indexes") else "left")
    for name, r in results.items():
        out.add_row(
            name,
            f"{r['execution_ms']:,.2f}",
            f"{r['rows']:,}",
            f"{r['shared_hit']:,}",
            f"{r['shared_read']:,}",
            str(r["partitions"]),
            _short(", ".join(_index_families(r["indexes"]))),
            _short(", ".join(_index_families(r["seq_scans"]))) or "-",
        )
    return out


def _index_families(names: list[str]) -> list[str]:
    """Partition-level names folded into their parent's (``events_2024_05_pkey`` -> ``pkey``)."""
    folded: dict[str, int] = {}
    for name in names:
        parts = name.split("_")
        key = "_".join(parts[3:]) if name.startswith("events_") and len(parts) > 3 else name
        key = key or name
        folded[key] = folded.get(key, 0) + 1
    return [f"{k} x{n}" if n > 1 else k for k, n in folded.items()]


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def run(url: str, skip: list[str]) -> tuple[dict[str, dict[str, Any]], int]:
    """The figures of every query not in ``skip`` on the store at ``url``."""
    engine = make_engine(url)
    results: dict[str, dict[str, Any]] = {}
    with engine.connect() as conn:
        values = sample_values(conn)
        conn.rollback()
        for name, build in QUERIES.items():
            if name in skip:
                continue
            stmt, params = build(conn, values)
            results[name] = explain(conn, stmt, params)
        events = conn.exec_driver_sql("SELECT reltuples::bigint FROM pg_class WHERE oid = "
                                      "'events'::regclass").scalar()  # fmt: skip
        if not events or events < 0:
            events = conn.exec_driver_sql(
                "SELECT sum(reltuples)::bigint FROM pg_class c JOIN pg_inherits i "
                "ON i.inhrelid = c.oid WHERE i.inhparent = 'events'::regclass"
            ).scalar()
    engine.dispose()
    return results, int(events or 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="a PostgreSQL store's database URL")
    parser.add_argument("--out", type=Path, default=RESULTS / "pg_explain.json")
    parser.add_argument("--skip", nargs="*", default=[], choices=list(QUERIES))
    args = parser.parse_args()
    results, events = run(args.url, args.skip)
    console.print(table(results, events))
    settings = {"url": args.url, "skip": args.skip, "events": events}
    write_report(args.out, {"run": run_record(settings), "events": events, "queries": results})
    console.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
