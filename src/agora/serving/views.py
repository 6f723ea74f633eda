"""HTTP routes for recommendations, similar items, trending and latest lists, and models.

Each route only translates HTTP to :mod:`agora.serving.service` calls. Reads need the ``read``
scope, ``POST /admin/reload`` needs ``admin``. A user's recommendations come from the
precomputed answers the app wires in (:class:`~agora.serving.service.ReadyAnswers`: the feed's
ready records, a layer above this one) when there is one, else they are computed here. The app
includes this router before the ingest one, so ``/items/trending`` and ``/items/latest`` are
not taken for ``/items/{item_id}``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from fastapi import Path as PathParam
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from agora.api import dp_marks
from agora.api.auth import AUTH_ERRORS, AdminScope, ReadScope
from agora.api.deps import SessionDep, SessionFactoryDep, SettingsDep, from_state
from agora.api.routing import OneHopRoute
from agora.config import Settings
from agora.db import queries
from agora.models.registry import MODELS
from agora.serving import service
from agora.serving.schemas import (
    ItemList,
    ModelInfo,
    Recommendations,
    RecommendedItem,
    Reloaded,
    SimilarItems,
)
from agora.serving.service import Recommendation

log = logging.getLogger(__name__)

router = APIRouter(route_class=OneHopRoute)

#: The trained models (``app.state.models``) and the feed's precomputed answers
#: (``app.state.ready_answers``), for serving's routes and the domains' that read models.
ModelsDep = Annotated[service.ModelStore, Depends(from_state("models"))]
ReadyAnswersDep = Annotated[service.ReadyAnswers, Depends(from_state("ready_answers"))]


UserId = Annotated[str, PathParam(min_length=1, max_length=255, description="External user id.")]
ItemId = Annotated[str, PathParam(min_length=1, max_length=255, description="External item id.")]
N = Annotated[int, Query(ge=1, le=1000, description="How many items (1..1000).")]
#: Every model name Agora knows, trained or not (an untrained one answers 503).
KnownModel = Literal[(service.AUTO_MODEL, *sorted(MODELS))]  # type: ignore[valid-type]
ModelName = Annotated[KnownModel | None, Query(description="Model name (see GET /models).")]

ERRORS: dict[int | str, dict[str, Any]] = {
    **AUTH_ERRORS,
    403: {"description": "The API key lacks the `read` scope."},
    422: {"description": "Invalid `n` or unknown model name."},
    503: {"description": "The model is not trained yet: run `agora train`."},
}


#: How a non-admin key's trending list is made differentially private, wired in by the app
#: (``app.state.private_trending``: :func:`agora.privacy.dp_trending.private_trending`, a domain
#: above this layer): the released list, or None to answer the exact one; it sets
#: ``X-Privacy`` either way.
PrivateTrending = Callable[[Request, Response, Session, service.ModelStore, int], ItemList | None]
PrivateTrendingDep = Annotated[PrivateTrending, Depends(from_state("private_trending"))]


def _items(recs: list[Recommendation]) -> list[RecommendedItem]:
    return [
        RecommendedItem(
            item_id=r.item_id,
            score=r.score,
            model=r.model,
            title=r.title,
            author_id=r.author_id,
            tags=list(r.tags or []),
            created=r.created,
            because=r.because,
            ties_engaged=r.ties_engaged,
            reason=r.reason,
        )
        for r in recs
    ]


def _body(user_id: str, model: str, recs: list[Recommendation]) -> bytes:
    """A :class:`Recommendations` answer as JSON, fields without a value left out."""
    items = [
        {k: v for k, v in vars(r).items() if v is not None} | {"tags": r.tags or []} for r in recs
    ]
    return orjson.dumps(
        {"user_id": user_id, "model": model, "items": items}, option=orjson.OPT_UTC_Z
    )


@router.get(
    "/users/{user_id}/recommendations",
    tags=["recommendations"],
    summary="Top items for a user (new users get trending)",
    description=(
        "Items the user already has an event on are never returned, including events posted "
        "after the model was trained, nor the user's own posts; at most `max_per_thread` "
        "items of one thread (feed settings, default 1). Users without any event get the "
        "trending list (each item's `model` says `trending`). With `explain=true` each item "
        "also names the past items that carried its score and the people the user follows or "
        "trusts who engaged.\n\n"
        "When the model asked for is the one the feed ranks with (`feed.ranking_model`; the "
        "default `auto` names the same one) and the user's ready feed candidates are current "
        "(computed with the served models and all of the user's events), the answer is their "
        "precomputed list, without scoring: the `X-Recommendations` header says `ready`. "
        "With `explain=true` the same list is explained. Otherwise (another model, a user "
        "without current candidates: they are queued for the refresher) the model scores the "
        "user now: `computed`."
    ),
    dependencies=[ReadScope],
    response_model=Recommendations,
    responses={
        **ERRORS,
        200: {
            "headers": {
                "X-Recommendations": {
                    "description": "`ready` (precomputed) or `computed` (scored now).",
                    "schema": {"type": "string", "enum": ["ready", "computed"]},
                }
            }
        },
    },
    response_model_exclude_none=True,
)
async def get_recommendations(
    user_id: UserId,
    sessions: SessionFactoryDep,
    models: ModelsDep,
    settings: SettingsDep,
    ready: ReadyAnswersDep,
    n: N = 10,
    model: ModelName = None,
    explain: Annotated[bool, Query(description="Say why each item is recommended.")] = False,
) -> Response:
    # a coroutine: an answer kept in memory costs no thread-pool hop; the rest may block
    name = service.resolve_model(models, model or settings.default_model)
    kept = None if explain else ready.kept(user_id, name, n)
    if kept is not None:
        return _answer(kept, "ready")
    body, source = await run_in_threadpool(
        _recommendations, user_id, name, n, explain, sessions, models, settings, ready
    )
    return _answer(body, source)


def _recommendations(
    user_id: str,
    name: str,
    n: int,
    explain: bool,
    sessions: sessionmaker[Session],
    models: service.ModelStore,
    settings: Settings,
    ready: service.ReadyAnswers,
) -> tuple[bytes, str]:
    """The answer's body and where it came from: ``ready`` or ``computed``."""

    def render(recs: list[Recommendation]) -> bytes:
        return _body(user_id, name, recs)

    if not explain:
        found = ready.answer(user_id, name, n, render)
        if found is not None:
            return found, "ready"
    listed = ready.items(user_id, name, n) if explain else None
    with sessions() as session:
        if listed is not None:  # the list the user gets without explain=true, explained
            service.explain(session, models, user_id, listed, settings.event_weights)
            return render(listed), "ready"
        recs = service.recommend(
            session,
            models,
            user_id,
            n,
            name,
            settings.event_weights,
            explain=explain,
            max_per_thread=settings.feed.max_per_thread,
        )
    return render(recs), "computed"


def _answer(body: bytes, source: str) -> Response:
    return Response(body, media_type="application/json", headers={"X-Recommendations": source})


@router.get(
    "/items/trending",
    tags=["recommendations"],
    summary="Trending items (the trained trending model)",
    description="With differential privacy on (`AGORA_DP_EPSILON`), non-admin keys get the "
    "list picked by noisy top-k over the model's scores (each person adds at most 1 to an "
    "item's score), marked by `privacy` and `X-Privacy`; `score` is then 1 / rank, not the "
    "model's score.",
    dependencies=[ReadScope],
    responses={**ERRORS, **dp_marks.RESPONSES, 200: {"headers": dp_marks.HEADER_DOC}},
)
def get_trending(
    request: Request,
    response: Response,
    session: SessionDep,
    models: ModelsDep,
    private: PrivateTrendingDep,
    n: N = 10,
) -> ItemList:
    noisy = private(request, response, session, models, n)
    if noisy is not None:
        return noisy
    recs = service.global_list(session, models, service.FALLBACK_MODEL, n)
    return ItemList(model=service.FALLBACK_MODEL, items=_items(recs))


def released_trending(
    session: Session, items: list[str], n: int, privacy: dp_marks.PrivacyOut
) -> ItemList:
    """The trending list of a release: ``items`` in their released order, scored 1 / rank."""
    pairs = [(item, 1.0 / (r + 1)) for r, item in enumerate(items)]
    recs = service._decorate(session, pairs, service.FALLBACK_MODEL, n)
    return ItemList(model=service.FALLBACK_MODEL, items=_items(recs), privacy=privacy)


@router.get(
    "/items/latest",
    tags=["recommendations"],
    summary="Newest items, straight from the store (no training needed)",
    description="`score` is the item's creation time as a Unix timestamp.",
    dependencies=[ReadScope],
    responses=ERRORS,
)
def get_latest(session: SessionDep, n: N = 10) -> ItemList:
    rows = queries.latest_items(session, n)
    items = [
        RecommendedItem(
            item_id=r["item_id"],
            score=r["created"].timestamp(),
            model="latest",
            title=r["title"],
            author_id=r["author_id"],
            tags=list(r["tags"] or []),
            created=r["created"],
        )
        for r in rows
    ]
    return ItemList(model="latest", items=items)


@router.get(
    "/items/{item_id}/similar",
    tags=["recommendations"],
    summary="Items similar to an item",
    dependencies=[ReadScope],
    responses={
        **ERRORS,
        404: {
            "description": "Unknown item, or an item newer than the model while no content "
            "model is trained."
        },
    },
)
def get_similar(
    item_id: ItemId,
    session: SessionDep,
    models: ModelsDep,
    n: N = 10,
    model: ModelName = None,
) -> SimilarItems:
    """An item posted after the model was trained gets its content neighbours (the items
    closest in text and tags), labelled with model `content`."""
    name = "itemknn" if model in (None, service.AUTO_MODEL) else model
    found = service.similar_items(session, models, item_id, n, name)
    return SimilarItems(item_id=item_id, model=found.model, items=_items(found.items))


@router.get(
    "/models",
    tags=["models"],
    summary="Trained models served now: name -> version and metadata",
    dependencies=[ReadScope],
    responses={401: ERRORS[401], 403: ERRORS[403]},
)
def get_models(models: ModelsDep) -> dict[str, ModelInfo]:
    out = {}
    for name, version in models.versions().items():
        try:
            meta = models.meta(name)
        except service.ModelUnavailable:  # swapped out by a concurrent reload
            continue
        out[name] = ModelInfo(version=version, meta=meta)
    return out


@router.post(
    "/admin/reload",
    tags=["models"],
    summary="Load the newest trained version of every model",
    dependencies=[AdminScope],
    responses={
        401: ERRORS[401],
        403: {"description": "The API key lacks the `admin` scope."},
        500: {
            "description": "An artefact's meta.json could not be read; the previous models stay."
        },
    },
)
def post_reload(models: ModelsDep) -> Reloaded:
    try:
        versions = models.reload()
    except Exception as exc:
        log.exception("model reload failed")
        raise HTTPException(
            status.HTTP_500_INTERNAL_SERVER_ERROR,
            detail=f"reload failed, previous models kept: {exc.__class__.__name__}: {exc}",
        ) from exc
    return Reloaded(models=versions)
