"""``agora users rekey``: seal a store's user ids, open them, or move them to a new secret, in
the database and in every model artefact on disk (:mod:`agora.db.pseudonyms`).

Run it with the servers and workers stopped. The database changes in one transaction (the
user ids, the admin audit's path parameters, the sealed analytics results and private
releases, the feed's ready records dropped for the refresher to rebuild, and the store's record
of its secret), then each artefact version is rewritten
(``ids.npz`` first, ``meta.json`` naming the new secret last), then the freed pages that still
hold the old texts are compacted away (SQLite ``VACUUM``; PostgreSQL ``VACUUM FULL`` of the
tables touched). Interrupted, it is run again as it was: the store and each artefact say which
secret they are under, and what is done already is skipped.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import JSON, Connection, Engine, bindparam, text

from agora.db.migrations.domains import METADATA
from agora.db.pseudonyms import (
    PLAIN,
    IdSealer,
    SealedJSON,
    SealedUserId,
    SealedValues,
    WrongSecret,
    set_store_ids,
    store_ids,
)
from agora.models.artifacts import list_artifacts, read_meta


def sealed_columns(kind: type) -> list[tuple[str, str, str]]:
    """(table, primary key, column) of every column of type ``kind`` in the schema (a table a
    domain adds later is rekeyed without a change here)."""
    return [
        (table.name, table.primary_key.columns.values()[0].name, column.name)
        for table in METADATA.sorted_tables
        for column in table.columns
        if isinstance(column.type, kind)
    ]


@dataclass
class RekeyReport:
    """What a rekey changed."""

    before: str  # "plain" or "sealed:<fingerprint>" (the store's, as found)
    after: str
    users: int = 0
    documents: dict[str, int] = field(default_factory=dict)
    artifacts: list[str] = field(default_factory=list)
    compacted: bool = False


def _mark(sealer: IdSealer | None) -> str:
    return sealer.fingerprint if sealer is not None else PLAIN


def rekey(
    engine: Engine,
    model_dir: Path,
    old: IdSealer | None,
    new: IdSealer | None,
    progress: Callable[[str], None] = lambda step: None,
) -> RekeyReport:
    """Move the store on ``engine`` (an engine without a sealer: it reads the stored texts)
    and the artefacts under ``model_dir`` from ``old`` to ``new`` (None: plain ids).
    WrongSecret when the store is under neither."""
    if getattr(engine.dialect, "agora_ids", None) is not None:
        raise ValueError("rekey reads the stored texts: give it an engine without a sealer")
    found = store_ids(engine) or PLAIN
    report = RekeyReport(before=found, after=_mark(new))
    if found not in (_mark(old), _mark(new)):
        raise WrongSecret(
            f"the store's user ids are {found.split(':')[0]}"
            + (" under another secret" if found != PLAIN else "")
            + ": the old secret given is not the one that sealed them"
        )
    if found != _mark(new):
        with engine.begin() as conn:
            progress("user ids")
            report.users = _users(conn, old, new)
            for table, key, column in sealed_columns(SealedJSON):
                progress(f"{table}.{column}")
                report.documents[table] = _documents(conn, table, key, column, old, new)
            for table, key, column in sealed_columns(SealedValues):
                progress(f"{table}.{column}")
                report.documents[table] = _values(conn, table, key, column, old, new)
            # the feed's ready records are a cache the refresher rebuilds; those written by
            # versions before 0014's carried the user's id inside
            report.documents["feed_candidates"] = conn.execute(
                text("DELETE FROM feed_candidates")
            ).rowcount
            set_store_ids(conn, _mark(new))
    for path in list_artifacts(model_dir):
        if _artifact(path, old, new):
            progress(f"artefact {path.parent.name}/{path.name}")
            report.artifacts.append(f"{path.parent.name}/{path.name}")
    if report.users or report.artifacts:
        progress("compacting the freed pages")
        compact(engine)
        report.compacted = True
    return report


def _convert(old: IdSealer | None, new: IdSealer | None) -> Callable[[str], str]:
    def convert(stored: str) -> str:
        if not stored:  # an erased entry
            return stored
        raw = old.open(stored) if old is not None else stored
        return new.seal(raw) if new is not None else raw

    return convert


def _users(conn: Connection, old: IdSealer | None, new: IdSealer | None) -> int:
    convert = _convert(old, new)
    rows = conn.execute(text("SELECT id, external_id FROM users")).all()
    if not rows:
        return 0
    update = text("UPDATE users SET external_id = :value WHERE id = :id")
    # through placeholders no id or sealed id can be ("/"): an old text may be a new one
    conn.execute(update, [{"id": pk, "value": f"rekey/{pk}"} for pk, _ in rows])
    conn.execute(update, [{"id": pk, "value": convert(stored)} for pk, stored in rows])
    return len(rows)


def _read_json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def _rewrite(conn: Connection, table: str, key: str, column: str, fix: Callable) -> int:
    rows = conn.execute(text(f"SELECT {key}, {column} FROM {table}")).all()  # noqa: S608
    update = text(f"UPDATE {table} SET {column} = :value WHERE {key} = :key").bindparams(  # noqa: S608
        bindparam("value", type_=JSON)
    )
    changed = [
        {"key": pk, "value": fixed}
        for pk, value in rows
        if value is not None and (fixed := fix(_read_json(value))) is not None
    ]
    if changed:
        conn.execute(update, changed)
    return len(changed)


def _documents(
    conn: Connection, table: str, key: str, column: str, old: IdSealer | None, new: IdSealer | None
) -> int:
    def fix(value: Any) -> Any:
        if old is not None:
            if not (isinstance(value, dict) and set(value) == {"sealed"}):
                return None  # stored before sealing was on: left as it is
            value = old.open_json(value["sealed"])
        return {"sealed": new.seal_json(value)} if new is not None else value

    return _rewrite(conn, table, key, column, fix)


def _values(
    conn: Connection, table: str, key: str, column: str, old: IdSealer | None, new: IdSealer | None
) -> int:
    convert = _convert(old, new)

    def fix(value: Any) -> Any:
        if not isinstance(value, dict):
            return None
        return {k: convert(v) if isinstance(v, str) else v for k, v in value.items()}

    return _rewrite(conn, table, key, column, fix)


def _artifact(path: Path, old: IdSealer | None, new: IdSealer | None) -> bool:
    """Rewrite one artefact version's user ids from ``old`` to ``new``; False when it is
    under ``new`` already."""
    meta = read_meta(path)
    kept = meta.get("user_ids", PLAIN)
    if kept == _mark(new):
        return False
    if kept != _mark(old):
        raise WrongSecret(f"{path}: its user ids are under a secret neither old nor new")
    convert = _convert(old, new)
    with np.load(path / "ids.npz", allow_pickle=False) as arrays:
        user_ids = [convert(u) for u in arrays["user_ids"].tolist()]
        item_ids = arrays["item_ids"]
    tmp = path / f".rekey-{os.getpid()}.npz"
    np.savez(tmp, user_ids=np.asarray(user_ids, dtype=str), item_ids=item_ids)
    os.replace(tmp, path / "ids.npz")
    meta["user_ids"] = _mark(new)
    tmp_meta = path / f".rekey-{os.getpid()}.json"
    tmp_meta.write_text(json.dumps(meta, indent=2))
    os.replace(tmp_meta, path / "meta.json")
    return True


def compact(engine: Engine) -> None:
    """Rewrite the store's files without the pages freed by the rewrite (they still hold the
    old texts): SQLite ``VACUUM`` and a truncated write-ahead log; PostgreSQL ``VACUUM FULL``
    of the tables touched."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        if engine.dialect.name == "sqlite":
            conn.execute(text("VACUUM"))
            conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
        elif engine.dialect.name == "postgresql":
            kinds = (SealedUserId, SealedJSON, SealedValues)
            tables = sorted({t for kind in kinds for t, _, _ in sealed_columns(kind)})
            conn.execute(text(f"VACUUM FULL {', '.join(tables)}"))
