"""Unknown query parameters are a 422 at ``query.<name>`` listing the accepted names, on every
route (one app-wide check); list routes take ``n``."""

from __future__ import annotations

import re

from api_support import ADMIN, READ, event
from fastapi.testclient import TestClient


def _operations(client: TestClient) -> list[tuple[str, str]]:
    found = []
    for path, operations in client.app.openapi()["paths"].items():
        url = re.sub(r"{\w+}", "x", path)
        found += [(method, url) for method in operations if method != "head"]
    return found


def test_every_route_refuses_an_unknown_query_parameter(sqlite_client: TestClient) -> None:
    client = sqlite_client
    operations = _operations(client)
    assert len(operations) > 60
    for method, url in operations:
        answer = client.request(method, url, params={"bogus": "1"}, headers=ADMIN)
        assert answer.status_code == 422, (method, url, answer.status_code, answer.text)
        (problem,) = answer.json()["problems"]
        assert problem["location"] == "query.bogus", (method, url)
        assert problem["message"].startswith("unknown query parameter 'bogus'; ")


def test_the_message_lists_the_accepted_names(sqlite_client: TestClient) -> None:
    answer = sqlite_client.get("/leaderboards?period=all&nn=3", headers=READ)
    (problem,) = answer.json()["problems"]
    assert problem == {
        "location": "query.nn",
        "message": "unknown query parameter 'nn'; accepted: period, tag, n",
        "type": "extra_forbidden",
    }
    none = sqlite_client.get("/models?n=3", headers=READ).json()["problems"][0]
    assert none["message"] == "unknown query parameter 'n'; this route takes no query parameters"


def test_known_parameters_still_work(sqlite_client: TestClient) -> None:
    client = sqlite_client
    events = [event(i, user=f"u{i}", item=f"p{i % 3}") for i in range(9)]
    assert client.post("/events", json=events, headers=ADMIN).status_code == 201
    assert len(client.get("/items/latest?n=2", headers=READ).json()) == 2
    assert (
        client.delete("/edges?source_id=a&target_id=b&type=follow", headers=ADMIN).status_code
        == 404
    )


def test_reach_and_rates_take_n_like_the_other_list_routes(sqlite_client: TestClient) -> None:
    client = sqlite_client
    events = [event(i, user=f"u{i}", item=f"p{i % 3}") for i in range(9)]
    assert client.post("/events", json=events, headers=ADMIN).status_code == 201
    assert len(client.get("/analytics/reach?n=2", headers=READ).json()) == 2
    assert len(client.get("/analytics/engagement/rates?n=1", headers=READ).json()) == 1
    old = client.get("/analytics/reach?top=2", headers=READ)
    assert old.status_code == 422
    assert old.json()["problems"][0]["message"].endswith("accepted: by, n")


def test_every_operation_documents_the_422(sqlite_client: TestClient) -> None:
    paths = sqlite_client.app.openapi()["paths"]
    missing = [
        (method, path)
        for path, operations in paths.items()
        for method, operation in operations.items()
        if "422" not in operation["responses"]
    ]
    assert missing == []


def test_a_caller_without_the_scope_gets_401_or_403_before_any_word_on_parameters(
    sqlite_client: TestClient,
) -> None:
    """Authentication answers first: the accepted names are for callers the route serves."""
    keyless = sqlite_client.get("/analytics/reach?top=3")
    assert keyless.status_code == 401, keyless.text
    wrong_key = sqlite_client.get(
        "/analytics/reach?top=3", headers={"Authorization": "Bearer not-a-key"}
    )
    assert wrong_key.status_code == 401
    no_scope = sqlite_client.get("/analytics/segments?top=3", headers=READ)
    assert no_scope.status_code == 403 and "accepted" not in no_scope.text
    assert sqlite_client.get("/analytics/reach?top=3", headers=READ).status_code == 422
    assert sqlite_client.get("/health?x=1").status_code == 422  # open routes check at once
