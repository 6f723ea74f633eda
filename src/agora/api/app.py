"""The HTTP API: ``create_app`` assembles the domain routers into one FastAPI application.

Run it with ``agora serve`` or ``uvicorn --factory agora.api.app:create_app`` (settings from
``AGORA_*`` environment variables). ``create_app`` connects to the database and brings its
schema up to date; the trained models are loaded at startup (no models yet is fine: the
recommendation endpoints answer 503 until ``agora train`` and ``POST /admin/reload``).

``app.state`` holds ``settings``, ``engine``, ``sessions`` (session factory), ``models``
(:class:`~agora.serving.service.ModelStore`), ``feed_cache``, ``ready_answers`` (the feed's
precomputed recommendations), ``private_trending`` (privacy's differentially private trending
list for serving's route), ``impressions`` (the
:class:`~agora.feed.impressions.ImpressionBuffer`, started and stopped with the app: uvicorn's
shutdown on SIGTERM or SIGINT writes what it holds) and ``market_cache`` (the ad book,
:class:`~agora.market.serving.MarketCache`, read by a thread while the app runs); routers reach
them through :mod:`agora.api.deps` (settings, sessions) and their domains' dependencies
(``ModelsDep``, ``FeedCacheDep``... in the owning domain's views).
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import orjson
from fastapi import APIRouter, FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

import agora
from agora.analytics import jobs as analytics_jobs
from agora.analytics.views import router as analytics_router
from agora.api import error_handlers, limits, metrics, openapi, query
from agora.api.auth import AUTH_ERRORS, MetricsScope, check_settings
from agora.api.background import Coalesced, Job, Jobs
from agora.api.body import BATCH_LIMIT_MARK
from agora.api.middleware import RequestContext
from agora.api.routing import OneHopRoute
from agora.api.types import EVENT_TYPE_MARK
from agora.audit import service as audit
from agora.audit.recorder import recorder
from agora.audit.views import router as audit_router
from agora.config import Settings, get_settings
from agora.db.engine import transaction
from agora.engagement import ledger
from agora.engagement.config import engagement_config
from agora.engagement.schemas import TASK_EVENT_TYPE_MARK
from agora.engagement.views import router as engagement_router
from agora.experiments import service as experiments
from agora.experiments.views import router as experiments_router
from agora.feed import online
from agora.feed.cache import FeedCache
from agora.feed.refresher import RefresherThread
from agora.feed.store import namespace
from agora.feed.views import router as feed_router
from agora.gorse.views import router as gorse_router
from agora.ingest.views import router as ingest_router
from agora.market.views import router as market_router
from agora.media import service as media
from agora.media.views import router as media_router
from agora.moderation.views import router as moderation_router
from agora.privacy import service as privacy
from agora.privacy.dp_trending import private_trending
from agora.privacy.dp_views import router as privacy_dp_router
from agora.privacy.views import router as privacy_router
from agora.serving.service import ModelStore
from agora.serving.views import ModelsDep
from agora.serving.views import router as serving_router
from agora.web import console, docs
from agora.web.views import router as web_router
from agora.wiring import Wiring, wire

log = logging.getLogger(__name__)
#: How often a served app deletes audit entries past ``audit_retention_days``.
AUDIT_PRUNE_SECONDS = 3600.0

DESCRIPTION = """\
Recommendations for community platforms: send users, items (posts, questions...), social
edges and behaviour events; ask for recommendations, similar items, trending and latest lists.

Every JSON route needs an API key: `Authorization: Bearer <key>` (use **Authorize** above).
Scopes nest: `admin` ⊇ `write` ⊇ `read`. Errors answer `{"detail": ..., "problems": [...]}`
with the location of each problem (`body.3.timestamp`).
"""

health_router = APIRouter(route_class=OneHopRoute)


class DatabaseCheck:
    """The database's answer to ``SELECT 1``, asked at most once per ``max_age`` seconds (in a
    pool thread, one asker at a time): a load balancer polling ``/health`` many times a second
    costs the database one query a second, and the event loop none."""

    def __init__(self, sessions: sessionmaker[Session], max_age: float = 1.0):
        self._sessions = sessions
        self._max_age = max_age
        self._asked = -math.inf
        self._error: str | None = None
        self._asking = asyncio.Lock()

    async def error(self) -> str | None:
        """None while the database answers, else the error's class name."""
        if time.monotonic() - self._asked > self._max_age:
            async with self._asking:
                if time.monotonic() - self._asked > self._max_age:
                    self._error = await run_in_threadpool(self._ask)
                    self._asked = time.monotonic()
        return self._error

    def _ask(self) -> str | None:
        try:
            with self._sessions() as session:
                session.execute(text("SELECT 1"))
        except SQLAlchemyError as exc:
            log.warning("health: database check failed: %s", type(exc).__name__)
            return exc.__class__.__name__
        return None


@health_router.get("/health", tags=["health"], summary="Liveness and readiness (no key needed)")
async def health(request: Request, models: ModelsDep) -> Response:
    """200 while the database answers (checked at most once a second), 503 when it does not;
    the served model versions either way."""
    error = await request.app.state.database_check.error()
    body: dict[str, Any] = {
        "status": "degraded" if error else "ok",
        "version": agora.__version__,
        "database": f"error: {error}" if error else "ok",
        "models": models.versions(),
    }
    return Response(orjson.dumps(body), 503 if error else 200, media_type="application/json")


metrics_router = APIRouter(route_class=OneHopRoute)


@metrics_router.get(
    "/metrics",
    tags=["operations"],
    summary="Prometheus metrics (text exposition format)",
    dependencies=[MetricsScope],
    response_class=Response,
    responses={
        200: {"content": {CONTENT_TYPE_LATEST.split(";")[0]: {"schema": {"type": "string"}}}},
        **AUTH_ERRORS,
    },
)
def get_metrics(request: Request) -> Response:
    """Needs a key with the ``metrics`` scope (the admin key has it; a scraper gets its own key
    with only this scope). Prometheus sends it as a bearer token (``authorization`` in the
    scrape config)."""
    return Response(metrics.exposition(request.app.state.models), media_type=CONTENT_TYPE_LATEST)


def _warm(settings: Settings, wiring: Wiring, hold: int, stop: threading.Event) -> None:
    """What requests would otherwise build on their own time, in one thread behind the
    answering app (one at a time: they share the machine with the requests): the models'
    arrays, the first feed page's catalogue, item indexes and exposure, then the ``hold``
    users who acted last."""
    log.info("models loaded (seconds): %s", wiring.models.warm())
    try:
        took = online.warm(
            wiring.sessions, wiring.models, wiring.feed_cache, settings.feed,
            settings.event_weights,
        )  # fmt: skip
    except Exception:  # the first page builds what is missing itself
        log.exception("feed: warming up failed")
    else:
        log.info("feed warmed (seconds): %s", took)
    if hold and not stop.is_set():
        _hold_recent_users(wiring, hold, stop)


def _hold_recent_users(wiring: Wiring, limit: int, stop: threading.Event) -> None:
    started = time.monotonic()
    try:
        held = online.hold_recent_users(
            wiring.sessions, wiring.models, wiring.feed_cache, limit, stop
        )
    except Exception:  # the pages load their users themselves meanwhile
        log.exception("feed: holding the recent users' states failed")
        return
    log.info("feed: %d users held in %.1f s", held, time.monotonic() - started)


def background_jobs(
    settings: Settings,
    sessions: sessionmaker[Session],
    engagement_lock: threading.Lock | None = None,
    models: ModelStore | None = None,
) -> Jobs:
    """The work a served app does behind its requests, so that no GET computes it: engagement
    applies new events, new posts and comments get their sentiment, due guardrail looks are
    taken (every ``background_seconds``), images items name are read (``agora.media``), heavy
    analytics are recomputed (every ``analytics_refresh_seconds``), admin actions past
    ``audit_retention_days`` leave the audit log (hourly), the models are fitted again
    without erased users (``erasure_retrain_seconds`` after an erasure; then ``models`` is
    reloaded). Each also runs
    when a request wakes it; the engagement catch-up holds ``engagement_lock`` (see
    :func:`engagement_after_writes`)."""
    light, heavy = settings.background_seconds, settings.analytics_refresh_seconds
    one_at_a_time = engagement_lock or threading.Lock()

    def catch_up() -> None:
        with one_at_a_time, transaction(sessions) as session:
            ledger.catch_up(session, engagement_config(settings), datetime.now(UTC))

    def guardrails() -> None:
        with transaction(sessions) as session:
            experiments.take_due_looks(session, datetime.now(UTC))

    retrain_after = settings.erasure_retrain_seconds

    def retrain() -> None:
        if privacy.retrain_after_erasures(sessions, settings, retrain_after) and models:
            _reload_models(models)  # this process serves the fits without the erased at once

    def prune_audit() -> None:
        if settings.audit_retention_days is not None:
            before = datetime.now(UTC) - timedelta(days=settings.audit_retention_days)
            with transaction(sessions) as session:
                audit.prune(session, before)

    def read_images() -> None:
        policy = media.MediaPolicy.of(settings)
        media.analyse_pending(sessions, policy, lambda: datetime.now(UTC), budget_seconds=20.0)

    def result(key: str) -> Callable[[], object]:
        return lambda: analytics_jobs.refresh_result(sessions, key, settings.event_weights)

    return Jobs(
        [
            Job("engagement", catch_up, light),
            Job("guardrails", guardrails, light),
            Job("sentiment", lambda: analytics_jobs.score_sentiment(sessions, settings.model_dir),
                light * 4),
            Job("media", read_images, light * 4),
            Job("anomalies", result("anomalies"), heavy),
            Job("influence", result("influence"), heavy),
            Job("audit retention", prune_audit, AUDIT_PRUNE_SECONDS),
            *([Job("erasure retrain", retrain, min(retrain_after, 60.0))] if retrain_after else []),
        ]
    )  # fmt: skip


def engagement_after_writes(
    settings: Settings, sessions: sessionmaker[Session], engagement_lock: threading.Lock
) -> Coalesced:
    """What ``POST /events`` asks for once its answer is sent: engagement counts the new
    events. A write at a quiet moment is counted at once (in its background task, right
    after its answer); the writes that follow within ``engagement_after_write_seconds`` of
    that catch-up's start are counted together by one catch-up when that time is over, so a
    stream of writes pays a catch-up's fixed cost a few times a second, not once per write.
    A catch-up waits for a running one (``engagement_lock``, shared with the background job).
    A backlog larger than ``AFTER_WRITE_MAX`` (an import) waits for the background job's next
    turn, so that counting does not take the CPU the writes need; engagement reads say how
    many events are pending."""
    config = engagement_config(settings)

    def engagement_now() -> None:
        with engagement_lock, transaction(sessions) as session:
            ledger.apply_after_write(session, config, datetime.now(UTC))

    return Coalesced(
        "engagement catch-up after writes", engagement_now, settings.engagement_after_write_seconds
    )


def rate_limiter(settings: Settings, sessions: sessionmaker[Session]) -> limits.RateLimiter | None:
    """The per-key rate limits of ``AGORA_LIMITS`` (None when switched off): buckets in Redis
    when ``AGORA_REDIS_URL`` is set (named after the database, as the feed's keys are)."""
    if not settings.limits.enabled:
        return None
    prefix = f"agora:{namespace(sessions)}:ratelimit:"
    return limits.RateLimiter(settings.limits, settings.redis_url, prefix)


def _feed_catch_up(app: FastAPI) -> None:
    """The feed's held user states take in events this process just stored."""
    with app.state.sessions() as session:
        app.state.feed_cache.states.catch_up(session)


def _reload_models(models: ModelStore) -> None:
    """Read the models on disk again (an erasure rewrote versions this process may hold)."""
    try:
        models.reload()
    except Exception:  # a broken artefact: the previous models stay, as on POST /admin/reload
        log.exception("model reload after an erasure failed")


def _after_erasure(app: FastAPI, user_pks: set[int]) -> None:
    app.state.feed_cache.states.forget(user_pks)
    _reload_models(app.state.models)


def create_app(settings: Settings | None = None) -> FastAPI:
    """A ready-to-serve API for ``settings`` (default: from the environment)."""
    settings = settings or get_settings()
    check_settings(settings)
    wiring = wire(settings)
    engagement_lock = threading.Lock()
    counting = engagement_after_writes(settings, wiring.sessions, engagement_lock)
    app = FastAPI(
        title="Agora",
        version=agora.__version__,
        description=DESCRIPTION,
        lifespan=_lifespan(settings, wiring, counting),
        docs_url=None,  # served by agora.web.docs from vendored assets (offline)
        redoc_url=None,
    )
    app.router.route_class = OneHopRoute  # the routes the app itself adds (docs)
    _fill_state(app, settings, wiring, engagement_lock, counting)
    _install_layers(app, settings, wiring)
    _include_routers(app)
    return app


class _Running(NamedTuple):
    """What a running app's lifespan started and stops: the feed cache it started, the event
    that ends the holding of recent users, the refresher thread (None when not in serve)."""

    feed_cache: FeedCache
    holding: threading.Event
    refresher: RefresherThread | None


def _lifespan(
    settings: Settings, wiring: Wiring, counting: Coalesced
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """The app's startup (models read, background threads started) and shutdown (stopped in
    an order that writes what they hold, then the database engine disposed)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await _read_models(wiring.models)
        running = _start_background(app, settings, wiring)
        try:
            yield
        finally:
            _stop_background(app, wiring, counting, running)

    return lifespan


async def _read_models(models: ModelStore) -> None:
    """Read the trained models at startup (their arrays load behind the answering app:
    :func:`_warm`, or on first use)."""
    try:
        versions = await run_in_threadpool(models.reload)
        log.info("models found: %s", versions or "none yet (run `agora train`)")
    except Exception:  # a broken artefact must not keep the API down
        log.exception("could not read the trained models; serving without them")


def _start_background(app: FastAPI, settings: Settings, wiring: Wiring) -> _Running:
    """Start the jobs, the impression buffer, the feed's held states, the warm-up (and the
    holding of the recent users), the ad book and, with one shard, the feed's refresher."""
    app.state.jobs.start()
    wiring.impressions.start()
    feed_cache = app.state.feed_cache
    feed_cache.states.start()
    holding = threading.Event()  # set: stop warming and holding users (the app is stopping)
    limit = min(settings.feed.hold_on_start, settings.feed.max_states)
    # requests are answered at once; what they would build is built behind them
    threading.Thread(
        target=_warm, args=(settings, wiring, limit, holding), name="agora-warm", daemon=True
    ).start()
    wiring.market.start()
    # several shards: their `agora worker --shard` processes refresh, not the API
    refresher = (
        wiring.refresher_thread()
        if settings.feed.refresh_in_serve and settings.feed.refresher_shards == 1
        else None
    )
    if refresher is not None:
        refresher.start()
    return _Running(feed_cache, holding, refresher)


def _stop_background(app: FastAPI, wiring: Wiring, counting: Coalesced, running: _Running) -> None:
    """Stop what :func:`_start_background` started, the writes answered so far counted and the
    impressions written after the last request, then dispose of the database engine."""
    if running.refresher is not None:
        running.refresher.stop()
    running.holding.set()
    running.feed_cache.states.stop()
    wiring.market.stop()
    counting.stop()  # the writes answered so far are counted
    app.state.jobs.stop()
    wiring.impressions.stop()  # after the last request: nothing is added any more
    wiring.engine.dispose()
    metrics.worker_stopped(os.getpid())


def _fill_state(
    app: FastAPI,
    settings: Settings,
    wiring: Wiring,
    engagement_lock: threading.Lock,
    counting: Coalesced,
) -> None:
    """``app.state``: what the routers reach (settings, sessions, models, caches...), the
    background jobs and what follows event writes, edge writes and erasures."""
    models = wiring.models
    app.state.settings = settings
    app.state.engine = wiring.engine
    app.state.sessions = wiring.sessions
    app.state.database_check = DatabaseCheck(wiring.sessions)
    app.state.models = models
    app.state.feed_cache = wiring.feed_cache
    app.state.impressions = wiring.impressions
    app.state.market_cache = wiring.market
    app.state.ready_answers = wiring.ready_answers
    app.state.private_trending = private_trending  # privacy's, for serving's GET /items/trending
    app.state.jobs = background_jobs(settings, app.state.sessions, engagement_lock, models)
    app.state.after_event_writes = [counting.request, lambda: _feed_catch_up(app)]
    app.state.after_edge_writes = [lambda users: app.state.feed_cache.states.forget_ids(users)]
    # an erasure in this process drops what it holds at once; the feed's tail tells the others
    app.state.after_erasures = [lambda pk: _after_erasure(app, {pk})]
    app.state.feed_cache.states.erasure_listeners.append(lambda pks: _reload_models(models))


def _install_layers(app: FastAPI, settings: Settings, wiring: Wiring) -> None:
    """Query parsing, the error answers, the request context, the OpenAPI document's filled
    marks and the rate limits, in the order each one needs."""
    query.install(app)  # before error_handlers.install, which documents every error answer's body
    error_handlers.install(app)
    # outside the body cap: ids, access log, a clean 500; admin actions audited once answered
    app.add_middleware(RequestContext, after_answer=recorder(wiring.sessions))
    task_event_types = (*settings.event_types, engagement_config(settings).flag_event)
    openapi.install(
        app,
        openapi.fill_enum(EVENT_TYPE_MARK, settings.event_types),
        openapi.fill_enum(TASK_EVENT_TYPE_MARK, task_event_types),
        openapi.fill_max_items(BATCH_LIMIT_MARK, settings.max_batch_events),
    )
    limits.install(app, rate_limiter(settings, wiring.sessions))  # after openapi: adds its 429


def _include_routers(app: FastAPI) -> None:
    """Every domain's routes, the health and metrics routes, the web console and the docs."""
    # serving first: its /items/trending and /items/latest must win over /items/{item_id}
    app.include_router(serving_router)
    app.include_router(feed_router)
    app.include_router(ingest_router)
    app.include_router(engagement_router)
    app.include_router(moderation_router)
    app.include_router(media_router)
    app.include_router(market_router)
    app.include_router(analytics_router)
    app.include_router(privacy_dp_router)
    app.include_router(experiments_router)
    app.include_router(privacy_router)
    app.include_router(audit_router)
    app.include_router(gorse_router)  # Gorse's REST API under /api/ (docs/gorse.md)
    app.include_router(health_router)
    app.include_router(metrics_router)
    app.include_router(web_router)
    console.install(app)
    docs.install(app)
