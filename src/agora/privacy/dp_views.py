"""``GET /admin/privacy/budget`` (admin): the differential privacy budget of a UTC day, what
it spent and every figure it released (see :mod:`agora.api.dp`)."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BeforeValidator

from agora.api import dp, dp_budget
from agora.api.auth import AUTH_ERRORS, AdminScope
from agora.api.deps import SessionFactoryDep, SettingsDep
from agora.api.routing import OneHopRoute
from agora.privacy.schemas import BudgetOut, FigureOut, ReleaseOut

router = APIRouter(route_class=OneHopRoute, tags=["privacy"])

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$", re.ASCII)


def _iso_date(value: Any) -> Any:
    if not isinstance(value, str) or not _DATE.match(value):
        raise ValueError("expected a date YYYY-MM-DD, e.g. 2026-12-05")
    return value


#: A UTC day in a query: YYYY-MM-DD only (a bare number is refused, as the schema says).
QueryDate = Annotated[date, BeforeValidator(_iso_date)]


@router.get(
    "/admin/privacy/budget",
    summary="The day's differential privacy budget, its spend and its releases",
    dependencies=[AdminScope],
    response_model=BudgetOut,
    responses=AUTH_ERRORS,
)
def get_budget(
    sessions: SessionFactoryDep,
    settings: SettingsDep,
    day: Annotated[
        QueryDate | None, Query(description="The UTC day, YYYY-MM-DD (default: today).")
    ] = None,
) -> BudgetOut:
    """Privacy accounting for admins: epsilon spent on ``day`` out of the daily budget, and
    every figure released that day (what was asked, at what cost, with which mechanism)."""
    day = day or datetime.now(UTC).date()
    budget = settings.dp_budget
    found = dp_budget.report(sessions, day, budget)
    on = dp.enabled(settings)
    figures = []
    for name, spec in dp.FIGURES.items():
        bounds = dp.figure_bounds(settings, name)
        figures.append(
            FigureOut(
                figure=name,
                description=spec.description,
                epsilon=dp.figure_epsilon(settings, name) if on else None,
                max_partitions=bounds.max_partitions,
                max_per_partition=bounds.max_per_partition,
            )
        )
    return BudgetOut(
        enabled=on,
        day=found.day,
        budget=budget,
        spent=found.spent,
        remaining=None if budget is None else max(budget - found.spent, 0.0),
        period_hours=settings.dp_period_hours,
        figures=figures,
        releases=[
            ReleaseOut(
                figure=r.figure,
                params=r.params,
                epsilon=r.epsilon,
                mechanism=r.mechanism,
                released=r.released,
                period=r.period,
            )
            for r in found.releases
        ],
    )
