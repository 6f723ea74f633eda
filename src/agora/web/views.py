"""The home page: what is stored, which models are served, what feeds were made of in the last
day, where to go next (no key needed)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from sqlalchemy.exc import SQLAlchemyError

import agora
from agora.api.deps import SessionDep, SettingsDep
from agora.api.routing import OneHopRoute
from agora.db import queries
from agora.feed import service as feed_service
from agora.serving.views import ModelsDep

log = logging.getLogger(__name__)

router = APIRouter(route_class=OneHopRoute)
templates = Jinja2Templates(directory=Path(__file__).parent / "templates")


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def index(
    request: Request, session: SessionDep, models: ModelsDep, settings: SettingsDep
) -> HTMLResponse:
    counts, database_error = None, None
    try:
        counts = queries.counts(session)
    except SQLAlchemyError as exc:
        log.warning("home page: database unreadable: %s", exc)
        database_error = exc.__class__.__name__
    served = {}
    for name, version in models.versions().items():
        meta = models.meta(name)  # the home page never loads a model's arrays
        served[name] = {
            "version": version,
            "n_users": meta.get("n_users", "?"),
            "n_items": meta.get("n_items", "?"),
        }
    shares: dict[str, int] = {}
    if counts is not None:
        shares = feed_service.source_shares(session, datetime.now(UTC) - timedelta(hours=24))
    total = sum(shares.values())
    feed_sources = [
        {"source": source, "count": count, "share": count / total}
        for source, count in sorted(shares.items(), key=lambda kv: -kv[1])
    ]
    context = {
        "feed_sources": feed_sources,
        "feed_impressions": total,
        "version": agora.__version__,
        "counts": counts,
        "database_error": database_error,
        "models": served,
        "default_model": settings.default_model,
    }
    return templates.TemplateResponse(request, "index.html", context)
