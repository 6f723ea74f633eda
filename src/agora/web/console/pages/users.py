"""Users: search by id; a user's page (recent events, ties, points, badges, trust and what the
next level needs, segment), a live preview of their feed with each item's source, reason and
explanation, and their feed controls (editable with a write key)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, status
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from agora.analytics.segments import service as segments
from agora.api.deps import SessionDep, SessionFactoryDep, SettingsDep
from agora.api.routing import OneHopRoute
from agora.db import queries
from agora.db.engine import transaction
from agora.engagement import badge_awards, ledger, trust_levels
from agora.engagement.config import engagement_config
from agora.feed import service as feed
from agora.feed.schemas import ControlsIn
from agora.feed.views import FeedCacheDep
from agora.serving.views import ModelsDep
from agora.web.console import auth
from agora.web.console.layout import NavEntry, panel, render, unprocessable

router = APIRouter(route_class=OneHopRoute, prefix="/console")
NAV = NavEntry("/console/users", "nav.users")
ReadSession = Annotated[auth.ConsoleSession, Depends(auth.require("read"))]
WriteSession = Annotated[auth.ConsoleSession, Depends(auth.require("write"))]
UserId = Annotated[str, Path(min_length=1, max_length=255)]
Search = Annotated[str, Query(max_length=255)]

SEARCH_LIMIT = 50
RECENT_EVENTS = 20
PREVIEW_SIZE = 10
#: The controls the form edits: numbers, then lists typed as comma-separated text.
NUMBER_CONTROLS = ("diversity", "social_weight", "freshness", "exploration")
LIST_CONTROLS = ("followed_tags", "muted_tags")


def _not_found(request: Request, user_id: str) -> HTMLResponse:
    return render(request, "not_found.html", {"kind": "user", "id": user_id}, 404)


@router.get("/users", response_class=HTMLResponse, include_in_schema=False)
def search_users(
    request: Request, session: SessionDep, _: ReadSession, q: Search = ""
) -> HTMLResponse:
    """Users whose id starts with the text typed."""
    text = q.strip()
    found = queries.find_users(session, text, SEARCH_LIMIT) if text else []
    if text and text not in found and queries.user_record(session, text) is not None:
        found.insert(0, text)  # pseudonymized ids match exactly only
    return render(request, "users.html", {"q": text, "found": found, "limit": SEARCH_LIMIT})


@router.get("/users/{user_id}", response_class=HTMLResponse, include_in_schema=False)
def user_page(
    request: Request,
    user_id: UserId,
    session: SessionDep,
    settings: SettingsDep,
    console: ReadSession,
) -> HTMLResponse:
    """One user's activity, ties, engagement, segment and feed controls.

    The feed preview is loaded by the page itself (``/preview``)."""
    record = queries.user_record(session, user_id)
    if record is None:
        return _not_found(request, user_id)
    now, config = datetime.now(UTC), engagement_config(settings)
    events = panel(lambda: queries.user_events(session, user_id, RECENT_EVENTS), "events") or []
    titles = queries.item_summaries(session, [e[0] for e in events])
    data: dict[str, Any] = {
        "user": record,
        "user_id": user_id,
        "events": [
            {"item_id": i, "title": (titles.get(i) or {}).get("title"), "type": k, "time": ts}
            for i, k, _, ts in events
        ],
        "ties": panel(lambda: queries.user_edges(session, user_id), "ties") or [],
        "points": panel(lambda: ledger.points(session, config, user_id, now, 5), "points"),
        "badges": panel(lambda: badge_awards.badges(session, config, user_id, now), "badges"),
        "trust": panel(lambda: trust_levels.trust(session, config, user_id, now), "trust"),
        "segments": (
            panel(lambda: segments.user_segments(session, user_id), "segment")
            if console.can("admin")  # behavioural profiles are for admin keys, as on the API
            else None
        ),
        "controls": panel(lambda: feed.controls(session, user_id, settings.feed), "controls"),
    }
    data["next_level"] = _next_level(data["trust"])
    return render(request, "user.html", data)


def _next_level(report: trust_levels.TrustReport | None) -> trust_levels.LevelCheck | None:
    if report is None:
        return None
    return next((c for c in report.levels if c.level > report.level), None)


@router.get("/users/{user_id}/preview", response_class=HTMLResponse, include_in_schema=False)
def feed_preview(
    request: Request,
    user_id: UserId,
    session: SessionDep,
    models: ModelsDep,
    settings: SettingsDep,
    cache: FeedCacheDep,
    _: ReadSession,
) -> HTMLResponse:
    """The first page of the user's feed as they would get it now, with explanations.

    It is ranked in a transaction that is rolled back: the preview records no impression."""
    if queries.user_record(session, user_id) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"user {user_id!r} not found")
    with cache.serving():
        page = feed.build_feed(
            session,
            models,
            user_id,
            PREVIEW_SIZE,
            None,
            settings.feed,
            settings.event_weights,
            datetime.now(UTC),
            explain=True,
            cache=cache,
        )
    session.rollback()  # nothing of the preview is kept
    ties = queries.ties_who_engaged(session, user_id, [i.item_id for i in page.items])
    return render(request, "_preview.html", {"page": page, "ties": ties, "user_id": user_id})


def _controls_change(fields: dict[str, str]) -> dict[str, Any]:
    """The form's fields as the API's controls body: blank numbers reset to the platform
    default, lists are comma-separated."""
    change: dict[str, Any] = {}
    for name in NUMBER_CONTROLS:
        if name in fields:
            text = fields[name].strip()
            try:
                change[name] = float(text) if text else None
            except ValueError:
                raise ValueError(f"{name}: {text!r} is not a number") from None
    for name in LIST_CONTROLS:
        if name in fields:
            change[name] = [tag.strip() for tag in fields[name].split(",") if tag.strip()]
    return change


@router.post("/users/{user_id}/controls", response_class=HTMLResponse, include_in_schema=False)
async def edit_controls(
    request: Request,
    user_id: UserId,
    sessions: SessionFactoryDep,
    settings: SettingsDep,
    cache: FeedCacheDep,
    _: WriteSession,
) -> HTMLResponse:
    """Change the user's feed controls (as ``PATCH /users/{id}/feed/settings`` does).

    Answers the controls panel and asks the page's preview to refresh."""
    fields = await auth.form_fields(request)
    try:
        body = ControlsIn.model_validate(_controls_change(fields))
    except ValueError as exc:  # a pydantic ValidationError too
        raise unprocessable(exc) from None

    def write() -> feed.Controls:
        with transaction(sessions) as session:
            return feed.update_controls(
                session, user_id, body.model_dump(exclude_unset=True), settings.feed,
                datetime.now(UTC),
            )  # fmt: skip

    changed = await run_in_threadpool(write)  # an unknown user or target answers 404
    cache.states.forget_ids({user_id})
    answer = render(request, "_controls.html", {"controls": changed, "user_id": user_id})
    answer.headers["HX-Trigger"] = "preview-refresh"
    return answer
