"""The analytics work done in the background rather than in requests: heavy results recomputed
(:mod:`agora.analytics.results`) and the sentiment of new posts and comments scored and stored.

``agora serve`` runs these periodically (see :mod:`agora.api.background`); ``POST
/analytics/refresh`` and ``agora analytics refresh`` run them on demand. Each step runs in its
own transaction, so readers see the previous result until the new one is complete.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from agora.analytics.results import service as results
from agora.analytics.sentiment import service as sa
from agora.db.engine import transaction

#: The name of the background job that scores new posts and comments (see agora.api.app).
SENTIMENT_JOB = "sentiment"

#: Texts scored per transaction by the background scorer: small, so that a run stops close to
#: its time budget (the background jobs share one thread; under load a text takes ~50 ms).
SENTIMENT_BATCH = 64


@lru_cache(maxsize=2)
def _scorer(path: Path) -> sa.SentimentClassifier:
    """One loaded model per artefact (a newer trained version is picked up by its path)."""
    return sa.load_sentiment_version(path)


def refresh_result(sessions: sessionmaker[Session], key: str, event_weights: dict[str, float]):
    """Recompute and store heavy result ``key``; returns the seconds it took."""
    with transaction(sessions) as session:
        return results.refresh(session, key, datetime.now(UTC), event_weights)


def score_sentiment(
    sessions: sessionmaker[Session], model_dir: Path, budget_seconds: float | None = 20.0
) -> int:
    """Score the posts and comments not scored by the current model yet, a batch per
    transaction, until none is left or ``budget_seconds`` passed (the next run goes on);
    returns how many were stored."""
    path = sa.scorer_path(model_dir)
    version = sa.model_version(path)
    started = time.perf_counter()
    total = 0
    while budget_seconds is None or time.perf_counter() - started < budget_seconds:
        with transaction(sessions) as session:
            if sa.pending_count(session, version) == 0:
                break
            total += sa.score_pending(
                session, _scorer(path), version, datetime.now(UTC), SENTIMENT_BATCH
            )
    return total
