"""The experiments API's shapes: an experiment with its arms and guardrails, assignments,
results per arm with confidence intervals and p-values, and the guardrail looks."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from agora.experiments.models import EXPERIMENT_STATUSES
from agora.ingest.schemas import ExternalId

METRICS: tuple[str, ...] = ("ctr", "engagement_per_user", "retention")
Metric = Literal[METRICS]  # type: ignore[valid-type]
Status = Literal[EXPERIMENT_STATUSES]  # type: ignore[valid-type]
ArmName = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")


class FeedOverrides(BaseModel):
    """Feed controls an arm sets for its users (same ranges as the platform's feed settings);
    a control left out keeps the user's own value or the platform default."""

    model_config = ConfigDict(extra="forbid")

    diversity: float | None = Field(None, ge=0, le=1)
    social_weight: float | None = Field(None, ge=0, le=5)
    freshness: float | None = Field(None, ge=0, le=5)
    exploration: float | None = Field(None, ge=0, le=0.5)


class ArmIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = ArmName
    weight: float = Field(1.0, gt=0, le=1000, description="Share of traffic relative to others.")
    overrides: FeedOverrides = Field(default_factory=FeedOverrides)


class GuardrailIn(BaseModel):
    """A metric no arm may make worse than control by more than ``max_drop`` (a share of the
    control's value, 0 = any significant drop) at a look; tripping it stops the experiment."""

    model_config = ConfigDict(extra="forbid")

    metric: Metric
    max_drop: float = Field(0.0, ge=0, le=1)


class ExperimentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    experiment_id: ExternalId
    name: str = Field("", max_length=1000)
    description: str = Field("", max_length=10000)
    salt: str | None = Field(
        None, min_length=1, max_length=64, description="Assignment salt; default: the id."
    )
    arms: list[ArmIn] = Field(min_length=2, max_length=10)
    control: str | None = Field(
        None, description="The arm others are compared with: default first."
    )
    planned_users: int = Field(
        ge=2, le=1_000_000_000, description="Exposed users planned (see `agora experiment power`)."
    )
    looks: int = Field(5, ge=1, le=20, description="Guardrail looks, at k/looks of the plan.")
    alpha: float = Field(0.05, gt=0, lt=0.5, description="Guardrails' overall false-stop rate.")
    ctr_window_hours: float = Field(
        24.0, gt=0, le=720, description="An engagement this soon after an impression is a click."
    )
    retention_day: int = Field(1, ge=1, le=90, description="Retention = active on this day.")
    guardrails: list[GuardrailIn] = Field(default_factory=list, max_length=len(METRICS))
    start: bool = Field(False, description="Start at once (else a draft: POST .../start).")

    @model_validator(mode="after")
    def _valid(self) -> ExperimentIn:
        names = [arm.name for arm in self.arms]
        if len(set(names)) != len(names):
            raise ValueError("arm names must be unique")
        if self.control is not None and self.control not in names:
            raise ValueError(f"control {self.control!r} is not one of the arms {names}")
        if len({g.metric for g in self.guardrails}) != len(self.guardrails):
            raise ValueError("one guardrail per metric")
        return self


class ArmOut(ArmIn):
    exposed_users: int


class ExperimentOut(BaseModel):
    experiment_id: str
    name: str
    description: str
    status: Status
    control: str
    arms: list[ArmOut]
    planned_users: int
    looks: int
    alpha: float
    ctr_window_hours: float
    retention_day: int
    guardrails: list[GuardrailIn]
    started: datetime | None
    stopped: datetime | None
    stop_reason: str | None
    created: datetime


class StopIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field("stopped by an operator", min_length=1, max_length=1000)


class AssignmentOut(BaseModel):
    experiment_id: str
    user_id: str
    arm: str
    overrides: dict[str, float] = Field(description="The feed controls the arm sets.")
    first_exposed: datetime | None = Field(description="When the user was first exposed, if so.")


class ComparisonOut(BaseModel):
    metric: Metric
    method: str
    control_value: float | None
    arm_value: float | None
    difference: float | None
    low: float | None
    high: float | None
    relative: float | None
    se: float | None
    p_value: float | None
    control_n: int
    arm_n: int


class ArmMetricsOut(BaseModel):
    arm: str
    users: int = Field(description="Exposed users.")
    impressions: int
    clicks: int = Field(description="Impressions engaged with within the CTR window.")
    ctr: float | None
    engagements: int
    engagement_per_user: float | None
    retention_users: int = Field(description="Users exposed long enough to measure retention.")
    retained: int
    retention: float | None


class ArmComparisonOut(BaseModel):
    arm: str
    comparisons: list[ComparisonOut]


class LookOut(BaseModel):
    look: int
    users: int
    tripped: bool
    tests: list[dict]
    taken: datetime


class ResultsOut(BaseModel):
    experiment_id: str
    status: Status
    control: str
    as_of: datetime
    confidence: float
    arms: list[ArmMetricsOut]
    comparisons: list[ArmComparisonOut]
    looks: list[LookOut]
    stop_reason: str | None
    notes: list[str]
