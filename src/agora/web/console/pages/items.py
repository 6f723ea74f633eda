"""Items: search by id, title or tag; an item's page (events per type, reach, similar items,
moderation status, sentiment and its share cascade drawn as a tree)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import HTMLResponse

from agora.analytics.influence import service as influence
from agora.analytics.sentiment.service import item_sentiment
from agora.api.deps import SessionDep
from agora.api.routing import OneHopRoute
from agora.db import queries
from agora.moderation import service as moderation
from agora.serving import service as serving
from agora.serving.views import ModelsDep
from agora.web.console import auth, charts
from agora.web.console.layout import NavEntry, panel, render, texts

router = APIRouter(route_class=OneHopRoute, prefix="/console")
NAV = NavEntry("/console/items", "nav.items")
ReadSession = Annotated[auth.ConsoleSession, Depends(auth.require("read"))]
ItemId = Annotated[str, Path(min_length=1, max_length=255)]
Search = Annotated[str, Query(max_length=255)]

SEARCH_LIMIT = 50
SIMILAR = 10
#: The model similar items come from, as ``GET /items/{id}/similar`` defaults to.
SIMILAR_MODEL = "itemknn"
#: Nodes of a cascade drawn at most (the rest are counted, not drawn).
CASCADE_NODES = 300


@router.get("/items", response_class=HTMLResponse, include_in_schema=False)
def search_items(
    request: Request, session: SessionDep, _: ReadSession, q: Search = ""
) -> HTMLResponse:
    """Items whose id is the text typed, whose title holds it, or tagged with it."""
    text = q.strip()
    found = queries.find_items(session, text, SEARCH_LIMIT) if text else []
    return render(request, "items.html", {"q": text, "found": found, "limit": SEARCH_LIMIT})


def _cascade(session: Any, item_id: str, t: Any) -> dict[str, Any] | None:
    cascade = influence.item_cascade(session, item_id)
    if cascade is None:
        return None
    users = list(cascade.parent)[:CASCADE_NODES]
    kept = {u: cascade.parent[u] for u in users}
    labels = {u: f"{u} ({t('cascade.' + cascade.how.get(u, 'root'))})" for u in users}
    labels[cascade.root] = f"{cascade.root} ({t('cascade.author')})"
    stats = cascade.stats()
    return {
        "stats": stats,
        "height": max(160, min(1200, 30 * int(stats["max_breadth"] or 1) + 80)),
        "repeated": cascade.duplicates,
        "option": charts.cascade_tree(cascade.root, kept, labels) if len(kept) > 1 else None,
    }


def _similar(session: Any, models: serving.ModelStore, item_id: str) -> serving.Similar | None:
    try:
        return serving.similar_items(session, models, item_id, SIMILAR, SIMILAR_MODEL)
    except (serving.ModelUnavailable, serving.UnknownItem):
        return None


@router.get("/items/{item_id}", response_class=HTMLResponse, include_in_schema=False)
def item_page(
    request: Request, item_id: ItemId, session: SessionDep, models: ModelsDep, _: ReadSession
) -> HTMLResponse:
    """One item: its events, reach, similar items, moderation, sentiment and cascade."""
    record = queries.item_record(session, item_id)
    if record is None:
        return render(request, "not_found.html", {"kind": "item", "id": item_id}, 404)
    t = texts(request)
    reach = panel(lambda: influence.reach(session, "item", 1, only=item_id), "reach")
    data = {
        "item": record,
        "events": panel(lambda: queries.item_event_counts(session, item_id), "events") or {},
        "reach": reach[0] if reach else None,
        "similar": panel(lambda: _similar(session, models, item_id), "similar"),
        "moderation": panel(lambda: moderation.item_moderation(session, item_id), "moderation"),
        "sentiment": panel(lambda: item_sentiment(session, item_id), "sentiment"),
        "cascade": panel(lambda: _cascade(session, item_id, t), "cascade"),
    }
    return render(request, "item.html", data)
