"""Moderation: the review queue with classifier scores and flags, uphold or reject from the
page (admin keys, as ``/moderation/*``), and an item's moderation status (any key, as
``GET /moderation/items/{id}``). An upheld item leaves every feed (the feed's catalogue
picks take-downs up within a second)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, status
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from agora.api.deps import SessionDep, SessionFactoryDep
from agora.api.routing import OneHopRoute
from agora.api.types import RowId
from agora.db.engine import transaction
from agora.moderation import service as moderation
from agora.moderation.models import OUTCOMES
from agora.web.console import auth, charts
from agora.web.console.layout import NavEntry, panel, render, texts

router = APIRouter(route_class=OneHopRoute, prefix="/console")
NAV = NavEntry("/console/moderation", "nav.moderation")
ReadSession = Annotated[auth.ConsoleSession, Depends(auth.require("read"))]
AdminSession = Annotated[auth.ConsoleSession, Depends(auth.require("admin"))]
CaseId = Annotated[RowId, Path()]
QueueStatus = Annotated[Literal["open", "upheld", "rejected"], Query()]
ItemQuery = Annotated[str, Query(max_length=255)]

QUEUE_LIMIT = 50


def _bands_chart(summary: moderation.QueueSummary, t: Any) -> dict | None:
    """Open cases per classifier-score band (and without a score)."""
    if not summary.cases.get("open"):
        return None
    step = 1 / moderation.SCORE_BANDS
    labels = [f"{i * step:.1f}–{(i + 1) * step:.1f}" for i in range(moderation.SCORE_BANDS)]
    option = charts.bars(
        [*labels, t("moderation.unscored_band")],
        [*summary.bands, summary.unscored],
        t("axis.classifier_score"),
        t("axis.open_cases"),
    )
    option["xAxis"]["axisLabel"] = {"interval": 0, "rotate": 30}  # every band named
    option["xAxis"]["nameGap"] = 44
    option["grid"]["bottom"] = 68
    return option


def _item_status(session: Any, item_id: str) -> moderation.ItemModeration | None:
    try:
        return moderation.item_moderation(session, item_id)
    except moderation.UnknownItem:
        return None


@router.get("/moderation", response_class=HTMLResponse, include_in_schema=False)
def moderation_page(
    request: Request,
    session: SessionDep,
    console: ReadSession,
    queue: QueueStatus = "open",
    item: ItemQuery = "",
) -> HTMLResponse:
    """Queue counts and score bands, the queue (admin keys) and an item's status.

    The cases are for admin keys, as the API's queue; an item's status for any key."""
    t = texts(request)
    summary = panel(lambda: moderation.queue_summary(session), "queue summary")
    item_id = item.strip()
    data = {
        "summary": summary,
        "bands_chart": _bands_chart(summary, t) if summary else None,
        "queue": queue,
        "cases": (
            panel(lambda: moderation.review_queue(session, queue, QUEUE_LIMIT), "queue")
            if console.can("admin")
            else None
        ),
        "limit": QUEUE_LIMIT,
        "item_id": item_id,
        "item": panel(lambda: _item_status(session, item_id), "item status") if item_id else None,
    }
    return render(request, "moderation.html", data)


@router.post(
    "/moderation/cases/{case_id}/decision", response_class=HTMLResponse, include_in_schema=False
)
async def decide_case(
    request: Request, case_id: CaseId, sessions: SessionFactoryDep, console: AdminSession
) -> HTMLResponse:
    """Uphold or reject a review case, as ``POST /moderation/queue/{id}/decision`` does.

    Answers the case's row as decided; the opposite of an earlier decision is 409."""
    fields = await auth.form_fields(request)
    outcome, note = fields.get("outcome", ""), fields.get("note", "").strip()
    if outcome not in OUTCOMES:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            detail=f"outcome must be one of {', '.join(OUTCOMES)}, not {outcome!r}",
        )
    if len(note) > 2000:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail="note: at most 2000")

    def decide() -> moderation.DecisionResult:
        with transaction(sessions) as session:
            return moderation.decide(
                session, case_id, outcome, datetime.now(UTC),
                decided_by=f"key:{console.principal.key_id}", note=note,
            )  # fmt: skip

    result = await run_in_threadpool(decide)  # an unknown case 404, decided otherwise 409
    return render(request, "_case.html", {"case": result.case, "queue": "open"})
