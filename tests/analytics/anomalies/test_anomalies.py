"""Fake-engagement detection: a like ring, click bots and a heavy user on a hand-built store."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from analytics_support import computed
from fastapi.testclient import TestClient

from agora.analytics.anomalies import service as anomalies
from agora.api.app import create_app
from agora.config import BUILTIN_EVENT_TYPES, Settings
from agora.db.engine import make_engine, migrate, session_factory, transaction
from agora.ingest.schemas import Dataset, EventIn, ItemIn, UserIn
from agora.ingest.service import add_dataset

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
ADMIN = {"Authorization": "Bearer test-admin"}
READ = {"Authorization": "Bearer r"}
WRITE = {"Authorization": "Bearer w"}
NORMAL = [f"n{i}" for i in range(20)]
RING = [f"r{i}" for i in range(4)]
BOTS = ["bot0", "bot1"]


def _community() -> Dataset:
    """20 old accounts liking a few posts at random over 60 days, a heavy old user liking 40,
    a ring of 4 new accounts liking each other's posts within minutes, 2 click bots and 5
    normal readers whose clicks are followed by dwell."""
    rng = random.Random(7)
    old = T0 - timedelta(days=365)
    fresh = T0 + timedelta(days=50)
    users = [UserIn(user_id=u, created=old) for u in [*NORMAL, "heavy", *BOTS]]
    users += [UserIn(user_id=u, created=fresh) for u in RING]
    items = [ItemIn(item_id=f"p-{u}", author_id=u, created=old) for u in NORMAL]
    items += [ItemIn(item_id=f"p-{u}", author_id=u, created=fresh) for u in RING]
    events: list[EventIn] = []

    def add(user: str, item: str, kind: str, when: datetime, value: float | None = None) -> None:
        events.append(
            EventIn(
                event_id=f"e{len(events)}",
                user_id=user,
                item_id=item,
                type=kind,
                timestamp=when,
                value=value,
            )
        )

    def random_time() -> datetime:
        return T0 + timedelta(seconds=rng.uniform(0, 60 * 86400))

    for u in NORMAL:
        for v in rng.sample([n for n in NORMAL if n != u], 4):
            add(u, f"p-{v}", "like", random_time())
    for v in rng.sample(NORMAL, 20):
        for _ in range(2):
            add("heavy", f"p-{v}", "like", random_time())
    for k, u in enumerate(RING):
        for j, v in enumerate(RING):
            if u != v:
                add(u, f"p-{v}", "like", fresh + timedelta(hours=j, minutes=k))
    for u in NORMAL[:5]:
        for v in rng.sample(NORMAL, 6):
            when = random_time()
            add(u, f"p-{v}", "click", when)
            add(u, f"p-{v}", "dwell", when + timedelta(seconds=5), value=40.0)
    for u in BOTS:
        for v in rng.sample(NORMAL, 8):
            add(u, f"p-{v}", "click", random_time())
    return Dataset(users=users, items=items, events=events)


def _store(url: str) -> None:
    engine = make_engine(url)
    migrate(engine)
    with transaction(session_factory(engine)) as session:
        add_dataset(session, _community(), BUILTIN_EVENT_TYPES)
    engine.dispose()


def test_ring_ranks_first_bots_lack_dwell_and_the_heavy_user_is_not_flagged(
    database_url: str,
) -> None:
    _store(database_url)
    engine = make_engine(database_url)
    with session_factory(engine)() as session:
        report = anomalies.detect(session)
    engine.dispose()
    by_user = {u.user_id: u for u in report.users}
    ranked = [u.user_id for u in report.users]
    worst_ring = max(ranked.index(u) for u in RING)
    assert worst_ring < min(ranked.index(u) for u in NORMAL)
    for u in RING:
        assert by_user[u].score >= report.params.flag_at
        assert anomalies.REASONS["reciprocity"] in by_user[u].reasons
        assert anomalies.REASONS["new_account"] in by_user[u].reasons
    for u in BOTS:
        assert by_user[u].reasons == [anomalies.REASONS["no_dwell"]]
        assert by_user[u].clicks == 8 and by_user[u].engagements == 0
    for u in NORMAL[:5]:
        assert by_user[u].signals["no_dwell"] == 0.0
    heavy = by_user["heavy"]
    assert heavy.engagements == 40 and heavy.score < report.params.flag_at
    assert not heavy.reasons
    assert {u.user_id for u in report.flagged()} == set(RING) | set(BOTS)
    # the ring's posts are the items engaged mostly by flagged users
    assert {i.item_id for i in report.items[:4]} == {f"p-{u}" for u in RING}


def test_a_like_farm_burst_is_found_and_its_item_scores_high(database_url: str) -> None:
    _store(database_url)
    farm = [f"farm{i}" for i in range(8)]
    when = T0 + timedelta(days=30)
    dataset = Dataset(
        users=[UserIn(user_id=u, created=when - timedelta(hours=1)) for u in farm],
        events=[
            EventIn(
                event_id=f"farm-{u}-{v}",
                user_id=u,
                item_id=f"p-{v}",
                type="like",
                timestamp=when + timedelta(minutes=3 * k + j),
            )
            for k, u in enumerate(farm)
            for j, v in enumerate(NORMAL[:3])
        ],
    )
    engine = make_engine(database_url)
    with transaction(session_factory(engine)) as session:
        add_dataset(session, dataset, BUILTIN_EVENT_TYPES)
    with session_factory(engine)() as session:
        report = anomalies.detect(session)
    engine.dispose()
    by_user = {u.user_id: u for u in report.users}
    for u in farm:
        assert anomalies.REASONS["burst"] in by_user[u].reasons
        assert anomalies.REASONS["synchrony"] in by_user[u].reasons
        assert by_user[u].score >= report.params.flag_at
    by_item = {i.item_id: i for i in report.items}
    for v in NORMAL[:3]:
        assert "engagement mostly in bursts" in by_item[f"p-{v}"].reasons
        assert by_item[f"p-{v}"].score >= 0.5
    assert not any("bursts" in by_item[f"p-{v}"].reasons for v in NORMAL[3:])


@pytest.fixture
def client(tmp_path: Path, database_url: str) -> Iterator[TestClient]:
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        api_key="test-admin",
        api_keys={"r": ["read"], "w": ["write"]},
    )
    _store(database_url)
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def test_routes_rank_users_and_items(client: TestClient) -> None:
    assert client.get("/analytics/anomalies/users", headers=READ).status_code == 403
    body = computed(client, "/analytics/anomalies/users?top=4", ADMIN).json()
    assert {u["user_id"] for u in body["top"]} == set(RING)
    assert body["flagged"] == 6 and body["scored"] == 27
    assert all(u["flagged"] and u["reasons"] for u in body["top"])
    assert set(body["weights"]) == set(anomalies.WEIGHTS)
    items = client.get("/analytics/anomalies/items?top=2", headers=ADMIN).json()
    assert len(items["top"]) == 2 and items["top"][0]["item_id"].startswith("p-r")
    assert client.get("/analytics/anomalies/users").status_code == 401
    assert client.get("/analytics/anomalies/users?top=0", headers=ADMIN).status_code == 422


def test_cli_prints_the_table_and_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from agora.cli.main import app
    from agora.config import get_settings

    url = f"sqlite:///{tmp_path / 'agora.db'}"
    monkeypatch.setenv("AGORA_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("AGORA_DATABASE_URL", url)
    get_settings.cache_clear()
    try:
        _store(url)
        runner = CliRunner()
        result = runner.invoke(app, ["analytics", "anomalies", "--top", "5"], terminal_width=250)
        assert result.exit_code == 0, result.output
        assert "r0" in result.output and "6 of 27" in result.output
        result = runner.invoke(app, ["analytics", "anomalies", "--top", "3", "--json"])
        assert result.exit_code == 0, result.output
        out = json.loads(result.output)
        assert out["flagged_users"] == 6 and len(out["users"]) == 3
        assert {u["user_id"] for u in out["users"]} <= set(RING)
        # what the API serves from storage, computed now (as the served app does periodically)
        result = runner.invoke(app, ["analytics", "refresh", "anomalies"])
        assert result.exit_code == 0, result.output
        assert result.output.startswith("anomalies: computed in ")
        settings = Settings(data_dir=tmp_path / "data", database_url=url, api_key="test-admin")
        with TestClient(create_app(settings)) as test_client:
            body = test_client.get("/analytics/anomalies/users", headers=ADMIN)
            assert body.status_code == 200 and body.json()["flagged"] == 6
        bad = runner.invoke(app, ["analytics", "refresh", "everything"])
        assert bad.exit_code != 0 and "refresh one of anomalies, influence" in bad.output
    finally:
        get_settings.cache_clear()


def test_anomalies_are_read_from_the_stored_result_with_its_age(client: TestClient) -> None:
    """A GET never recomputes over the store: the first answers 202 at once and starts the
    background job; later ones read the stored result and show its age; a refresh (admin
    scope) schedules a new computation."""
    first = client.get("/analytics/anomalies/items", headers=ADMIN)
    assert first.status_code == 202, first.text
    assert first.json()["status"] == "pending" and first.json()["job"] == "anomalies"
    body = computed(client, "/analytics/anomalies/users?top=2", ADMIN).json()
    computed_at = datetime.fromisoformat(body["computed_at"])
    assert 0 <= body["age_seconds"] < 120 and body["compute_seconds"] >= 0
    assert body["refresh"].startswith("POST /analytics/refresh?job=anomalies")
    assert len(body["top"]) == 2
    again = client.get("/analytics/anomalies/users?top=2", headers=ADMIN).json()
    assert again["computed_at"] == body["computed_at"]  # read, not recomputed
    assert client.post("/analytics/refresh?job=anomalies", headers=WRITE).status_code == 403
    refresh = client.post("/analytics/refresh?job=anomalies", headers=ADMIN)
    assert refresh.status_code == 202 and refresh.json()["scheduled"] == ["anomalies"]
    deadline = time.monotonic() + 60
    while True:
        latest = client.get("/analytics/anomalies/users?top=2", headers=ADMIN).json()
        if datetime.fromisoformat(latest["computed_at"]) > computed_at:
            break
        assert time.monotonic() < deadline, "the refresh was not computed"
        time.sleep(0.2)
    assert latest["refresh_requested"] is None
    assert client.post("/analytics/refresh?job=nope", headers=ADMIN).status_code == 422


def test_the_served_app_refreshes_heavy_results_periodically(
    tmp_path: Path, database_url: str
) -> None:
    """With no request at all, the app's background jobs compute and then recompute the heavy
    results every ``analytics_refresh_seconds``."""
    from sqlalchemy import select

    from agora.analytics.models import ComputedResult

    _store(database_url)
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        api_key="test-admin",
        analytics_refresh_seconds=0.5,
    )
    seen: dict[str, set] = {"anomalies": set(), "influence": set()}
    with TestClient(create_app(settings)) as test_client:
        deadline = time.monotonic() + 60
        while min(len(times) for times in seen.values()) < 2:
            assert time.monotonic() < deadline, f"not refreshed periodically: {seen}"
            with test_client.app.state.sessions() as session:
                for key, when in session.execute(
                    select(ComputedResult.key, ComputedResult.computed_at)
                ):
                    seen[key].add(when)
            time.sleep(0.2)
