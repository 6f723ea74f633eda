"""Analytics: trending tags and keywords with their bursts, open alerts, sentiment by day and
by tag, the most influential users; for admin keys (as on the API) the behavioural segments
with their personas and the fake-engagement suspects with their reasons.

Every figure is the API's own answer: trending and sentiment through the API's route
functions (differentially private for non-admin keys when the API's are), influence and
suspects as the background jobs stored them (never recomputed by a page view)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import HTMLResponse
from sqlalchemy.orm import Session

from agora.analytics.anomalies import service as anomalies
from agora.analytics.http import wake
from agora.analytics.results import service as results
from agora.analytics.segments.views import get_segments
from agora.analytics.sentiment.views import sentiment_by
from agora.analytics.trending import service as trending
from agora.analytics.trending.views import get_trending
from agora.api.deps import SessionDep, SettingsDep
from agora.api.routing import OneHopRoute
from agora.web.console import auth, charts
from agora.web.console.layout import NavEntry, panel, render, texts

router = APIRouter(route_class=OneHopRoute, prefix="/console")
NAV = NavEntry("/console/analytics", "nav.analytics")
ReadSession = Annotated[auth.ConsoleSession, Depends(auth.require("read"))]

#: The last day of the window, when the operator chose one (within the engine's span of
#: times: 1970 to 2099).
Until = Annotated[
    date | None,
    Query(
        ge=date(1970, 3, 2),
        le=date(2099, 12, 30),
        description="Last day of the window (default: the API's now).",
    ),
]
#: The window every time-bound panel covers: this many days, ending at ``until``.
WINDOW_DAYS = 60
#: The burst detector's settings: the API's defaults (Poisson tail, least posts in a day).
ALPHA = 1e-3
MIN_COUNT = 5
#: Bursts charted per source; rows listed in each table.
CHARTED = 10
TOP = 10
#: Tags whose sentiment is charted (those with the most texts).
SENTIMENT_TAGS = 12
#: Open alerts listed (the newest), of at most ``ALERTS_READ`` counted.
ALERTS = 12
ALERTS_READ = 1000
#: The signal behind each reason the fake-engagement job writes.
SIGNAL_OF = {reason: signal for signal, reason in anomalies.REASONS.items()}
#: Suspect items listed under the suspect users.
SUSPECT_ITEMS = 5


def _window_end(session: Session, until: date | None) -> tuple[datetime, str]:
    """The end of the window: the day asked for (included), else where the API's analytics
    end by default (now, or the store's newest activity when the store is historic)."""
    if until is not None:
        return datetime.combine(until, time.min, UTC) + timedelta(days=1), "query"
    return trending.store_now(session, datetime.now(UTC), "day")


def _bursts(request: Request, session: Session, end: datetime, source: str, t: Any) -> dict:
    """The API's trending answer for ``source`` (tags or keywords) over the window, with a
    chart of the strongest bursts: their peak posts per day against the expected baseline."""
    answer = get_trending(
        request, Response(), session, "day", WINDOW_DAYS, source, ALPHA, MIN_COUNT, end
    )
    charted = answer.bursts[:CHARTED]
    option = None
    if charted:
        option = charts.grouped_bars(
            [b.key for b in charted],
            {
                t("analytics.peak"): [b.peak_count for b in charted],
                t("analytics.baseline"): [round(b.baseline, 2) for b in charted],
            },
            t("axis.tag" if source == "tags" else "axis.keyword"),
            t("axis.posts_per_day"),
        )
    return {
        "now": {b.key for b in answer.trending},
        # each burst with its last day (its end is the start of the day after)
        "bursts": [(b, b.end - timedelta(seconds=1)) for b in answer.bursts[:TOP]],
        "total": len(answer.bursts),
        "option": option,
        "private": answer.privacy is not None,
    }


def _sentiment(
    request: Request, session: Session, settings: Any, end: datetime, t: Any
) -> dict[str, Any]:
    """Mean sentiment per day and per tag over the window, as ``GET /analytics/sentiment``
    answers them, with a chart of each."""
    since = end - timedelta(days=WINDOW_DAYS)

    def by(group: str, limit: int) -> Any:
        return sentiment_by(request, Response(), session, settings, group, limit, since, end)

    days, tags = by("day", 1000), by("tag", SENTIMENT_TAGS)
    return {
        "texts": days.n_texts,
        "pending": days.pending,
        "model": days.model_version,
        "day_chart": charts.score_line(
            [(g.key, round(g.mean_score, 4)) for g in days.groups],
            t("analytics.mean_sentiment"),
            t("axis.date"),
            t("axis.sentiment"),
            (since, end - timedelta(days=1)),
        )
        if days.groups
        else None,
        "tag_chart": charts.grouped_bars(
            [g.key for g in tags.groups],
            {t("analytics.mean_sentiment"): [round(g.mean_score, 4) for g in tags.groups]},
            t("axis.tag"),
            t("axis.sentiment"),
            whole=False,
        )
        if tags.groups
        else None,
        "tags": tags.groups,
    }


def _computed(
    request: Request, session: Session, key: str, rows: Callable[[dict], dict[str, Any]]
) -> dict[str, Any]:
    """The rows the page shows of a result the background jobs store (influence,
    anomalies), with when it was computed; when none exists yet the job is started and the
    panel says so (``pending``)."""
    stored = results.read(session, key)
    if stored is None:
        wake(request, key)
        return {"pending": True}
    return {"pending": False, "computed_at": stored.computed_at, **rows(stored.payload)}


def _influence(payload: dict) -> dict[str, Any]:
    graph = payload["with_events"]
    return {"top": graph["top"][:TOP], "users": graph["users"], "edges": graph["edges"]}


def _suspects(payload: dict) -> dict[str, Any]:
    """The top suspects, each reason named by its signal (so the page says it in its
    language; a reason the catalogue does not know is shown as stored), and the top suspect
    items."""
    users = [
        {**user, "signals_fired": [SIGNAL_OF.get(r, r) for r in user["reasons"]]}
        for user in payload["users"][:TOP]
    ]
    return {
        "users": users,
        "items": payload["items"][:SUSPECT_ITEMS],
        "flagged": payload["flagged"],
        "scored": payload["scored_users"],
        "threshold": payload["threshold"],
    }


def _persona(label: str, t: Any) -> str:
    """A segment's stored label ("<activity level> · <what they engage with>", written in
    English by the build) in the page's language."""
    level, _, named = label.partition(" · ")
    if named.startswith("mostly "):
        named = t("persona.mostly", type=named.removeprefix("mostly "))
    elif named == "no tags":
        named = t("persona.no_tags")
    level = t("persona." + level, _default=level)
    return f"{level} · {named}" if named else level


@router.get("/analytics", response_class=HTMLResponse, include_in_schema=False)
def analytics_page(
    request: Request,
    session: SessionDep,
    console: ReadSession,
    until: Until = None,
) -> HTMLResponse:
    """Trending, alerts, sentiment and influence; segments and suspects for admin keys.

    The trending keywords and the sentiment charts come as fragments the page loads (their
    reads are the heaviest), so that each request stays well within 300 ms."""
    t = texts(request)
    end, origin = _window_end(session, until)
    admin = console.can("admin")
    data = {
        "end": end,
        "last_day": (end - timedelta(days=1) if origin == "query" else end).date(),
        "origin": origin,
        "window_days": WINDOW_DAYS,
        "tags": panel(lambda: _bursts(request, session, end, "tags", t), "trending tags"),
        "alerts": panel(lambda: trending.list_alerts(session, "open", ALERTS_READ), "alerts"),
        "alerts_shown": ALERTS,
        "influence": panel(
            lambda: _computed(request, session, "influence", _influence), "influence"
        ),
        "admin": admin,
        "segments": (
            panel(
                lambda: [(seg, _persona(seg.label, t)) for seg in get_segments(session)], "segments"
            )
            if admin
            else None
        ),
        "suspects": (
            panel(lambda: _computed(request, session, "anomalies", _suspects), "suspects")
            if admin
            else None
        ),
    }
    return render(request, "analytics.html", data)


@router.get("/analytics/keywords", response_class=HTMLResponse, include_in_schema=False)
def trending_keywords(
    request: Request, session: SessionDep, _: ReadSession, until: Until = None
) -> HTMLResponse:
    """The trending keywords panel (an htmx fragment the page loads: reading the words of
    every post of the window is its heaviest part)."""
    end, _origin = _window_end(session, until)
    found = panel(lambda: _bursts(request, session, end, "keywords", texts(request)), "keywords")
    return render(request, "_keywords.html", {"keywords": found})


@router.get("/analytics/sentiment", response_class=HTMLResponse, include_in_schema=False)
def sentiment_panels(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    _: ReadSession,
    until: Until = None,
) -> HTMLResponse:
    """Sentiment by day and by tag over the window (an htmx fragment the page loads)."""
    end, _origin = _window_end(session, until)
    found = panel(lambda: _sentiment(request, session, settings, end, texts(request)), "sentiment")
    return render(request, "_sentiment.html", {"sentiment": found})
