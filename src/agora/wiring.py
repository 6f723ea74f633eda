"""What serving needs, connected once: the store (schema brought up to date), its sessions, the
trained models, the feed caches and the impression buffer. The API (``api.app.create_app``) and
the in-process facade (``agora.client.Agora``) both start from :func:`wire`, so Python callers
get exactly what the API serves (the facade writes a page's impressions in its own transaction
instead of buffering them: a script may end without a shutdown)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from agora.config import Settings
from agora.db.engine import make_engine, migrate, session_factory
from agora.feed.cache import FeedCache
from agora.feed.impressions import ImpressionBuffer
from agora.serving.service import ModelStore


@dataclass
class Wiring:
    """The parts a request uses. ``models`` knows no model until ``models.reload()``;
    ``impressions`` writes nothing in the background until ``impressions.start()`` (the API's
    lifespan starts and stops it)."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    models: ModelStore
    feed_cache: FeedCache
    impressions: ImpressionBuffer


def wire(settings: Settings) -> Wiring:
    """Connect to ``settings``' store (migrating it) and set up models, feed caches and the
    impression buffer."""
    engine = make_engine(settings.resolved_database_url)
    migrate(engine)
    sessions = session_factory(engine)
    return Wiring(
        settings=settings,
        engine=engine,
        sessions=sessions,
        models=ModelStore(settings.model_dir),
        feed_cache=FeedCache(
            redis_url=settings.redis_url,
            concurrent_builds=settings.feed.concurrent_builds,
            ttl_seconds=settings.feed.cache_ttl_seconds,
            max_users=settings.feed.cache_max_users,
            max_sessions=settings.feed.cache_max_sessions,
            max_page_bytes=settings.feed.cache_max_page_bytes,
        ),
        impressions=ImpressionBuffer(
            sessions,
            flush_seconds=settings.feed.impression_flush_seconds,
            max_rows=settings.feed.impression_buffer_rows,
        ),
    )
