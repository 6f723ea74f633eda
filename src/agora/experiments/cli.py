"""``agora experiment ...``: create, list, start and stop A/B tests on feed variants, take the
guardrail looks that are due, write a report with plots, and plan a sample size."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from agora.cli.shell import console, fail, read_specs, store_sessions
from agora.config import get_settings
from agora.db.engine import transaction
from agora.experiments import service, stats
from agora.experiments.report import write_report
from agora.experiments.schemas import ExperimentIn

app = typer.Typer(help="A/B tests on feed variants.", no_args_is_help=True)

ExperimentArg = Annotated[str, typer.Argument(help="Experiment id.")]


@app.command()
def create(
    path: Annotated[Path, typer.Argument(help="JSON file: one experiment object or a list.")],
    start: Annotated[bool, typer.Option("--start", help="Start them at once.")] = False,
) -> None:
    """Create experiments from a JSON file (fields as POST /experiments); all or nothing."""
    specs = read_specs(path, ExperimentIn)
    now = datetime.now(UTC)
    try:
        with transaction(store_sessions(get_settings())) as session:
            done = [
                service.create_experiment(
                    session, spec.model_copy(update={"start": start or spec.start}), now
                )[1]
                for spec in specs
            ]
    except service.ExperimentConflict as exc:
        raise fail(f"{path}: {exc}; nothing was written") from exc
    console.print(f"{sum(done)} experiment(s) created, {len(done) - sum(done)} already stored")


@app.command("list")
def list_() -> None:
    """Every experiment with its status and exposed users per arm."""
    with store_sessions(get_settings())() as session:
        rows = [service.experiment_out(session, r) for r in service.list_experiments(session)]
    table = Table(title="experiments")
    for column in ("id", "status", "arms (exposed users)", "planned", "stop reason"):
        table.add_column(column)
    for e in rows:
        arms = ", ".join(f"{a['name']} ({a['exposed_users']:,})" for a in e["arms"])
        table.add_row(
            e["experiment_id"], e["status"], arms, f"{e['planned_users']:,}", e["stop_reason"] or ""
        )
    console.print(table)


@app.command()
def start(experiment_id: ExperimentArg) -> None:
    """Start a draft experiment: feeds apply its arms from now on."""
    try:
        with transaction(store_sessions(get_settings())) as session:
            service.start_experiment(session, experiment_id, datetime.now(UTC))
    except (service.UnknownExperiment, service.ExperimentConflict) as exc:
        raise fail(str(exc)) from exc
    console.print(f"experiment {experiment_id} is running")


@app.command()
def stop(
    experiment_id: ExperimentArg,
    reason: Annotated[str, typer.Option(help="Why (kept with the experiment).")] = (
        "stopped by an operator"
    ),
) -> None:
    """Stop an experiment: users get the plain feed again."""
    try:
        with transaction(store_sessions(get_settings())) as session:
            row = service.stop_experiment(session, experiment_id, datetime.now(UTC), reason)
    except service.UnknownExperiment as exc:
        raise fail(str(exc)) from exc
    console.print(f"experiment {experiment_id} is stopped: {row.stop_reason}")


@app.command()
def check() -> None:
    """Take the guardrail looks that are due (`agora serve` also does this in the background)."""
    with transaction(store_sessions(get_settings())) as session:
        stopped = service.take_due_looks(session, datetime.now(UTC))
    console.print(
        f"stopped by a guardrail: {', '.join(stopped)}" if stopped else "no guardrail tripped"
    )


@app.command()
def report(
    experiment_id: ExperimentArg,
    out: Annotated[Path, typer.Option("--out", help="Folder for report.md and the PNGs.")],
    confidence: Annotated[float, typer.Option(min=0.5, max=0.999)] = 0.95,
) -> None:
    """Write a Markdown report with a plot per metric (per arm, and vs control with CIs)."""
    try:
        with store_sessions(get_settings())() as session:
            path = write_report(session, experiment_id, out, datetime.now(UTC), confidence)
    except service.UnknownExperiment as exc:
        raise fail(str(exc)) from exc
    console.print(f"report written to {path}")


@app.command()
def power(
    baseline: Annotated[float, typer.Option(help="Control rate (proportion metrics).")] = 0.05,
    mde: Annotated[float, typer.Option(help="Smallest absolute change worth detecting.")] = 0.01,
    alpha: Annotated[float, typer.Option(help="Two-sided false-positive rate.")] = 0.05,
    power: Annotated[float, typer.Option("--power", help="Wanted power.")] = 0.8,
    sd: Annotated[
        float | None, typer.Option(help="Per-user standard deviation: plan a mean metric.")
    ] = None,
) -> None:
    """Users per arm to detect ``mde`` (two proportions, or means when ``--sd`` is given)."""
    try:
        if sd is None:
            n = stats.sample_size_proportions(baseline, mde, alpha, power)
            what = f"{baseline:g} -> {baseline + mde:g}"
            method = "two-proportion z-test, normal approximation"
        else:
            n = stats.sample_size_means(sd, mde, alpha, power)
            what = f"a change of {mde:g} in a mean with sd {sd:g}"
            method = "two-sample z approximation of the t-test"
    except ValueError as exc:
        raise fail(str(exc)) from exc
    console.print(
        f"{n:,} users per arm ({2 * n:,} for two arms) detect {what} with power {power:g} "
        f"at two-sided alpha {alpha:g} ({method})"
    )
