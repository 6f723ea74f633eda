"""The ``agora`` command: a thin shell over the services (import, train, recommend, eval, serve)."""

from __future__ import annotations

import importlib
import json
import logging.config
import os
import secrets
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import click
import typer
from rich.table import Table
from rich.text import Text
from typer.core import TyperGroup

from agora.cli.shell import console, err, error, fail
from agora.cli.shell import progress as _progress
from agora.config import Settings, get_settings

if TYPE_CHECKING:
    from agora.features.interactions import Interactions
    from agora.models.training import TrainedModel

#: The command groups of the domains, by name, as ``agora --help`` lists them (after this
#: module's own commands): each module is imported when a command line or a help page names its
#: group, so a command loads only its own domain. Imported together, at the start of every
#: command, they cost 2-3 s (scipy, scikit-learn, FastAPI, every service).
SUB_APPS: dict[str, str] = {
    "users": "agora.privacy.cli",
    "engagement": "agora.engagement.cli",
    "moderation": "agora.moderation.cli",
    "media": "agora.media.cli",
    "market": "agora.market.cli",
    "analytics": "agora.analytics.cli",
    "experiment": "agora.experiments.cli",
    "admin": "agora.audit.cli",
}


class LazyGroup(TyperGroup):
    """The ``agora`` group: its own commands, then the groups of :data:`SUB_APPS`, each built
    on first use as ``app.add_typer(module.app, name=...)`` would build it (this app sets none
    of the settings a group inherits: markup mode, suggestions, short tracebacks)."""

    def __init__(self, **attrs: Any) -> None:  # noqa: ANN401 - TyperGroup's own keywords
        super().__init__(**attrs)
        self._sub_groups: dict[str, click.Command] = {}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [*super().list_commands(ctx), *SUB_APPS]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in SUB_APPS:
            return super().get_command(ctx, cmd_name)
        if cmd_name not in self._sub_groups:
            group = typer.main.get_group(importlib.import_module(SUB_APPS[cmd_name]).app)
            group.name = cmd_name
            self._sub_groups[cmd_name] = group
        return self._sub_groups[cmd_name]


app = typer.Typer(
    cls=LazyGroup,
    help="Agora: a self-hosted attention engine for community platforms.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

REPO_ROOT = Path(__file__).resolve().parents[3]
BUNDLED_COMMUNITY = REPO_ROOT / "data" / "cardano-se"
#: How long ``serve --workers N`` gives a worker to start answering before replacing it.
WORKER_START_SECONDS = 60
#: How long a stopping ``agora serve`` waits for its refresher process to end its chunk.
REFRESHER_STOP_SECONDS = 30


SparkMasterOption = Annotated[
    str, typer.Option(help="With --engine spark: local[N] or spark://host:port.")
]
SparkAlsOption = Annotated[
    str,
    typer.Option(
        help="With --engine spark: the ALS solver: cg (implicit's objective and solver, "
        "on Spark), cholesky (the same objective solved exactly) or mllib (MLlib's ALS-WR)."
    ),
]


def _store(settings: Settings):  # noqa: ANN202 - (engine, session factory)
    from agora.db.engine import open_store, session_factory

    engine = open_store(settings)
    return engine, session_factory(engine)


@app.command()
def migrate() -> None:
    """Create or upgrade the database schema."""
    from agora.db.engine import display_url

    settings = get_settings()
    _store(settings)
    console.print(f"schema is up to date at {display_url(settings.resolved_database_url)}")


@app.command("import")
def import_(
    path: Annotated[Path, typer.Argument(help="File or folder to import.")],
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format",
            help="agora | stackexchange | movielens | lastfm | ciaodvd | benchmark | gorse "
            "(Gorse's users.csv, items.csv, feedback.csv; default: detected from the path)",
        ),
    ] = None,
    kind: Annotated[
        str | None, typer.Option(help="For Agora CSV files: the kind of every row.")
    ] = None,
    bulk: Annotated[
        bool,
        typer.Option(
            "--bulk",
            help="PostgreSQL and Agora files: stream the events through COPY (same checks and "
            "result, several times faster; see docs/postgresql-at-volume.md).",
        ),
    ] = False,
) -> None:
    """Import a file or dump; a file with any bad line is rejected whole, with every problem."""
    if fmt == "gorse":
        from agora.gorse import cli as gorse_cli

        gorse_cli.import_gorse(path)
        return
    if bulk:
        _import_bulk(path, fmt, kind)
        return
    from agora.db.engine import transaction
    from agora.ingest.errors import ImportFailed, UnknownFormat
    from agora.ingest.registry import load_any
    from agora.ingest.service import Rejected, add_dataset

    settings = get_settings()
    if not path.exists():
        error(f"{path}: no such file or folder")
        raise typer.Exit(2)
    options = {
        "event_types": settings.event_types,
        "max_future_seconds": settings.max_future_seconds,
        "earliest": settings.earliest_timestamp,
        **({"kind": kind} if kind else {}),
    }
    try:
        with console.status(f"reading {path}"):
            dataset = load_any(path, fmt, **options)
    except (ImportFailed, UnknownFormat, TypeError) as exc:
        error(str(exc))
        raise typer.Exit(2) from exc
    counts = dataset.counts()
    _, factory = _store(settings)
    try:
        with _progress() as progress:
            tasks = {k: progress.add_task(f"writing {k}", total=n) for k, n in counts.items() if n}
            with transaction(factory) as session:
                summary = add_dataset(
                    session,
                    dataset,
                    settings.event_types,
                    settings.max_future_seconds,
                    progress=lambda k, n: progress.advance(tasks[k], n),
                    earliest=settings.earliest_timestamp,
                )
    except Rejected as exc:
        error(f"{path}: {exc}; nothing was written")
        raise typer.Exit(2) from exc
    written = ", ".join(f"{n:,} {k}" for k, n in summary.written.items())
    console.print(f"imported {path}: {written}; {summary.duplicate_events:,} events already stored")


def _import_bulk(path: Path, fmt: str | None, kind: str | None) -> None:
    """``agora import --bulk``: one Agora file into PostgreSQL through COPY."""
    from agora.db.engine import transaction
    from agora.ingest.bulk import NotBulkable, bulk_import, count_lines
    from agora.ingest.errors import ImportFailed, UnknownFormat
    from agora.ingest.registry import detect_format

    settings = get_settings()
    try:
        chosen = fmt or detect_format(path)
    except (FileNotFoundError, UnknownFormat) as exc:
        error(str(exc))
        raise typer.Exit(2) from exc
    if chosen != "agora":
        error(f"{path}: --bulk reads Agora files (.jsonl, .ndjson, .csv), not {chosen!r}")
        raise typer.Exit(2)
    if not settings.resolved_database_url.startswith("postgresql"):
        error(
            "--bulk needs a PostgreSQL store (AGORA_DATABASE_URL); SQLite takes the normal import"
        )
        raise typer.Exit(2)
    _, factory = _store(settings)
    started = time.perf_counter()
    try:
        with _progress() as progress:
            task = progress.add_task("reading and copying lines", total=count_lines(path))
            with transaction(factory) as session:
                summary = bulk_import(
                    session,
                    path,
                    settings.event_types,
                    kind=kind,
                    max_future_seconds=settings.max_future_seconds,
                    earliest=settings.earliest_timestamp,
                    progress=lambda n: progress.advance(task, n),
                )
    except (ImportFailed, NotBulkable, ValueError) as exc:
        error(str(exc))
        raise typer.Exit(2) from exc
    seconds = time.perf_counter() - started
    written = ", ".join(f"{n:,} {k}" for k, n in summary.written.items())
    events = summary.written.get("events", 0) + summary.duplicate_events
    console.print(
        f"imported {path}: {written}; {summary.duplicate_events:,} events already stored "
        f"({seconds:,.1f} s, {events / seconds:,.0f} events/s)"
    )


@app.command()
def export(
    path: Annotated[Path, typer.Argument(help="Folder to write (created if needed).")],
    fmt: Annotated[
        str,
        typer.Option(
            "--format",
            help="gorse: Gorse's users.csv, items.csv and feedback.csv; parquet: the events, "
            "users and items tables as Parquet, for `agora train --engine spark --from-parquet`.",
        ),
    ] = "gorse",
) -> None:
    """Write the store in another engine's format, to move it there (or back)."""
    if fmt == "gorse":
        from agora.gorse import cli as gorse_cli

        gorse_cli.export_gorse(path)
        return
    if fmt != "parquet":
        raise fail(f"unknown export format {fmt!r} (known: gorse, parquet)")
    from agora.db.spark.parquet import export_parquet

    _, factory = _store(get_settings())
    with _progress() as progress, factory() as session:
        tasks: dict[str, int] = {}

        def chunk(table: str, written: int, total: int) -> None:
            if table not in tasks:
                tasks[table] = progress.add_task(f"exporting {table}", total=total)
            progress.update(tasks[table], completed=written)

        try:
            done = export_parquet(session, path, chunk)
        except ImportError as exc:
            raise fail(f"Parquet needs pyarrow: pip install 'agora[spark]' ({exc})") from exc
    rows = ", ".join(f"{n:,} {table}" for table, n in done.rows.items())
    console.print(f"wrote {rows} to {done.path}")


@app.command()
def train(
    models: Annotated[
        str | None,
        typer.Option(
            "--models",
            "--model",
            help="Comma-separated model names (default: settings.models); 'auto' chooses one "
            "(or a blend) on a holdout and fits it on all events.",
        ),
    ] = None,
    validate: Annotated[
        bool, typer.Option(help="Measure holdout Recall/NDCG@10 before the final fit.")
    ] = True,
    budget_minutes: Annotated[
        float | None,
        typer.Option(
            min=0.1,
            help="With --model auto: choose (every family, the graph model included) and fit "
            "on all events within this time; half of it for the choice.",
        ),
    ] = None,
    candidates: Annotated[
        str | None,
        typer.Option(help="With --model auto: comma-separated models to try (default: all)."),
    ] = None,
    engine: Annotated[
        str,
        typer.Option(help="python: in this process; spark: with Spark (als, itemknn, trending)."),
    ] = "python",
    spark_master: SparkMasterOption = "local[2]",
    from_parquet: Annotated[
        Path | None,
        typer.Option(help="With --engine spark: read an `agora export --format parquet` folder."),
    ] = None,
    event_log: Annotated[
        Path | None,
        typer.Option(help="With --engine spark: write Spark's event log (stage timings) here."),
    ] = None,
    spark_als: SparkAlsOption = "cg",
) -> None:
    """Fit the configured models on the store's events and save new versions."""
    settings = get_settings()
    names = [m.strip() for m in models.split(",")] if models else settings.models
    if engine not in ("python", "spark"):
        raise fail(f"unknown engine {engine!r} (known: python, spark)")
    if engine == "spark":
        if budget_minutes is not None or candidates:
            raise fail("--budget-minutes and --candidates go with --model auto, not --engine spark")
        _train_on_spark(settings, names, validate, spark_master, from_parquet, event_log, spark_als)
        return
    _check_in_process_options(names, budget_minutes, candidates, from_parquet, event_log)
    tried = [c.strip() for c in candidates.split(",") if c.strip()] if candidates else None
    results = _train_in_process(settings, names, validate, budget_minutes, tried)
    _print_trained(results)


def _check_in_process_options(
    names: list[str],
    budget_minutes: float | None,
    candidates: str | None,
    from_parquet: Path | None,
    event_log: Path | None,
) -> None:
    """Refuse the Spark options, and the auto options without ``--model auto``, before any
    work is done (exit code 2)."""
    from agora.evaluation.training import AUTO

    if from_parquet is not None or event_log is not None:
        raise fail("--from-parquet and --event-log go with --engine spark")
    if (budget_minutes is not None or candidates) and AUTO not in names:
        error("--budget-minutes and --candidates go with --model auto")
        raise typer.Exit(2)


def _train_in_process(
    settings: Settings,
    names: list[str],
    validate: bool,
    budget_minutes: float | None,
    tried: list[str] | None,
) -> list[TrainedModel]:
    """The models ``names`` fitted in this process on the store's events and saved, with a
    progress line per model and, for auto, each stage of its selection printed."""
    from agora.evaluation.training import train_from_store

    _, factory = _store(settings)
    print_stage = _auto_stage_printer()
    with _progress() as progress, factory() as session:
        task = progress.add_task("reading events from the store", total=len(names))

        def step(name: str, stage: str) -> None:
            if stage.startswith("skipped"):
                err.print(f"{name} {stage}", style="yellow")
                progress.advance(task)
                return
            progress.update(task, description=f"{name}: {stage}")
            if stage == "saved":
                progress.advance(task)

        try:
            return train_from_store(
                session,
                names,
                settings.model_dir,
                settings.event_weights,
                params=settings.model_params,
                validate=validate,
                keep_versions=settings.keep_versions,
                on_loaded=_print_loaded,
                on_step=step,
                budget_seconds=budget_minutes * 60 if budget_minutes else None,
                on_stage=print_stage,
                candidates=tried,
            )
        except ValueError as exc:
            error(str(exc))
            raise typer.Exit(2) from exc


def _auto_stage_printer() -> Callable[[str, str, float], None]:
    """A hook that prints each stage of an auto selection with the minutes since now and the
    minutes of the budget left (when there is a budget)."""
    started = time.monotonic()

    def stage(what: str, name: str, left: float) -> None:
        elapsed = time.monotonic() - started
        remaining = f", {left / 60:.1f} min of the budget left" if left != float("inf") else ""
        console.print(f"auto [{elapsed / 60:.1f} min]: {what} {name}{remaining}")

    return stage


def _print_loaded(interactions: Interactions) -> None:
    """Say what the models are trained on, once the events are read."""
    console.print(
        f"training on {interactions.n_users:,} users x {interactions.n_items:,} items, "
        f"{interactions.matrix.nnz:,} interactions"
    )


def _print_trained(results: list[TrainedModel]) -> None:
    """The saved models' table, then each auto selection's candidates and its time spent."""
    console.print(_trained_table(results))
    for r in results:
        if "selection" in r.metrics:
            console.print(_selection_table(r.metrics["selection"], "selection on the holdout"))
            spent = r.metrics["selection"].get("spent_seconds")
            if spent is not None:
                budget = r.metrics["selection"]["budget_seconds"]
                console.print(f"auto took {spent / 60:.1f} of {budget / 60:g} min before saving")


def _train_on_spark(
    settings: Settings,
    names: list[str],
    validate: bool,
    master: str,
    parquet_dir: Path | None,
    event_log: Path | None,
    spark_als: str = "cg",
) -> None:
    """``agora train --engine spark``: the models fitted by Spark, each step's wall time told."""
    from agora.db.pseudonyms import sealer_for_session
    from agora.db.spark.session import SparkUnavailable, check_spark
    from agora.models.spark_training import (
        SPARK_ALS_SOLVERS,
        NotOnSpark,
        check_spark_models,
        train_store_on_spark,
    )

    if spark_als not in SPARK_ALS_SOLVERS:
        raise fail(f"unknown --spark-als {spark_als!r} (known: {', '.join(SPARK_ALS_SOLVERS)})")
    try:
        check_spark_models(names)
        check_spark()
    except (NotOnSpark, SparkUnavailable) as exc:
        raise fail(str(exc)) from exc
    _, factory = _store(settings)
    with factory() as session:
        ids = sealer_for_session(session)

    def step(model: str, what: str, seconds: float) -> None:
        console.print(f"{model}: {what} {seconds:.1f} s")

    def loaded(interactions: Interactions) -> None:
        console.print(
            f"training on {interactions.n_users:,} users x {interactions.n_items:,} items, "
            f"{interactions.matrix.nnz:,} interactions (Spark, {master})"
        )

    try:
        results = train_store_on_spark(
            names,
            settings.model_dir,
            settings.event_weights,
            database_url=None if parquet_dir else settings.resolved_database_url,
            parquet_dir=parquet_dir,
            params=settings.model_params,
            validate=validate,
            keep_versions=settings.keep_versions,
            ids=ids,
            master=master,
            event_log_dir=event_log,
            on_step=step,
            on_loaded=loaded,
            als_solver=spark_als,
        )
    except (ValueError, FileNotFoundError) as exc:
        raise fail(str(exc)) from exc
    console.print(_trained_table(results))
    if event_log is not None:
        console.print(f"Spark's event log is in {event_log}")


def _trained_table(results: list) -> Table:
    """One row per saved model: its version, fit time and holdout metrics (either engine)."""
    table = Table("model", "version", "fit s", "holdout NDCG@10", "holdout Recall@10")
    for r in results:
        table.add_row(
            r.name,
            r.path.name,
            f"{r.fit_seconds:.2f}",
            f"{r.metrics.get('holdout_ndcg@10', float('nan')):.4f}",
            f"{r.metrics.get('holdout_recall@10', float('nan')):.4f}",
        )
    return table


def _selection_table(selection: dict, title: str) -> Table:
    """Every candidate of an auto selection: valid NDCG, fit seconds, the chosen one starred."""
    table = Table("candidate", "valid NDCG", "fit s", title=title)
    for row in selection["candidates"]:
        if "skipped" in row:
            table.add_row(f"{row['name']} (skipped: {row['skipped']})", "", "")
            continue
        chosen = " *" if row["name"] == selection["chosen"] else ""
        table.add_row(row["name"] + chosen, f"{row['valid_ndcg']:.4f}", f"{row['fit_seconds']:.1f}")
    return table


@app.command("prune-impressions")
def prune_impressions(
    older_than_days: Annotated[float, typer.Option(min=0, help="Keep the last N days.")] = 30.0,
) -> None:
    """Delete feed impressions older than N days (the table grows by one row per item shown)."""
    from agora.db.engine import transaction
    from agora.feed.service import prune_impressions as prune

    _, factory = _store(get_settings())
    before = datetime.now(UTC) - timedelta(days=older_than_days)
    with transaction(factory) as session:
        deleted = prune(session, before)
    console.print(f"deleted {deleted:,} impressions served before {before:%Y-%m-%d %H:%M} UTC")


erase_app = typer.Typer(
    help="Erase a user or an item by id: any stored id, also one no route can address "
    "(e.g. containing '/' or a newline, stored before ids were checked).",
    no_args_is_help=True,
)


@erase_app.command("user")
def erase_user(user_id: Annotated[str, typer.Argument(help="The user's external id.")]) -> None:
    """Erase a user from the tables and the models (as `agora users erase`; their items stay,
    authorless)."""
    from agora.privacy.cli import erase_everywhere

    erase_everywhere(user_id, "keep")


@erase_app.command("item")
def erase_item(item_id: Annotated[str, typer.Argument(help="The item's external id.")]) -> None:
    """Delete an item with every event on it."""
    from agora.db.engine import transaction
    from agora.ingest.service import delete_item

    _, factory = _store(get_settings())
    with transaction(factory) as session:
        found = delete_item(session, item_id)
    if not found:
        err.print(f"no item {item_id!r} is stored")
        raise typer.Exit(1)
    console.print(f"erased item {item_id!r}", markup=False)


@app.command()
def recommend(
    user_id: Annotated[str, typer.Argument(help="External user id.")],
    n: Annotated[int, typer.Option(min=1, max=1000)] = 10,
    model: Annotated[str | None, typer.Option(help="Model name (default: settings).")] = None,
) -> None:
    """Print recommendations for one user from the newest trained model (never their own
    posts; at most max_per_thread items of one thread, see AGORA_FEED)."""
    from agora.client import Agora
    from agora.serving.service import ModelUnavailable

    try:
        with Agora(get_settings()) as agora:
            recs = agora.recommend(user_id, n, model)
    except ModelUnavailable as exc:
        error(str(exc))
        raise typer.Exit(2) from exc
    _print_recommendations(user_id, recs)


def _print_recommendations(user_id: str, recs: list) -> None:  # noqa: ANN401
    table = Table("#", "item", "score", "model", "title", title=f"for user {user_id}")
    for rank, r in enumerate(recs, 1):
        table.add_row(str(rank), r.item_id, f"{r.score:.4f}", r.model, (r.title or "")[:70])
    console.print(table)


@app.command("eval")
def eval_(
    split: Annotated[Path, typer.Option(help="Folder with train.tsv, valid.tsv, test.tsv.")],
    model: Annotated[
        str, typer.Option(help="Model name, or 'auto' (best of --candidates on valid).")
    ],
    out: Annotated[Path, typer.Option(help="Output folder.")],
    params: Annotated[str | None, typer.Option(help="Model params as JSON.")] = None,
    k: Annotated[int, typer.Option(min=1)] = 10,
    tune: Annotated[bool, typer.Option(help="Grid-search params on valid first.")] = False,
    candidates: Annotated[
        str | None,
        typer.Option(
            help="With --model auto: comma-separated models (default itemknn,als,ease,admmslim, "
            "plus social when the split has social.tsv and sasrec when it is split by time)."
        ),
    ] = None,
    budget_minutes: Annotated[
        float | None,
        typer.Option(
            min=0.1,
            help="With --model auto: fit every family, the graph model included, within this "
            "time (the epoch-trained models share what the others leave).",
        ),
    ] = None,
    engine: Annotated[
        str,
        typer.Option(
            help="python: fit in this process; spark: fit with Spark (als, itemknn, "
            "trending), scored the same way."
        ),
    ] = "python",
    spark_master: SparkMasterOption = "local[2]",
    spark_als: SparkAlsOption = "cg",
) -> None:
    """Offline evaluation on a fixed split with full ranking (RecBole's protocol)."""
    import time as clock

    from agora.evaluation.protocol import evaluate

    try:
        parsed = json.loads(params) if params else {}
    except json.JSONDecodeError as exc:
        error(f"--params is not valid JSON: {exc}")
        raise typer.Exit(2) from exc
    names = [c.strip() for c in candidates.split(",") if c.strip()] if candidates else None
    started = clock.monotonic()

    def stage(what: str, name: str, left: float) -> None:
        elapsed = clock.monotonic() - started
        remaining = f", {left / 60:.1f} min of the budget left" if left != float("inf") else ""
        console.print(f"auto [{elapsed / 60:.1f} min]: {what} {name}{remaining}")

    from agora.db.spark.session import SparkUnavailable
    from agora.models.spark_training import SPARK_ALS_SOLVERS, NotOnSpark

    if engine not in ("python", "spark"):
        raise fail(f"unknown engine {engine!r} (known: python, spark)")
    if spark_als not in SPARK_ALS_SOLVERS:
        raise fail(f"unknown --spark-als {spark_als!r} (known: {', '.join(SPARK_ALS_SOLVERS)})")
    try:
        metrics = evaluate(
            split, model, parsed, k, out, tune_params=tune, candidates=names,
            budget_seconds=budget_minutes * 60 if budget_minutes else None, on_stage=stage,
            engine=engine, spark_master=spark_master, spark_als=spark_als,
        )  # fmt: skip
    except (SparkUnavailable, NotOnSpark) as exc:
        raise fail(str(exc)) from exc
    table = Table("metric", "value", title=f"{model} on {split.name}")
    for key, value in metrics.items():
        if isinstance(value, float):
            table.add_row(key, f"{value:.4f}")
    console.print(table)
    if "selection" in metrics:
        console.print(_selection_table(metrics["selection"], "selection on valid"))
    console.print(f"wrote {out / 'recommendations.tsv'}, {out / 'metrics.json'}")


HostOption = Annotated[
    str | None,
    typer.Option(
        help="Address to listen on (default 127.0.0.1, or AGORA_HOST); 0.0.0.0 for every interface."
    ),
]
PortOption = Annotated[
    int | None,
    typer.Option(min=1, max=65535, help="TCP port to listen on (default 8000, or AGORA_PORT)."),
]


@app.command()
def serve(
    host: HostOption = None,
    port: PortOption = None,
    workers: Annotated[
        int,
        typer.Option(
            min=1, help="Worker processes (each with its own models and caches in memory)."
        ),
    ] = 1,
) -> None:
    """Serve the API (OpenAPI at /docs). SIGHUP or POST /admin/reload loads new models."""
    settings = get_settings()
    with _refresher_beside(settings):
        if workers > 1:
            _serve_workers(settings, host, port, workers)
        else:
            _serve(settings, host, port)


def _serve_workers(settings: Settings, host: str | None, port: int | None, workers: int) -> None:
    """``agora serve --workers N``: uvicorn's supervisor and N worker processes."""
    import uvicorn

    from agora.api.logs import logging_config
    from agora.api.metrics import MULTIPROCESS_ENV

    host, port = host or settings.host, port or settings.port
    # the workers share their metrics through files here (prometheus_client's
    # multiprocess mode); a fresh folder per start, as that mode requires
    own_metrics_dir = None
    if not os.environ.get(MULTIPROCESS_ENV):
        own_metrics_dir = tempfile.mkdtemp(prefix="agora-metrics-")
        os.environ[MULTIPROCESS_ENV] = own_metrics_dir
    console.print(f"serving on http://{host}:{port} with {workers} workers (Ctrl-C stops)")
    # each worker builds its app from the environment; SIGHUP restarts them (new models).
    # On SIGTERM or SIGINT uvicorn's supervisor sends SIGTERM to every worker and waits for
    # it: each shuts down cleanly, writing its buffered feed impressions (a real-process
    # test, tests/feed/test_impressions_serve.py, holds this)
    uvicorn.run(
        "agora.api.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_config=logging_config(settings.log_level),
        access_log=False,
        # a worker imports the whole engine before it answers uvicorn's health pings:
        # at the default 5 s, a busy machine saw workers killed and restarted in a loop
        timeout_worker_healthcheck=WORKER_START_SECONDS,
    )
    if own_metrics_dir:
        shutil.rmtree(own_metrics_dir, ignore_errors=True)
    console.print("stopped")


@contextmanager
def _refresher_beside(settings: Settings) -> Iterator[None]:
    """While the server runs: its refresher as an ``agora worker`` child process
    (``refresh_in_serve`` and ``refresher_process``, one shard; else the API runs it in a
    thread), so that the refresher's rounds do not hold the API's interpreter lock. The API then
    runs none of its own: this process's settings, and the environment the workers of
    ``--workers N`` read theirs from, say so.
    Users a page finds without a current record reach the child through the candidate store's
    queue of wanted users, as they reach a separate ``agora worker``. The child is stopped
    (SIGTERM, then SIGKILL after ``REFRESHER_STOP_SECONDS``) when the server stops, and stops
    itself if this process dies."""
    feed = settings.feed
    if not (feed.refresh_in_serve and feed.refresher_process and feed.refresher_shards == 1):
        yield
        return
    import subprocess
    import sys

    command = [sys.executable, "-m", "agora.cli.main", "worker", "--parent", str(os.getpid())]
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL)  # its errors on stderr
    settings.feed = feed.model_copy(update={"refresh_in_serve": False})
    os.environ["AGORA_FEED"] = settings.feed.model_dump_json()
    try:
        yield
    finally:
        if child.poll() is None:
            child.terminate()
        try:
            child.wait(timeout=REFRESHER_STOP_SECONDS)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def _serve(settings: Settings, host: str | None, port: int | None) -> None:
    import uvicorn

    from agora.api.app import create_app
    from agora.api.logs import logging_config

    logging.config.dictConfig(logging_config(settings.log_level))
    api = create_app(settings)
    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, lambda *_: api.state.models.reload())
    # uvicorn shuts down gracefully on SIGINT/SIGTERM and then re-raises the signal; these
    # handlers make that re-raise a no-op, so Ctrl-C ends with "stopped" and exit code 0.
    for stop_signal in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stop_signal, lambda *_: None)
    host, port = host or settings.host, port or settings.port
    console.print(
        f"serving on http://{host}:{port}  (docs: http://{host}:{port}/docs; operator console: "
        f"http://{host}:{port}/console/, sign in with an API key; Ctrl-C stops)"
    )
    uvicorn.run(
        api,
        host=host,
        port=port,
        log_config=logging_config(settings.log_level),
        access_log=False,
    )
    console.print("stopped")


@app.command()
def worker(
    once: Annotated[
        bool, typer.Option("--once", help="Refresh every user's candidates once, then exit.")
    ] = False,
    shard: Annotated[
        int | None,
        typer.Option(
            "--shard",
            min=0,
            help="Refresh only this shard of the users (0 to feed.refresher_shards - 1); "
            "without it, every shard, one process each.",
        ),
    ] = None,
    parent: Annotated[
        int | None,
        typer.Option(hidden=True, help="Stop when this process (`agora serve`) is gone."),
    ] = None,
) -> None:
    """Keep every user's feed candidates ready (the refresher; `agora serve` runs one too).

    Several may run against one store: one works per shard at a time (a Redis lock with
    AGORA_REDIS_URL, else a file lock in the data folder), the others take over when it stops
    or dies. With AGORA_FEED='{"refresher_shards": N}' the users are split N ways by user pk:
    start one `agora worker --shard I` per shard (on as many nodes), or `agora worker` alone to
    run them all here."""
    from agora.db.partitions import keep_months_ahead
    from agora.feed.refresher import run_led
    from agora.feed.store import Shard
    from agora.wiring import wire

    settings = get_settings()
    shards = settings.feed.refresher_shards
    if shard is None and shards > 1:
        _run_shards(shards, once)
        return
    try:
        part = Shard(shard or 0, shards)
    except ValueError as exc:
        raise fail(f"--shard {shard}: {exc} (AGORA_FEED's refresher_shards is {shards})") from None
    named = f" (shard {part})" if shards > 1 else ""
    stop = threading.Event()
    engine, _ = _store(settings)
    made = keep_months_ahead(engine, stop)  # PostgreSQL's event partitions, made ahead
    if made:
        console.print(f"event partitions made ahead: {', '.join(made)}")
    wiring = wire(settings)
    wiring.models.reload()
    refresher = wiring.refresher(reload_models=True, shard=part)
    if once:
        with _progress() as progress:
            task = progress.add_task(f"refreshing feed candidates{named}", total=None)
            t0 = time.perf_counter()
            stored = refresher.refresh_all(
                lambda done, total: progress.update(task, completed=done, total=total)
            )
        elapsed = time.perf_counter() - t0
        console.print(f"{stored:,} users' candidates refreshed in {elapsed:.1f} s{named}")
        stop.set()
        return

    def stopping() -> None:
        stop.set()
        refresher.stopping.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping())
    if parent is not None:
        threading.Thread(
            target=_stop_without_parent, args=(parent, stop, stopping), daemon=True
        ).start()
    console.print(f"feed refresher{named}: waiting for its turn, then refreshing (Ctrl-C stops)")
    run_led(refresher, wiring.leadership(part), stop)
    console.print("stopped")


def _stop_without_parent(parent: int, stop: threading.Event, stopping: Callable[[], None]) -> None:
    """Stop the refresher of ``agora serve`` (process ``parent``) once that process is gone
    (killed without a chance to stop it: its children are handed to another parent)."""
    while not stop.wait(1.0):
        if os.getppid() != parent:
            stopping()


def _run_shards(count: int, once: bool) -> None:
    """Every shard's refresher in a process of its own; this one passes Ctrl-C and SIGTERM on
    and waits for them."""
    import subprocess
    import sys

    command = [sys.executable, "-m", "agora.cli.main", "worker", *(["--once"] if once else [])]
    console.print(f"feed refresher: {count} shards, one process each")
    t0 = time.perf_counter()
    children = [subprocess.Popen([*command, "--shard", str(i)]) for i in range(count)]

    def forward(signum: int, _frame: object) -> None:
        for child in children:
            child.send_signal(signum)

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, forward)
    codes = [child.wait() for child in children]
    failed = [f"{i} (exit {code})" for i, code in enumerate(codes) if code]
    if failed:
        raise fail(f"feed refresher: shard {', '.join(failed)} failed")
    if once:
        console.print(f"every shard refreshed in {time.perf_counter() - t0:.1f} s")
    else:
        console.print("stopped")


@app.command()
def demo(
    host: HostOption = None,
    port: PortOption = None,
    serve_api: Annotated[bool, typer.Option("--serve/--no-serve")] = True,
) -> None:
    """Import the bundled community, train the default models, show recommendations, serve."""
    from agora.db.queries import counts

    settings = get_settings()
    if not settings.api_key:
        settings.api_key = os.environ.get("AGORA_API_KEY") or secrets.token_urlsafe(24)
        console.print(Text.assemble(("generated admin API key:", "bold"), f" {settings.api_key}"))
    else:
        console.print("using the admin API key from AGORA_API_KEY")
    console.print(f"data folder: {settings.data_dir.resolve()}")
    _, factory = _store(settings)
    with factory() as session:
        stored = counts(session)
    if stored["events"] == 0:
        console.print(f"importing the bundled community from {BUNDLED_COMMUNITY}")
        import_(BUNDLED_COMMUNITY, "stackexchange", None)
    else:
        console.print(f"the store already holds {stored['events']:,} events; not importing")
    train(None, True)
    console.print("a few real recommendations:")
    for user in ("28", "17"):
        recommend(user, 5, None)
    if serve_api:
        with _refresher_beside(settings):
            _serve(settings, host, port)


app.add_typer(erase_app, name="erase")

if __name__ == "__main__":
    app()
