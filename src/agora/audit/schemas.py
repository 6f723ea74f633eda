"""Response shapes of the audit log's routes."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class AuditEntryOut(BaseModel):
    """One admin request that changed something (or tried to: see ``status``)."""

    id: int = Field(description="The entry's id; newer entries have larger ids.")
    at: datetime = Field(description="When it was answered (UTC).")
    key_id: str = Field(description="Fingerprint of the API key used (never the key).")
    method: str
    route: str = Field(description="The route's template, e.g. `/campaigns/{campaign_id}`.")
    path_params: dict[str, str | None] = Field(
        description="The path ids the request named; `null` where the route erases a person "
        "(`DELETE /users/{user_id}` keeps no id)."
    )
    status: int = Field(description="The status the request was answered with.")
    request_id: str | None = Field(description="The request's `X-Request-ID`, as in the logs.")


class AuditPageOut(BaseModel):
    entries: list[AuditEntryOut]
    next_cursor: int | None = Field(
        description="Pass as `cursor` for the next (older) page; null on the last page."
    )
