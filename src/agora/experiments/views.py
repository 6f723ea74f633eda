"""HTTP routes of the experiments: create, start and stop A/B tests on feed variants (admin),
their results with confidence intervals (admin), and a user's arm (read). Users get their
arm's feed controls inside their feed pages; nothing here changes a feed directly."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response, status
from fastapi import Path as PathParam

from agora.api.auth import AUTH_ERRORS, AdminScope, ReadScope
from agora.api.body import body_doc, read_json, validate_one
from agora.api.deps import SessionDep, SessionFactoryDep
from agora.api.errors import InvalidRequest, problem
from agora.api.routing import OneHopRoute
from agora.api.types import unstorable_text
from agora.db.engine import transaction
from agora.experiments import service
from agora.experiments.schemas import (
    AssignmentOut,
    ExperimentIn,
    ExperimentOut,
    ResultsOut,
    StopIn,
)

router = APIRouter(route_class=OneHopRoute, tags=["experiments"])

ExperimentId = Annotated[str, PathParam(min_length=1, max_length=255, description="Experiment id.")]
UserId = Annotated[str, PathParam(min_length=1, max_length=255, description="User id.")]
ERRORS = {
    **AUTH_ERRORS,
    404: {"description": "The experiment is not stored."},
}


async def _experiment_body(request: Request) -> ExperimentIn:
    return validate_one(ExperimentIn, await read_json(request))


async def _stop_body(request: Request) -> StopIn:
    """The stop reason; an empty body stops with the default reason."""
    if not (await request.body()).strip():
        return StopIn()
    return validate_one(StopIn, await read_json(request))


@router.post(
    "/experiments",
    summary="Create an experiment (re-sending the same one changes nothing)",
    status_code=status.HTTP_201_CREATED,
    dependencies=[AdminScope],
    openapi_extra=body_doc(ExperimentIn),
    responses={
        **ERRORS,
        200: {"description": "The same experiment was already stored."},
        409: {"description": "An experiment with this id exists with other settings."},
    },
)
def post_experiment(
    body: Annotated[ExperimentIn, Depends(_experiment_body)],
    sessions: SessionFactoryDep,
    response: Response,
) -> ExperimentOut:
    with transaction(sessions) as session:
        row, created = service.create_experiment(session, body, datetime.now(UTC))
        out = ExperimentOut(**service.experiment_out(session, row))
    if not created:
        response.status_code = status.HTTP_200_OK
    return out


@router.get("/experiments", summary="Every experiment", dependencies=[AdminScope], responses=ERRORS)
def get_experiments(session: SessionDep) -> list[ExperimentOut]:
    return [
        ExperimentOut(**service.experiment_out(session, row))
        for row in service.list_experiments(session)
    ]


@router.get(
    "/experiments/{experiment_id}",
    summary="One experiment, with exposed users per arm",
    dependencies=[AdminScope],
    responses=ERRORS,
)
def get_experiment(experiment_id: ExperimentId, session: SessionDep) -> ExperimentOut:
    return ExperimentOut(
        **service.experiment_out(session, service.get_experiment(session, experiment_id))
    )


@router.post(
    "/experiments/{experiment_id}/start",
    summary="Start a draft experiment (feeds apply its arms from now on)",
    dependencies=[AdminScope],
    responses={**ERRORS, 409: {"description": "The experiment is stopped."}},
)
def start_experiment(experiment_id: ExperimentId, sessions: SessionFactoryDep) -> ExperimentOut:
    with transaction(sessions) as session:
        row = service.start_experiment(session, experiment_id, datetime.now(UTC))
        return ExperimentOut(**service.experiment_out(session, row))


@router.post(
    "/experiments/{experiment_id}/stop",
    summary="Stop an experiment (users get the plain feed again); the reason is kept",
    dependencies=[AdminScope],
    openapi_extra=body_doc(StopIn, required=False),
    responses=ERRORS,
)
def stop_experiment(
    experiment_id: ExperimentId,
    body: Annotated[StopIn, Depends(_stop_body)],
    sessions: SessionFactoryDep,
) -> ExperimentOut:
    with transaction(sessions) as session:
        row = service.stop_experiment(session, experiment_id, datetime.now(UTC), body.reason)
        return ExperimentOut(**service.experiment_out(session, row))


@router.get(
    "/experiments/{experiment_id}/assignment/{user_id}",
    summary="The arm a user is (or would be) in, and whether they were exposed",
    description="Assignment is a hash of the experiment's salt and the user id: asking logs "
    "no exposure, and users not stored yet get their arm too.",
    dependencies=[ReadScope],
    responses=ERRORS,
)
def get_assignment(
    experiment_id: ExperimentId, user_id: UserId, session: SessionDep
) -> AssignmentOut:
    faults = unstorable_text(user_id, ("path", "user_id"))
    if faults:  # no stored user can have this id: refuse rather than assign it an arm
        raise InvalidRequest([problem(loc, message) for loc, message in faults])
    return AssignmentOut(**service.assignment(session, experiment_id, user_id))


@router.get(
    "/experiments/{experiment_id}/results",
    summary="Metrics per arm and each arm against control (CIs, p-values), guardrail looks",
    description="CTR (delta method), engagement events per exposed user (Welch), retention on "
    "the experiment's day (two-proportion z-test); each result names its method.",
    dependencies=[AdminScope],
    responses=ERRORS,
)
def get_results(
    experiment_id: ExperimentId,
    session: SessionDep,
    confidence: Annotated[float, Query(ge=0.5, le=0.999, description="Interval level.")] = 0.95,
) -> ResultsOut:
    return ResultsOut(**service.results(session, experiment_id, datetime.now(UTC), confidence))
