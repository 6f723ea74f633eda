"""``agora media``: read the images items name, and show what was read of an item's."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.table import Table
from sqlalchemy import select

from agora.cli.shell import console, err, progress, store_sessions
from agora.config import get_settings
from agora.db.tables import Item
from agora.media import service

app = typer.Typer(
    help="Images of items: the text inside them (OCR), explicit scores, their facts.",
    no_args_is_help=True,
)


@app.command()
def analyse(
    minutes: Annotated[
        float | None, typer.Option(min=0.01, help="Stop after this long (the next run goes on).")
    ] = None,
) -> None:
    """Read every image items name (under AGORA_MEDIA_ROOT, or from AGORA_MEDIA_FETCH_HOSTS)
    that was not read yet; `agora serve` does the same in the background."""
    settings = get_settings()
    sessions = store_sessions(settings)
    policy = service.MediaPolicy.of(settings)
    with progress() as bar:
        task = bar.add_task("reading images", total=None)

        def step(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        summary = service.analyse_pending(
            sessions,
            policy,
            lambda: datetime.now(UTC),
            budget_seconds=minutes * 60 if minutes else None,
            on_image=step,
        )
    console.print(
        f"read {summary.analysed} image(s) in {summary.seconds:.1f} s; {summary.failed} could "
        f"not be fetched or read; {summary.queued} item(s) in the review queue"
        + (f"; {summary.left} left for the next run" if summary.left else "")
    )
    if summary.failed:
        err.print("`agora media show ITEM` says why an image could not be read")


@app.command()
def show(item_id: Annotated[str, typer.Argument(help="External item id.")]) -> None:
    """What was read of an item's images."""
    settings = get_settings()
    with store_sessions(settings)() as session:
        pk = session.scalar(select(Item.id).where(Item.external_id == item_id))
        if pk is None:
            err.print(f"item {item_id!r} not found")
            raise typer.Exit(1)
        rows = service.item_media(session, pk)
    table = Table("source", "kind", "size", "explicit", "text (OCR)", "error", title=item_id)
    for row in rows:
        size = f"{row.width}x{row.height}, {row.bytes:,} B" if row.width else ""
        explicit = f"{row.explicit_score:.2f}" if row.explicit_score is not None else ""
        text = row.text.replace("\n", " / ")
        table.add_row(row.source, row.kind or "", size, explicit, text, row.error or "")
    console.print(table)
