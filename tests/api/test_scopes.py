"""Every route states its scope and sensitive ones need admin (docs/scopes.md, generated from
the same routes, is checked with the other generated pages in tests/docs)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from api_support import ADMIN, READ, WRITE, event
from fastapi.testclient import TestClient

from agora.api import scopes_doc

REPO = Path(__file__).resolve().parents[2]

#: The only routes served without a key: liveness, the home page and the API documentation.
OPEN = {
    ("GET", "/"),
    ("GET", "/health"),
    ("GET", "/openapi.json"),
    ("GET", "/docs"),
    ("GET", "/redoc"),
    ("*", "/static"),  # Swagger UI, ReDoc, htmx and ECharts: vendored scripts and styles
    # the operator console's sign-in form and language switch (a session comes from a key)
    ("GET", "/console/signin"),
    ("POST", "/console/signin"),
    ("GET", "/console/language/{lang}"),
    ("GET", "/api/health/live"),  # the Gorse-compatible API's probes, open as in Gorse
    ("GET", "/api/health/ready"),
}

#: Routes reviewed for issue 11 (item 14) and the scope each must need.
REVIEWED = {
    # erasing data: a person (with their events) or an item (with everyone's events on it)
    ("DELETE", "/users/{user_id}"): "admin",
    ("DELETE", "/items/{item_id}"): "admin",
    # an unfollow or unblock undoes one write of one member: a platform sends it as it happens
    ("DELETE", "/edges"): "write",
    # who is suspected of fraud, and behavioural profiles of people
    ("GET", "/analytics/anomalies/users"): "admin",
    ("GET", "/analytics/anomalies/items"): "admin",
    ("GET", "/analytics/segments"): "admin",
    ("GET", "/users/{user_id}/segment"): "admin",
    ("POST", "/analytics/segments"): "admin",
    # operator configuration and jobs
    ("POST", "/analytics/alerts/rules"): "admin",
    ("POST", "/analytics/alerts/evaluate"): "admin",
    ("POST", "/admin/reload"): "admin",
    ("POST", "/engagement/replay"): "admin",
    ("POST", "/tasks"): "admin",
    # moderation decisions
    ("GET", "/moderation/queue"): "admin",
    ("POST", "/moderation/queue/{case_id}/decision"): "admin",
    ("POST", "/moderation/scan"): "admin",
    # campaign money
    ("GET", "/campaigns"): "admin",
    ("POST", "/campaigns"): "admin",
    ("PATCH", "/campaigns/{campaign_id}"): "admin",
    ("GET", "/campaigns/{campaign_id}/report"): "admin",
    # ... and in the operator console
    ("POST", "/console/market"): "admin",
    ("POST", "/console/market/{campaign_id}/change"): "admin",
    # experiment control and results
    ("POST", "/experiments"): "admin",
    ("POST", "/experiments/{experiment_id}/start"): "admin",
    ("POST", "/experiments/{experiment_id}/stop"): "admin",
    ("GET", "/experiments/{experiment_id}/results"): "admin",
    ("POST", "/console/experiments/{experiment_id}/start"): "admin",
    ("POST", "/console/experiments/{experiment_id}/stop"): "admin",
    # what members do, relayed by the platform
    ("POST", "/events"): "write",
    ("POST", "/items/{item_id}/flags"): "write",
    ("POST", "/ads/clicks"): "write",
    # what a platform shows its members
    ("GET", "/users/{user_id}/feed"): "read",
    ("GET", "/users/{user_id}/recommendations"): "read",
    # the Gorse-compatible API (issue 16): the same rules as Agora's own routes
    ("DELETE", "/api/user/{user_id}"): "admin",
    ("DELETE", "/api/item/{item_id}"): "admin",
    ("POST", "/api/feedback"): "write",
    ("DELETE", "/api/feedback/{user_id}/{item_id}"): "write",
    ("GET", "/api/recommend/{user_id}"): "read",
    # the operator console: an edit of a member's controls is a write, like the API's
    ("POST", "/console/users/{user_id}/controls"): "write",
    ("GET", "/console/users/{user_id}"): "read",
    # the console's Models and Moderation pages: training and decisions are admin, as the API's
    ("POST", "/console/models/train"): "admin",
    ("GET", "/console/models/runs/{run_id}/progress"): "read",
    ("POST", "/console/moderation/cases/{case_id}/decision"): "admin",
    ("GET", "/console/moderation"): "read",
}


@pytest.fixture
def app(sqlite_client: TestClient):
    return sqlite_client.app


def test_every_route_but_the_open_ones_declares_one_scope(app) -> None:
    rows = scopes_doc.route_scopes(app)
    assert rows, "no routes found"
    open_routes = {(row.method, row.path) for row in rows if row.scope is None}
    assert open_routes == OPEN
    for row in rows:
        assert row.scope in (None, "read", "write", "admin", "metrics"), row


def test_reviewed_routes_need_their_scope(app) -> None:
    declared = {(row.method, row.path): row.scope for row in scopes_doc.route_scopes(app)}
    wrong = {route: (declared.get(route), scope) for route, scope in REVIEWED.items()}
    wrong = {route: pair for route, pair in wrong.items() if pair[0] != pair[1]}
    assert wrong == {}, "route: (declared, expected)"


def test_every_keyed_route_answers_401_without_a_key(sqlite_client: TestClient) -> None:
    for row in scopes_doc.route_scopes(sqlite_client.app):
        if row.scope is None:
            continue
        path = re.sub(r"\{[^}]+\}", "x", row.path)
        answer = sqlite_client.request(row.method, path, follow_redirects=False)
        if row.path.startswith("/console/"):  # cookie sessions: a page sends to the sign-in
            expected = 303 if row.method == "GET" else 401
            assert answer.status_code == expected, (row.method, row.path, answer.status_code)
            continue
        assert answer.status_code == 401, (row.method, row.path, answer.status_code)
        assert answer.headers["www-authenticate"].startswith("Bearer")


def test_a_write_key_cannot_erase_a_person_or_an_item(sqlite_client: TestClient) -> None:
    c = sqlite_client
    assert (
        c.post("/events", json=event(1, user="alice", item="p1"), headers=WRITE).status_code == 201
    )
    refused = c.delete("/users/alice", headers=WRITE)
    assert refused.status_code == 403 and "admin" in refused.json()["detail"]
    assert c.delete("/items/p1", headers=WRITE).status_code == 403
    assert c.get("/users/alice", headers=READ).json()["n_events"] == 1
    assert c.delete("/users/alice", headers=ADMIN).status_code == 204
    assert c.get("/users/alice", headers=READ).status_code == 404
    assert c.delete("/items/p1", headers=ADMIN).status_code == 204


def test_fraud_suspects_and_segments_are_admin_only(sqlite_client: TestClient) -> None:
    c = sqlite_client
    for path in ("/analytics/anomalies/users", "/analytics/anomalies/items", "/analytics/segments"):
        for key in (READ, WRITE):
            answer = c.get(path, headers=key)
            assert answer.status_code == 403, (path, answer.text)
        assert c.get(path, headers=ADMIN).status_code in (200, 202), path  # 202: first computation
