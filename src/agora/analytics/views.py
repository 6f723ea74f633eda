"""Every analytics route in one router: the topics' routers in the order the app serves them."""

from __future__ import annotations

from fastapi import APIRouter

from agora.analytics.anomalies.views import router as anomalies_router
from agora.analytics.engagement.views import router as engagement_router
from agora.analytics.influence.views import router as influence_router
from agora.analytics.results.views import router as results_router
from agora.analytics.segments.views import router as segments_router
from agora.analytics.sentiment.views import router as sentiment_router
from agora.analytics.trending.views import router as trending_router

router = APIRouter()
for topic_router in (
    sentiment_router,
    influence_router,
    trending_router,
    engagement_router,
    segments_router,
    anomalies_router,
    results_router,
):
    router.include_router(topic_router)
