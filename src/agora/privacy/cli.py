"""``agora users ...``: a member's data on request: export everything about them, erase them
(from the tables and the trained models), the erasures' audit trail, and the fit without the
erased users' events (a running ``agora serve`` does it by itself after
``erasure_retrain_seconds``)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from agora.cli.shell import console, fail, store_sessions
from agora.config import get_settings
from agora.feed.store import candidate_store
from agora.privacy import service

app = typer.Typer(help="Export and erase a member's data; the erasures' audit trail.")

UserArg = Annotated[str, typer.Argument(help="The user's external id.")]


@app.command()
def export(
    user_id: UserArg,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write to this file (default: stdout).")
    ] = None,
) -> None:
    """Everything stored about a user, as one JSON document (what GET /users/{id}/export
    gives)."""
    with store_sessions(get_settings())() as session:
        document = service.export_user(session, user_id)
    if document is None:
        raise fail(f"no user {user_id!r} is stored", code=1)
    text = json.dumps(document, indent=2, ensure_ascii=False)
    if out is None:
        typer.echo(text)
        return
    out.write_text(text + "\n")
    rows = sum(len(rows) for rows in document["tables"].values())
    console.print(f"wrote {out}: {rows:,} rows in {len(document['tables'])} tables")


def erase_everywhere(user_id: str, content: service.Content) -> None:
    """The CLI's erasure (``agora users erase``, ``agora erase user``), recorded as by 'cli'."""
    settings = get_settings()
    sessions = store_sessions(settings)
    record = service.erase(
        sessions,
        settings.model_dir,
        candidate_store(settings.redis_url, sessions),
        user_id,
        requested_by="cli",
        content=content,
        retrain=settings.erasure_retrain_seconds > 0,
    )
    if record is None:
        raise fail(f"no user {user_id!r} is stored", code=1)
    removed = ", ".join(f"{n:,} {table}" for table, n in sorted(record.removed.items()))
    versions = sum(len(v) for v in record.artifacts.values())
    console.print(f"erased user {user_id!r} (erasure {record.id}): {removed}")
    console.print(f"model versions rewritten without them: {versions}")
    if record.retrain == "wanted":
        console.print(
            "the models are fitted again without their events by a running `agora serve` "
            f"within {settings.erasure_retrain_seconds:g} s, or now by `agora users retrain`"
        )


@app.command()
def erase(
    user_id: UserArg,
    content: Annotated[
        str, typer.Option(help="keep: their items stay without author; delete: removed too.")
    ] = "keep",
) -> None:
    """Erase a user: every row about them, their id and rows in every model version on disk;
    the erasure is recorded in the audit trail (`agora users erasures`)."""
    if content not in ("keep", "delete"):
        raise fail(f"--content must be 'keep' or 'delete', not {content!r}")
    erase_everywhere(user_id, content)  # type: ignore[arg-type]


@app.command()
def erasures(
    n: Annotated[int, typer.Option("-n", min=1, max=1000, help="How many, newest first.")] = 20,
) -> None:
    """The erasures' audit trail: who asked, when, what was removed (never the data)."""
    with store_sessions(get_settings())() as session:
        records = service.erasures(session, limit=n)
    table = Table("id", "requested", "by", "content", "rows", "model versions", "retrain")
    for r in records:
        table.add_row(
            str(r.id),
            r.requested.isoformat(timespec="seconds"),
            r.requested_by,
            r.content,
            f"{sum(r.removed.values()):,}",
            str(sum(len(v) for v in r.artifacts.values())),
            r.retrain,
        )
    console.print(table)


@app.command()
def retrain() -> None:
    """Fit every model on disk again now, without the erased users' events (for the erasures
    still waiting for it)."""
    settings = get_settings()
    with console.status("fitting the models without the erased users' events"):
        versions = service.retrain_after_erasures(store_sessions(settings), settings)
    if not versions:
        console.print("no erasure is waiting for a fit")
        return
    for name, version in sorted(versions.items()):
        console.print(f"{name}: {version}")


@app.command()
def rekey(
    old_secret_env: Annotated[
        str,
        typer.Option(
            help="The environment variable holding the secret the store is sealed under now "
            "(unset: its ids are plain now). Never on the command line: `ps` would show it."
        ),
    ] = "AGORA_OLD_ID_SECRET",
) -> None:
    """Seal the store's user ids, open them, or move them to a new secret: the database and
    every model artefact on disk. The new way is the settings' (AGORA_PSEUDONYMIZE_IDS=1 with
    AGORA_ID_SECRET; off: plain). Stop the servers and workers first; run it again if it
    was interrupted."""
    from agora.db.engine import make_engine, migrate
    from agora.db.pseudonyms import IdSealer, WrongSecret
    from agora.privacy.rekey import rekey as move

    settings = get_settings()
    old_secret = os.environ.get(old_secret_env)
    try:
        old = IdSealer(old_secret) if old_secret else None
    except ValueError as exc:
        raise fail(f"{old_secret_env}: {exc}") from None
    new = None
    if settings.pseudonymize_ids and settings.id_secret is not None:
        new = IdSealer(settings.id_secret.get_secret_value())
    engine = make_engine(settings.resolved_database_url)  # no sealer: it reads stored texts
    migrate(engine)
    try:
        with console.status("rekeying") as status:
            report = move(engine, settings.model_dir, old, new, lambda step: status.update(step))
    except WrongSecret as exc:
        raise fail(str(exc), code=1) from None
    finally:
        engine.dispose()
    if report.before == report.after and not report.artifacts:
        console.print(f"nothing to do: the store and its artefacts are {report.after} already")
        return
    console.print(f"user ids: {report.before} -> {report.after}")
    console.print(f"users rewritten: {report.users:,}")
    for table, count in sorted(report.documents.items()):
        done = (
            "dropped (the refresher rebuilds them)" if table == "feed_candidates" else "rewritten"
        )
        console.print(f"{table}: {count:,} rows {done}")
    console.print(f"artefact versions rewritten: {len(report.artifacts)}")
    if report.compacted:
        console.print("freed pages compacted (SQLite VACUUM / PostgreSQL VACUUM FULL)")
