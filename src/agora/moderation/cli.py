"""``agora moderation``: train the quality classifier, scan items, list and decide the queue."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.table import Table

from agora.cli.shell import console, err, store_sessions
from agora.config import get_settings
from agora.db.engine import transaction
from agora.moderation import service
from agora.moderation.classifier import load_latest

app = typer.Typer(
    help="Quality filtering: spam / low-quality classifier, review queue, decisions.",
    no_args_is_help=True,
)


@app.command()
def train(
    c: Annotated[float, typer.Option("--C", help="Inverse regularisation strength.")] = 0.3,
) -> None:
    """Fit the classifier on labelled items (imported Stack Exchange evidence and decided
    cases) and save a new version under AGORA_DATA_DIR/moderation/."""
    settings = get_settings()
    with store_sessions(settings)() as session:
        try:
            result = service.train(
                session,
                settings.data_dir,
                datetime.now(UTC),
                params={"C": c},
                keep=settings.keep_versions,
            )
        except ValueError as exc:
            err.print(f"cannot train: {exc}")
            raise typer.Exit(2) from None
    oof = result.out_of_fold
    console.print(
        f"trained moderation {result.version} in {result.seconds:.1f} s on "
        f"{result.labels['low_quality']} low-quality and {result.labels['ok']} ok items; "
        f"out-of-fold PR-AUC {oof['pr_auc']:.3f}"
    )
    console.print(
        f"default scan threshold {oof['threshold']:.3f} ({oof['threshold_rule']}): "
        f"out-of-fold precision {oof['precision']:.2f}, recall {oof['recall']:.2f}, "
        f"{oof['queued_share']:.1%} of labelled posts queued"
    )
    console.print(f"saved to {result.path}")


@app.command()
def scan(
    threshold: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            max=1.0,
            help="Default: the model's F1-best, raised to out-of-fold precision >= 0.25.",
        ),
    ] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Score at most this many.")] = None,
    rescore: Annotated[bool, typer.Option(help="Score every item again.")] = False,
) -> None:
    """Score items not scored yet and queue those at or above the threshold."""
    settings = get_settings()
    classifier = load_latest(settings.data_dir)
    if classifier is None:
        err.print("no moderation classifier yet; run `agora moderation train` first")
        raise typer.Exit(2)
    with transaction(store_sessions(settings)) as session:
        summary = service.scan(
            session, classifier, datetime.now(UTC), threshold, limit, rescore=rescore
        )
    console.print(
        f"scored {summary.scored} items with {summary.model_version}; {summary.queued} in the "
        f"review queue (threshold {summary.threshold:.3f})"
    )


@app.command()
def queue(
    status: Annotated[str, typer.Option(help="open | upheld | rejected")] = "open",
    limit: Annotated[int, typer.Option(min=1)] = 20,
) -> None:
    """List review cases, highest priority first."""
    settings = get_settings()
    with store_sessions(settings)() as session:
        try:
            cases = service.review_queue(session, status, limit)
        except service.BadRequest as exc:
            err.print(str(exc))
            raise typer.Exit(2) from None
    table = Table(title=f"{status} review cases")
    for column in ("case", "item", "author", "priority", "score", "flags", "title"):
        table.add_column(column)
    for c in cases:
        reasons = ", ".join(f"{r} {n}" for r, n in sorted(c.reasons.items()))
        table.add_row(
            str(c.case_id),
            c.item_id,
            c.author_id or "-",
            f"{c.priority:.3f}",
            "-" if c.score is None else f"{c.score:.3f}",
            f"{c.n_flags} ({reasons})" if reasons else str(c.n_flags),
            c.title[:60],
        )
    console.print(table)


@app.command()
def decide(
    case_id: Annotated[int, typer.Argument(help="Case id from `agora moderation queue`.")],
    outcome: Annotated[str, typer.Argument(help="uphold | reject")],
    moderator: Annotated[str, typer.Option(help="Who decides.")] = "cli",
    note: Annotated[str, typer.Option()] = "",
) -> None:
    """Uphold (remove from feeds, debit the author) or reject a review case."""
    settings = get_settings()
    try:
        with transaction(store_sessions(settings)) as session:
            result = service.decide(
                session, case_id, outcome, datetime.now(UTC), decided_by=moderator, note=note
            )
    except (service.UnknownCase, service.AlreadyDecided, service.BadRequest) as exc:
        message = exc.args[0] if exc.args else str(exc)
        err.print(message)
        raise typer.Exit(2) from None
    done = "decided" if result.created else "already decided"
    event = f"; event {result.event_id}" if result.event_id else ""
    console.print(
        f"case {case_id} {done}: {result.case.status} (item {result.case.item_id}){event}"
    )
