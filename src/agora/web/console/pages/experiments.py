"""Experiments: the A/B tests on feed variants; per experiment its arms and their exposure,
each metric per arm against the control with its interval and p-value, and the guardrails'
state (their looks); start a draft and stop a running one (admin keys, as the API).

Like the API's experiment routes, the experiments are shown to admin keys only."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from agora.api.deps import SessionDep, SessionFactoryDep
from agora.api.routing import OneHopRoute
from agora.db.engine import transaction
from agora.experiments import service as experiments
from agora.experiments.schemas import StopIn
from agora.web.console import auth, charts
from agora.web.console.layout import NavEntry, go_to, panel, render, texts, unprocessable

router = APIRouter(route_class=OneHopRoute, prefix="/console")
NAV = NavEntry("/console/experiments", "nav.experiments")
ReadSession = Annotated[auth.ConsoleSession, Depends(auth.require("read"))]
AdminSession = Annotated[auth.ConsoleSession, Depends(auth.require("admin"))]
ExperimentId = Annotated[str, Path(min_length=1, max_length=255)]


@router.get("/experiments", response_class=HTMLResponse, include_in_schema=False)
def experiments_list(request: Request, session: SessionDep, console: ReadSession) -> HTMLResponse:
    """Every experiment with its status and exposed users per arm (admin keys)."""
    rows = None
    if console.can("admin"):
        rows = panel(
            lambda: [
                experiments.experiment_out(session, row)
                for row in experiments.list_experiments(session)
            ],
            "experiments",
        )
    return render(request, "experiments.html", {"experiments": rows, "admin_only": rows is None})


def _next_look(out: dict[str, Any], taken: int) -> dict[str, int] | None:
    """The next guardrail look and the exposed users it waits for (None: all taken)."""
    if taken >= out["looks"]:
        return None
    look = taken + 1
    return {"look": look, "users": math.ceil(look * out["planned_users"] / out["looks"])}


def _exposure_chart(out: dict[str, Any], t: Any) -> dict[str, Any]:
    arms = out["arms"]
    return charts.bars(
        [a["name"] for a in arms],
        [a["exposed_users"] for a in arms],
        t("axis.arm"),
        t("axis.exposed_users"),
    )


@router.get("/experiments/{experiment_id}", response_class=HTMLResponse, include_in_schema=False)
def experiment_page(
    request: Request, experiment_id: ExperimentId, session: SessionDep, console: ReadSession
) -> HTMLResponse:
    """One experiment: arms, exposure, metrics with intervals and p-values, guardrails.

    The statistics are those of GET /experiments/{id}/results, the looks those stored."""
    if not console.can("admin"):
        return render(request, "experiments.html", {"experiments": None, "admin_only": True})
    try:
        row = experiments.get_experiment(session, experiment_id)
    except experiments.UnknownExperiment:
        return render(request, "not_found.html", {"kind": "experiment", "id": experiment_id}, 404)
    out = experiments.experiment_out(session, row)
    found = panel(lambda: experiments.results(session, experiment_id, datetime.now(UTC)), "results")
    taken = max((look["look"] for look in found["looks"]), default=0) if found else 0
    data = {
        "experiment": out,
        "experiment_id": experiment_id,
        "results": found,
        "arms": {a["arm"]: a for a in found["arms"]} if found else {},
        "exposure_chart": _exposure_chart(out, texts(request)),
        "next_look": _next_look(out, taken),
    }
    return render(request, "experiment.html", data)


def _page(key: str) -> str:
    return f"/console/experiments/{quote(key, safe='')}"


def _change(sessions: Any, experiment_id: str, act: Any) -> None:
    """Run ``act(session, experiment_id, now)`` in a transaction (an unknown experiment or a
    conflict answers 404 or 409, as the API does)."""
    with transaction(sessions) as session:
        act(session, experiment_id, datetime.now(UTC))


@router.post("/experiments/{experiment_id}/start", include_in_schema=False)
async def start(
    experiment_id: ExperimentId, sessions: SessionFactoryDep, _: AdminSession
) -> Response:
    """Start a draft experiment, as POST /experiments/{id}/start does."""
    await run_in_threadpool(_change, sessions, experiment_id, experiments.start_experiment)
    return go_to(_page(experiment_id))


@router.post("/experiments/{experiment_id}/stop", include_in_schema=False)
async def stop(
    request: Request, experiment_id: ExperimentId, sessions: SessionFactoryDep, _: AdminSession
) -> Response:
    """Stop an experiment with the reason typed, as POST /experiments/{id}/stop does."""
    reason = (await auth.form_fields(request)).get("reason", "").strip()
    try:
        body = StopIn(reason=reason) if reason else StopIn()
    except ValueError as exc:
        raise unprocessable(exc) from None

    def act(session: Any, eid: str, now: datetime) -> None:
        experiments.stop_experiment(session, eid, now, body.reason)

    await run_in_threadpool(_change, sessions, experiment_id, act)
    return go_to(_page(experiment_id))
