"""How an answer made of differentially private figures is marked over HTTP: the ``X-Privacy``
header, the ``privacy`` field of a JSON body and their OpenAPI text (:mod:`agora.api.dp`
releases the figures; a route that may answer one declares these, whatever its domain)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

HEADER = "X-Privacy"
#: OpenAPI text of the answers a route that releases figures can add.
RESPONSES: dict[int | str, dict[str, Any]] = {
    429: {
        "description": "Differential privacy: today's privacy budget is spent and this figure "
        "was never released before; `Retry-After` says when the next day's budget starts."
    },
}
HEADER_DOC = {
    HEADER: {
        "description": "`dp; epsilon=...; mechanism=...` (with `; stale` for an earlier "
        "release) when the figures are differentially private, `exact` for admin keys while "
        "differential privacy is on; absent when it is off.",
        "schema": {"type": "string"},
    }
}


class PrivacyOut(BaseModel):
    """How a released figure was made private (absent: the figure is exact)."""

    mechanism: str = Field(description="OpenDP mechanisms used, e.g. `discrete_laplace`.")
    epsilon: float = Field(description="Epsilon this figure spent.")
    max_partitions: int = Field(description="Most cells one person counts in.")
    max_per_partition: int = Field(description="Most records one person counts in one cell.")
    released: datetime = Field(description="When this figure was released.")
    valid_until: datetime = Field(description="Until when it is answered again unchanged.")
    stale: bool = Field(
        False, description="True: today's budget is spent and this is an earlier release."
    )


class Marked(BaseModel):
    """A response that may carry a released (differentially private) figure."""

    privacy: PrivacyOut | None = Field(
        None,
        description="Present when the figures are differentially private (see `X-Privacy`).",
        exclude_if=lambda value: value is None,
    )
