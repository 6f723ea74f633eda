"""What serving needs, connected once: the store (schema brought up to date), its sessions, the
trained models, the feed caches, the impression buffer, the ad book and the recommendations
answered from the feed's ready records (handed here to the serving layer's route, which cannot
import the feed). The API (``api.app.create_app``) and the in-process facade
(``agora.client.Agora``) both start from :func:`wire`, so Python callers get exactly what the API
serves (the facade writes a page's
impressions in its own transaction instead of buffering them: a script may end without a
shutdown)."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from agora.config import Settings
from agora.db.engine import open_store, session_factory
from agora.db.pseudonyms import sealer_of
from agora.engagement.config import EngagementConfig
from agora.feed.cache import FeedCache
from agora.feed.impressions import ImpressionBuffer
from agora.feed.recommendations import ReadyRecommendations
from agora.feed.refresher import Leadership, Refresher, RefresherThread
from agora.feed.store import EVERY_USER, CandidateStore, Shard, candidate_store, namespace
from agora.gorse.config import GorseConfig
from agora.market.config import MarketConfig, market_config
from agora.market.serving import MarketCache
from agora.serving.service import ModelStore

#: The settings sections the domains own (``AGORA_ENGAGEMENT``...), each with the model its
#: domain reads it as (``Settings.section``): config knows none of them, this assembly all.
SECTIONS: dict[str, type[BaseModel]] = {
    "engagement": EngagementConfig,
    "market": MarketConfig,
    "gorse": GorseConfig,
}


def check_sections(settings: Settings) -> None:
    """Read every domain's section of ``settings`` once: a wrong one stops the app as it starts,
    as any other wrong setting does (pydantic's ValidationError), not at its first request."""
    for name, model in SECTIONS.items():
        settings.section(name, model)


@dataclass
class Wiring:
    """The parts a request uses. ``models`` knows no model until ``models.reload()``;
    ``impressions`` writes nothing in the background until ``impressions.start()``, and
    ``market`` reads its ad book only when a page needs it until ``market.start()`` (the API's
    lifespan starts and stops both)."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    models: ModelStore
    feed_cache: FeedCache
    impressions: ImpressionBuffer
    candidates: CandidateStore
    market: MarketCache
    ready_answers: ReadyRecommendations

    def refresher(self, reload_models: bool = False, shard: Shard = EVERY_USER) -> Refresher:
        """A candidate refresher on this store (``reload_models``: it reloads the models from
        disk every round, as a separate ``agora worker`` must) for ``shard``'s users."""
        return Refresher(
            self.sessions,
            self.models,
            self.candidates,
            self.settings.feed,
            self.settings.event_weights,
            full_refresh_seconds=self.settings.feed.full_refresh_seconds,
            reload_models=reload_models,
            shard=shard,
        )

    def leadership(self, shard: Shard = EVERY_USER) -> Leadership:
        """The lock that lets one refresher per store and shard work at a time."""
        return Leadership(
            self.settings.redis_url, self.settings.data_dir, namespace(self.sessions), shard
        )

    def refresher_thread(self) -> RefresherThread:
        """A refresher for a served app; the feed's online path queues users with it."""
        thread = RefresherThread(self.refresher(), self.leadership())
        self.feed_cache.ready.on_want = thread.want
        return thread


def wire(settings: Settings) -> Wiring:
    """Connect to ``settings``' store (migrating it) and set up models, feed caches, the
    impression buffer and the ad book (the domains' settings sections checked first)."""
    check_sections(settings)
    engine = open_store(settings)
    sessions = session_factory(engine)
    candidates = candidate_store(settings.redis_url, sessions, settings.feed.refresher_shards)
    impressions = ImpressionBuffer(
        sessions,
        flush_seconds=settings.feed.impression_flush_seconds,
        max_rows=settings.feed.impression_buffer_rows,
    )
    models = ModelStore(settings.model_dir, ids=sealer_of(engine.dialect))
    feed_cache = FeedCache(
        redis_url=settings.redis_url,
        ttl_seconds=settings.feed.cache_ttl_seconds,
        max_users=settings.feed.cache_max_users,
        max_sessions=settings.feed.cache_max_sessions,
        store=candidates,
        sessions=sessions,
        max_states=settings.feed.max_states,
        impressions=impressions,
        concurrent_pages=settings.feed.concurrent_pages,
    )
    return Wiring(
        settings=settings,
        engine=engine,
        sessions=sessions,
        models=models,
        candidates=candidates,
        feed_cache=feed_cache,
        impressions=impressions,
        market=MarketCache(sessions, market_config(settings)),
        ready_answers=ReadyRecommendations(
            feed_cache, models, sessions, settings.feed.max_per_thread
        ),
    )
