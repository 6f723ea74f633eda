"""Dependencies the routers use to reach what ``create_app`` put on ``app.state``.

``app.state`` holds ``settings`` (Settings), ``engine`` (Engine), ``sessions`` (sessionmaker),
``models`` (ModelStore), ``feed_cache`` (FeedCache, with the impression buffer),
``impressions`` (the same ImpressionBuffer), ``market_cache`` (the ad book, MarketCache) and
``ready_answers`` (the feed's precomputed recommendations,
:class:`~agora.serving.service.ReadyAnswers`).
Reads use :data:`~agora.api.routing.SessionDep` (one session per request); writes take the factory
(:func:`get_session_factory`) and run their whole request in one ``db.engine.transaction`` so a
refused request stores nothing. The getters of ``app.state`` are coroutines: FastAPI runs a
plain function dependency in its thread pool, a hop that costs more than the lookup itself.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session, sessionmaker

from agora.api.routing import SessionDep as SessionDep
from agora.config import Settings
from agora.feed.cache import FeedCache
from agora.market.serving import MarketCache
from agora.serving.service import ModelStore, ReadyAnswers


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_models(request: Request) -> ModelStore:
    return request.app.state.models


async def get_feed_cache(request: Request) -> FeedCache:
    return request.app.state.feed_cache


async def get_market_cache(request: Request) -> MarketCache:
    return request.app.state.market_cache


async def get_ready_answers(request: Request) -> ReadyAnswers:
    return request.app.state.ready_answers


async def get_session_factory(request: Request) -> sessionmaker[Session]:
    return request.app.state.sessions


SettingsDep = Annotated[Settings, Depends(get_settings)]
ModelsDep = Annotated[ModelStore, Depends(get_models)]
FeedCacheDep = Annotated[FeedCache, Depends(get_feed_cache)]
MarketCacheDep = Annotated[MarketCache, Depends(get_market_cache)]
ReadyAnswersDep = Annotated[ReadyAnswers, Depends(get_ready_answers)]
SessionFactoryDep = Annotated[sessionmaker[Session], Depends(get_session_factory)]
