"""Every route of Agora's REST API as one method, written once for the sync and async clients.

Each method names its route (method and path template, as in the OpenAPI document at
``/openapi.json``) and passes its arguments as the API takes them; the client it belongs to
sends the request and returns the JSON answer (``dict`` or ``list``), or ``bytes`` for the few
routes that answer something else (``/metrics``, an e-mail digest as text). Query arguments
left ``None`` are not sent, so the server's defaults apply. Bodies are the API's own JSON
shapes (see ``/docs``): a dict, or a list of dicts for batch routes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Generic, TypeVar

R = TypeVar("R")
JSON = dict[str, Any]
Body = Mapping[str, Any] | Sequence[Mapping[str, Any]]


class Operations(Generic[R]):
    """The API's routes; ``R`` is what a call returns (the JSON answer, or an awaitable of it)."""

    def _request(
        self,
        method: str,
        template: str,
        path: Mapping[str, str] | None = None,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        raw: bool = False,
    ) -> R:
        raise NotImplementedError  # the sync and async clients send it

    # -- users, items, groups, edges, events --------------------------------------------------
    def put_user(self, user_id: str, user: Mapping[str, Any] | None = None) -> R:
        """Create or update a user (``PUT /users/{user_id}``)."""
        return self._request("PUT", "/users/{user_id}", {"user_id": user_id}, json=user or {})

    def get_user(self, user_id: str) -> R:
        return self._request("GET", "/users/{user_id}", {"user_id": user_id})

    def delete_user(self, user_id: str, content: str | None = None) -> R:
        """Erase a user and what they did (``content``: ``keep`` or ``delete`` their posts)."""
        return self._request(
            "DELETE", "/users/{user_id}", {"user_id": user_id}, params={"content": content}
        )

    def user_edges(self, user_id: str) -> R:
        return self._request("GET", "/users/{user_id}/edges", {"user_id": user_id})

    def export_user(self, user_id: str) -> R:
        """Everything stored about a user (``GET /users/{user_id}/export``)."""
        return self._request("GET", "/users/{user_id}/export", {"user_id": user_id})

    def put_item(self, item_id: str, item: Mapping[str, Any]) -> R:
        return self._request("PUT", "/items/{item_id}", {"item_id": item_id}, json=item)

    def get_item(self, item_id: str) -> R:
        return self._request("GET", "/items/{item_id}", {"item_id": item_id})

    def delete_item(self, item_id: str) -> R:
        return self._request("DELETE", "/items/{item_id}", {"item_id": item_id}, raw=True)

    def put_group(self, group_id: str, group: Mapping[str, Any]) -> R:
        return self._request("PUT", "/groups/{group_id}", {"group_id": group_id}, json=group)

    def add_members(self, group_id: str, members: Body) -> R:
        return self._request(
            "POST", "/groups/{group_id}/members", {"group_id": group_id}, json=members
        )

    def add_edges(self, edges: Body) -> R:
        """Follows, friendships, trust, blocks (one edge or a list)."""
        return self._request("POST", "/edges", json=edges)

    def delete_edge(self, source_id: str, target_id: str, type: str) -> R:
        params = {"source_id": source_id, "target_id": target_id, "type": type}
        return self._request("DELETE", "/edges", params=params, raw=True)

    def add_events(self, events: Body) -> R:
        """Behaviour events (one or a list, up to the server's batch limit); stored once each
        by ``event_id``."""
        return self._request("POST", "/events", json=events)

    # -- recommendations and feeds ------------------------------------------------------------
    def recommendations(
        self, user_id: str, n: int | None = None, model: str | None = None, explain: bool = False
    ) -> R:
        params = {"n": n, "model": model, "explain": explain or None}
        return self._request(
            "GET", "/users/{user_id}/recommendations", {"user_id": user_id}, params=params
        )

    def similar_items(self, item_id: str, n: int | None = None, model: str | None = None) -> R:
        params = {"n": n, "model": model}
        return self._request("GET", "/items/{item_id}/similar", {"item_id": item_id}, params=params)

    def trending_items(self, n: int | None = None) -> R:
        return self._request("GET", "/items/trending", params={"n": n})

    def latest_items(self, n: int | None = None) -> R:
        return self._request("GET", "/items/latest", params={"n": n})

    def feed(
        self, user_id: str, n: int | None = None, cursor: str | None = None, explain: bool = False
    ) -> R:
        """A page of the user's feed; pass the answer's ``next_cursor`` for the next page."""
        params = {"n": n, "cursor": cursor, "explain": explain or None}
        return self._request("GET", "/users/{user_id}/feed", {"user_id": user_id}, params=params)

    def feed_settings(self, user_id: str) -> R:
        return self._request("GET", "/users/{user_id}/feed/settings", {"user_id": user_id})

    def update_feed_settings(self, user_id: str, **controls: Any) -> R:
        """Change some controls (``diversity=0.5``, ``muted_tags=[...]``); None resets one."""
        return self._request(
            "PATCH", "/users/{user_id}/feed/settings", {"user_id": user_id}, json=controls
        )

    def add_interests(self, user_id: str, tags: Sequence[str]) -> R:
        return self._request(
            "POST", "/users/{user_id}/interests", {"user_id": user_id}, json={"tags": list(tags)}
        )

    def feed_feedback(self, user_id: str, kind: str, **target: str) -> R:
        """``kind`` with its one target: ``item_id=``, ``author_id=`` or ``tag=``."""
        return self._request(
            "POST", "/users/{user_id}/feedback", {"user_id": user_id}, json={"kind": kind, **target}
        )

    def feed_sources(self, hours: float | None = None) -> R:
        return self._request("GET", "/feed/sources", params={"hours": hours})

    # -- engagement ---------------------------------------------------------------------------
    def points(self, user_id: str, n: int | None = None) -> R:
        return self._request(
            "GET", "/users/{user_id}/points", {"user_id": user_id}, params={"n": n}
        )

    def badges(self, user_id: str) -> R:
        return self._request("GET", "/users/{user_id}/badges", {"user_id": user_id})

    def trust(self, user_id: str) -> R:
        return self._request("GET", "/users/{user_id}/trust", {"user_id": user_id})

    def trust_levels(self) -> R:
        return self._request("GET", "/trust/levels")

    def digest(
        self,
        user_id: str,
        format: str | None = None,
        since: str | None = None,
        n: int | None = None,
    ) -> R:
        params = {"format": format, "since": since, "n": n}
        raw = format not in (None, "json")
        return self._request(
            "GET", "/users/{user_id}/digest", {"user_id": user_id}, params=params, raw=raw
        )

    def leaderboard(
        self, period: str | None = None, tag: str | None = None, n: int | None = None
    ) -> R:
        return self._request("GET", "/leaderboards", params={"period": period, "tag": tag, "n": n})

    def tasks(self, active: bool | None = None) -> R:
        return self._request("GET", "/tasks", params={"active": active})

    def create_task(self, task: Mapping[str, Any]) -> R:
        return self._request("POST", "/tasks", json=task)

    def task_leaderboard(self, task_id: str, n: int | None = None) -> R:
        return self._request(
            "GET", "/tasks/{task_id}/leaderboard", {"task_id": task_id}, params={"n": n}
        )

    def user_tasks(self, user_id: str, active: bool | None = None) -> R:
        return self._request(
            "GET", "/users/{user_id}/tasks", {"user_id": user_id}, params={"active": active}
        )

    def replay_engagement(self) -> R:
        return self._request("POST", "/engagement/replay")

    # -- moderation and media -----------------------------------------------------------------
    def flag_item(self, item_id: str, flag: Mapping[str, Any]) -> R:
        return self._request("POST", "/items/{item_id}/flags", {"item_id": item_id}, json=flag)

    def moderation_queue(
        self, status: str | None = None, limit: int | None = None, offset: int | None = None
    ) -> R:
        params = {"status": status, "limit": limit, "offset": offset}
        return self._request("GET", "/moderation/queue", params=params)

    def decide(self, case_id: int, decision: Mapping[str, Any]) -> R:
        """Uphold or reject a moderation case."""
        return self._request(
            "POST",
            "/moderation/queue/{case_id}/decision",
            {"case_id": str(case_id)},
            json=decision,
        )

    def item_moderation(self, item_id: str) -> R:
        return self._request("GET", "/moderation/items/{item_id}", {"item_id": item_id})

    def scan_for_moderation(self, threshold: float | None = None, limit: int | None = None) -> R:
        params = {"threshold": threshold, "limit": limit}
        return self._request("POST", "/moderation/scan", params=params)

    def add_media(self, item_id: str, media: Mapping[str, Any], source: str | None = None) -> R:
        return self._request(
            "POST", "/items/{item_id}/media", {"item_id": item_id}, {"source": source}, media
        )

    def item_media(self, item_id: str) -> R:
        return self._request("GET", "/items/{item_id}/media", {"item_id": item_id})

    # -- the ad market ------------------------------------------------------------------------
    def campaigns(self) -> R:
        return self._request("GET", "/campaigns")

    def create_campaign(self, campaign: Mapping[str, Any]) -> R:
        return self._request("POST", "/campaigns", json=campaign)

    def campaign(self, campaign_id: str) -> R:
        return self._request("GET", "/campaigns/{campaign_id}", {"campaign_id": campaign_id})

    def update_campaign(self, campaign_id: str, **changes: Any) -> R:
        """Pause (``status="paused"``), change the budget or bid..."""
        return self._request(
            "PATCH", "/campaigns/{campaign_id}", {"campaign_id": campaign_id}, json=changes
        )

    def campaign_report(self, campaign_id: str, release: str | None = None) -> R:
        return self._request(
            "GET",
            "/campaigns/{campaign_id}/report",
            {"campaign_id": campaign_id},
            params={"release": release},
        )

    def ad_click(self, click: Mapping[str, Any]) -> R:
        return self._request("POST", "/ads/clicks", json=click)

    def ad_conversion(self, conversion: Mapping[str, Any]) -> R:
        return self._request("POST", "/ads/conversions", json=conversion)

    # -- analytics ----------------------------------------------------------------------------
    def trending(self, **params: Any) -> R:
        """Trending tags or keywords with their bursts (``bucket``, ``buckets``, ``source``,
        ``alpha``, ``min_count``, ``now``)."""
        return self._request("GET", "/analytics/trending", params=params)

    def sentiment(self, **params: Any) -> R:
        """Sentiment by ``by`` (``tag``, ``day``...), with ``limit``, ``since``, ``until``."""
        return self._request("GET", "/analytics/sentiment", params=params)

    def influence(self, top: int | None = None, events: bool | None = None) -> R:
        return self._request("GET", "/analytics/influence", params={"top": top, "events": events})

    def reach(self, by: str | None = None, n: int | None = None) -> R:
        return self._request("GET", "/analytics/reach", params={"by": by, "n": n})

    def cascade(self, item_id: str) -> R:
        return self._request("GET", "/analytics/cascades/{item_id}", {"item_id": item_id})

    def active_users(self, **params: Any) -> R:
        """Active users per ``bucket`` (``day``, ``week``), ``since``, ``until``."""
        return self._request("GET", "/analytics/engagement/active", params=params)

    def attention(self, event_type: str | None = None, include_zero: bool | None = None) -> R:
        params = {"event_type": event_type, "include_zero": include_zero}
        return self._request("GET", "/analytics/engagement/attention", params=params)

    def engagement_rates(self, by: str | None = None, n: int | None = None) -> R:
        return self._request("GET", "/analytics/engagement/rates", params={"by": by, "n": n})

    def response_times(self, of: str | None = None) -> R:
        return self._request("GET", "/analytics/engagement/response-times", params={"of": of})

    def retention(self, weeks: int | None = None) -> R:
        return self._request("GET", "/analytics/engagement/retention", params={"weeks": weeks})

    def segments(self) -> R:
        return self._request("GET", "/analytics/segments")

    def compute_segments(self, spec: Mapping[str, Any]) -> R:
        return self._request("POST", "/analytics/segments", json=spec)

    def user_segment(self, user_id: str) -> R:
        return self._request("GET", "/users/{user_id}/segment", {"user_id": user_id})

    def suspicious_users(self, top: int | None = None) -> R:
        return self._request("GET", "/analytics/anomalies/users", params={"top": top})

    def suspicious_items(self, top: int | None = None) -> R:
        return self._request("GET", "/analytics/anomalies/items", params={"top": top})

    def alerts(self, status: str | None = None, limit: int | None = None) -> R:
        return self._request("GET", "/analytics/alerts", params={"status": status, "limit": limit})

    def alert_rules(self) -> R:
        return self._request("GET", "/analytics/alerts/rules")

    def add_alert_rule(self, rule: Mapping[str, Any]) -> R:
        return self._request("POST", "/analytics/alerts/rules", json=rule)

    def evaluate_alerts(self, now: str | None = None) -> R:
        return self._request("POST", "/analytics/alerts/evaluate", params={"now": now})

    def refresh_analytics(self, job: str | None = None) -> R:
        return self._request("POST", "/analytics/refresh", params={"job": job})

    # -- experiments --------------------------------------------------------------------------
    def experiments(self) -> R:
        return self._request("GET", "/experiments")

    def create_experiment(self, experiment: Mapping[str, Any]) -> R:
        return self._request("POST", "/experiments", json=experiment)

    def experiment(self, experiment_id: str) -> R:
        return self._request(
            "GET", "/experiments/{experiment_id}", {"experiment_id": experiment_id}
        )

    def start_experiment(self, experiment_id: str) -> R:
        return self._request(
            "POST", "/experiments/{experiment_id}/start", {"experiment_id": experiment_id}
        )

    def stop_experiment(self, experiment_id: str, stop: Mapping[str, Any] | None = None) -> R:
        return self._request(
            "POST",
            "/experiments/{experiment_id}/stop",
            {"experiment_id": experiment_id},
            json=stop or {},
        )

    def assignment(self, experiment_id: str, user_id: str) -> R:
        path = {"experiment_id": experiment_id, "user_id": user_id}
        return self._request("GET", "/experiments/{experiment_id}/assignment/{user_id}", path)

    def experiment_results(self, experiment_id: str, confidence: float | None = None) -> R:
        return self._request(
            "GET",
            "/experiments/{experiment_id}/results",
            {"experiment_id": experiment_id},
            params={"confidence": confidence},
        )

    # -- operations and privacy ---------------------------------------------------------------
    def health(self) -> R:
        return self._request("GET", "/health")

    def metrics(self) -> R:
        """The Prometheus text (a ``metrics`` or admin key)."""
        return self._request("GET", "/metrics", raw=True)

    def models(self) -> R:
        return self._request("GET", "/models")

    def reload_models(self) -> R:
        return self._request("POST", "/admin/reload")

    def audit(self, **params: Any) -> R:
        """The admin audit log (``since``, ``route``, ``key_id``, ``cursor``, ``limit``)."""
        return self._request("GET", "/admin/audit", params=params)

    def erasures(self, before: str | None = None, limit: int | None = None) -> R:
        params = {"before": before, "limit": limit}
        return self._request("GET", "/admin/erasures", params=params)

    def erasure(self, erasure_id: int) -> R:
        return self._request("GET", "/admin/erasures/{erasure_id}", {"erasure_id": str(erasure_id)})

    def privacy_budget(self, day: str | None = None) -> R:
        return self._request("GET", "/admin/privacy/budget", params={"day": day})
