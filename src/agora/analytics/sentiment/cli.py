"""``agora analytics sentiment [train|by]``: the sentiment of a text file or of the store.

``agora analytics sentiment --in FILE --out FILE`` reads one text per line and writes one line
per text, ``label<TAB>score``: label ``negative``/``neutral``/``positive``, score
P(positive) - P(negative) in [-1, 1] with 4 decimals; an empty line gives ``neutral\\t0.0000``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from agora.analytics.sentiment import service as sa
from agora.cli.shell import console, err, fail
from agora.config import get_settings

app = typer.Typer(
    help="Sentiment (Chinese and English) of a text file, or of the store's posts and comments."
)

#: Texts scored per step (one progress tick).
BATCH = 256

DataOption = Annotated[
    Path,
    typer.Option(
        "--data",
        envvar="AGORA_SENTIMENT_DATA",
        help="Folder with the labelled sets (waimai-10k, online-shopping-10-cats, ...).",
        show_default="../shared/data beside the project",
    ),
]


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
    )


def _train(data: Path) -> Path:
    """Train the shipped configuration on ``data`` and save it; returns the artefact path."""
    settings = get_settings()
    with _progress() as bar:
        bar.add_task("training (Chinese TF-IDF, English MiniLM + VADER)", total=None)
        try:
            model, info = sa.train_sentiment(data, **sa.SHIPPED)
        except FileNotFoundError as exc:
            raise fail(
                f"{exc}; point `agora analytics sentiment train --data DIR` at the labelled sets",
                code=1,
            ) from exc
        path = sa.save_sentiment(model, settings.model_dir, info)
    console.print(f"saved sentiment model {path}")
    return path


@app.callback(invoke_without_command=True)
def sentiment(
    ctx: typer.Context,
    in_file: Annotated[
        Path | None, typer.Option("--in", help="UTF-8 text file, one text per line.")
    ] = None,
    out_file: Annotated[
        Path | None, typer.Option("--out", help="Written: label<TAB>score per input line.")
    ] = None,
) -> None:
    """Score a file: one ``label<TAB>score`` line per input line (score in [-1, 1])."""
    if ctx.invoked_subcommand is not None:
        return
    if in_file is None or out_file is None:
        raise fail("give both --in FILE and --out FILE (or a sub-command: train, by)")
    if not in_file.is_file():
        raise fail(f"--in {in_file}: no such file")
    try:
        lines = sa.read_lines(in_file)
    except UnicodeDecodeError as exc:
        raise fail(f"--in {in_file}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    model = sa.load_sentiment(get_settings().model_dir)
    labels: list[str] = []
    scores: list[float] = []
    with _progress() as bar:
        task = bar.add_task("scoring", total=len(lines))
        for start in range(0, len(lines), BATCH):
            part_labels, part_scores = model.predict(lines[start : start + BATCH])
            labels += part_labels
            scores += part_scores.tolist()
            bar.advance(task, len(part_labels))
    out_file.parent.mkdir(parents=True, exist_ok=True)
    out_file.write_text(
        "".join(f"{label}\t{score:.4f}\n" for label, score in zip(labels, scores, strict=True)),
        encoding="utf-8",
    )
    counts = {label: labels.count(label) for label in sa.LABELS}
    err.print(f"wrote {len(labels)} lines to {out_file}: {counts}")


@app.command()
def train(data: DataOption = sa.DEFAULT_DATA_DIR) -> None:
    """Train the sentiment model on the labelled sets and save a new version."""
    if not data.is_dir():
        raise fail(f"--data {data}: no such folder")
    _train(data)


@app.command()
def by(
    key: Annotated[str, typer.Argument(help="tag, author or day")] = "tag",
    limit: Annotated[int, typer.Option(min=1, help="Rows shown.")] = 20,
) -> None:
    """Mean sentiment and counts of the store's posts and comments per tag, author or day
    (scores the posts and comments not scored yet first, and stores their scores)."""
    if key not in sa.GROUP_BY:
        raise fail(f"group by one of {', '.join(sa.GROUP_BY)}, not {key!r}")
    from agora.analytics.jobs import score_sentiment
    from agora.db.engine import open_store, session_factory

    settings = get_settings()
    engine = open_store(settings)
    sessions = session_factory(engine)
    score_sentiment(sessions, settings.model_dir, budget_seconds=None)
    with sessions() as session:
        scored = sa.stored_scores(session)
    engine.dispose()
    table = Table(title=f"Sentiment per {key} ({len(scored)} posts and comments)")
    for column in (key, "n", "mean score", "positive", "neutral", "negative"):
        table.add_column(column, justify="left" if column == key else "right")
    for g in sa.aggregate(scored, key)[:limit]:
        table.add_row(
            g.key,
            str(g.n),
            f"{g.mean_score:+.3f}",
            str(g.positive),
            str(g.neutral),
            str(g.negative),
        )
    console.print(table)
