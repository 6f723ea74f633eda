"""The experiment routes through the real app (SQLite and PostgreSQL): scopes, 4xx with the
location of bad input, and what a user sees after each call."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from experiments_support import community, experiment
from fastapi.testclient import TestClient

from agora.api.app import create_app
from agora.config import Settings
from agora.db.engine import transaction
from agora.experiments import service
from agora.experiments.assignment import assign
from agora.experiments.views import router
from agora.ingest.service import add_dataset

ADMIN = {"Authorization": "Bearer admin"}
WRITER = {"Authorization": "Bearer writer"}
READER = {"Authorization": "Bearer reader"}


@pytest.fixture
def client(
    database_url: str, tmp_path: Path, migrated_store: Callable[[str], str]
) -> Iterator[TestClient]:
    """The app (with the test router) on a copy of the run's migrated store holding the
    community."""
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=migrated_store(database_url),
        api_key="admin",
        api_keys={"writer": ["write"], "reader": ["read"]},
    )
    app = create_app(settings)
    app.include_router(router)
    with TestClient(app) as client:
        with transaction(app.state.sessions) as session:
            add_dataset(session, community(), settings.event_types, max_future_seconds=1e9)
        client.app_state = app.state
        yield client


def _locations(response) -> list[str]:  # noqa: ANN001
    return [p["location"] for p in response.json()["problems"]]


def test_create_start_assign_stop_and_results(client: TestClient) -> None:
    assert client.post("/experiments", json=experiment(), headers=WRITER).status_code == 403
    created = client.post("/experiments", json=experiment(), headers=ADMIN)
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["status"] == "draft" and body["control"] == "control"
    assert [a["exposed_users"] for a in body["arms"]] == [0, 0]
    assert client.post("/experiments", json=experiment(), headers=ADMIN).status_code == 200
    conflict = client.post("/experiments", json=experiment(looks=3), headers=ADMIN)
    assert conflict.status_code == 409 and "other settings" in conflict.text
    started = client.post("/experiments/diverse/start", headers=ADMIN)
    assert started.json()["status"] == "running" and started.json()["started"]

    arm = assign("diverse", "u3", [("control", 1.0), ("diverse", 1.0)])
    seen = client.get("/experiments/diverse/assignment/u3", headers=READER)
    assert seen.status_code == 200
    assert seen.json()["arm"] == arm and seen.json()["first_exposed"] is None
    diverse = {"diversity": 0.6, "exploration": 0.2}
    assert seen.json()["overrides"] == ({} if arm == "control" else diverse)
    # the feed applies the arm: now the user is exposed
    with transaction(client.app_state.sessions) as session:
        service.arm_overrides(session, "u3", service.get_experiment(session, "diverse").started)
    assert client.get("/experiments/diverse/assignment/u3", headers=READER).json()["first_exposed"]
    listed = client.get("/experiments", headers=ADMIN).json()
    assert [e["experiment_id"] for e in listed] == ["diverse"]
    assert sum(a["exposed_users"] for a in listed[0]["arms"]) == 1

    results = client.get("/experiments/diverse/results?confidence=0.9", headers=ADMIN)
    assert results.status_code == 200, results.text
    assert results.json()["confidence"] == 0.9
    assert {a["arm"] for a in results.json()["arms"]} == {"control", "diverse"}
    metrics = [c["metric"] for c in results.json()["comparisons"][0]["comparisons"]]
    assert metrics == ["ctr", "engagement_per_user", "retention"]

    stopped = client.post("/experiments/diverse/stop", json={"reason": "enough"}, headers=ADMIN)
    assert stopped.json()["status"] == "stopped" and stopped.json()["stop_reason"] == "enough"
    again = client.post("/experiments/diverse/stop", headers=ADMIN)  # no body: kept reason
    assert again.status_code == 200 and again.json()["stop_reason"] == "enough"
    restart = client.post("/experiments/diverse/start", headers=ADMIN)
    assert restart.status_code == 409 and "stopped" in restart.text


def test_bad_input_gets_4xx_with_its_location_and_stores_nothing(client: TestClient) -> None:
    one_arm = client.post("/experiments", json=experiment(arms=[{"name": "a"}]), headers=ADMIN)
    assert one_arm.status_code == 422 and _locations(one_arm) == ["body.arms"]
    bad_override = experiment()
    bad_override["arms"][1]["overrides"]["diversity"] = 2
    response = client.post("/experiments", json=bad_override, headers=ADMIN)
    assert response.status_code == 422
    assert _locations(response) == ["body.arms.1.overrides.diversity"]
    unknown_control = client.post("/experiments", json=experiment(control="x"), headers=ADMIN)
    assert unknown_control.status_code == 422 and "control 'x'" in unknown_control.text
    bad_metric = experiment(guardrails=[{"metric": "revenue"}], planned_users=0)
    response = client.post("/experiments", json=bad_metric, headers=ADMIN)
    assert sorted(_locations(response)) == ["body.guardrails.0.metric", "body.planned_users"]
    extra = client.post("/experiments", json=experiment(colour="red"), headers=ADMIN)
    assert _locations(extra) == ["body.colour"]
    malformed = client.post(
        "/experiments", content=b'{"experiment_id": ', headers={**ADMIN, "Content-Type": "json"}
    )
    assert 400 <= malformed.status_code < 500
    assert client.get("/experiments", headers=ADMIN).json() == []

    assert client.get("/experiments/nope", headers=ADMIN).status_code == 404
    assert client.get("/experiments/nope/results", headers=ADMIN).status_code == 404
    assert client.get("/experiments/nope/assignment/u1", headers=READER).status_code == 404
    assert client.post("/experiments/nope/stop", headers=ADMIN).status_code == 404
    for path in ("/experiments/a%00b", "/experiments/a%00b/results", "/experiments/a%00b/stop"):
        response = (client.post if path.endswith("stop") else client.get)(path, headers=ADMIN)
        assert 400 <= response.status_code < 500, (path, response.text)
    assert client.get("/experiments/nope", headers=READER).status_code == 403
    assert client.get("/experiments").status_code == 401
    client.post("/experiments", json=experiment(), headers=ADMIN)
    nul = client.get("/experiments/diverse/assignment/u%00", headers=READER)
    assert nul.status_code == 422 and _locations(nul) == ["path.user_id"]
    low = client.get("/experiments/diverse/results?confidence=0.2", headers=ADMIN)
    assert low.status_code == 422
    bad_stop = client.post("/experiments/diverse/stop", json={"reason": ""}, headers=ADMIN)
    assert bad_stop.status_code == 422 and _locations(bad_stop) == ["body.reason"]
    assert client.get("/experiments/diverse", headers=ADMIN).json()["status"] == "draft"
