"""Trending topics and opinion alerts: the burst detector, keywords, alert episodes, routes."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from agora.analytics.trending import service as tr
from agora.api.app import create_app
from agora.config import BUILTIN_EVENT_TYPES, Settings
from agora.db.engine import session_factory, transaction
from agora.db.partitions import managed_outside_metadata
from agora.db.tables import Base
from agora.ingest.schemas import Dataset, ItemIn, UserIn
from agora.ingest.service import add_dataset

DAY = timedelta(days=1)
START = datetime(2026, 3, 1, tzinfo=UTC)
ADMIN = {"Authorization": "Bearer test-admin"}
READ = {"Authorization": "Bearer r"}
WRITE = {"Authorization": "Bearer w"}


def test_a_spike_after_a_steady_baseline_is_one_burst_and_steady_keys_none() -> None:
    steady = [3] * 30
    spiky = [2] * 20 + [15, 18] + [2] * 8
    records = [
        (START + DAY * t + timedelta(hours=1 + i), [key])
        for key, counts in (("steady", steady), ("spiky", spiky))
        for t, n in enumerate(counts)
        for i in range(n)
    ]
    series = tr.count_series(records, tr.BUCKETS["day"], START, START + 30 * DAY)
    assert series.counts.shape == (2, 30)
    assert series.counts[series.keys.index("spiky")].tolist() == spiky
    bursts = tr.detect_bursts(series, halflife=7, warmup=7, alpha=1e-3, min_count=5)
    assert [(b.key, b.start, b.end) for b in bursts] == [
        ("spiky", START + 20 * DAY, START + 22 * DAY)
    ]
    assert bursts[0].peak_count == 18 and bursts[0].total == 33
    assert bursts[0].baseline > 2  # the first burst day already raised the baseline
    # a spike below min_count is not a burst even if improbable
    assert tr.detect_bursts(series, min_count=50) == []


def test_ewma_baseline_starts_at_the_warmup_mean_and_follows_the_counts() -> None:
    baseline = tr.ewma_baseline(np.array([[2, 4, 6, 6]]), halflife=1, warmup=2)
    assert np.isnan(baseline[0, :2]).all()
    assert baseline[0, 2:].tolist() == [3.0, 4.5]  # 3, then halfway to 6


def test_keywords_use_jieba_for_chinese_and_drop_stop_words() -> None:
    keys = tr.item_keys(None, "比特币价格暴涨", "The price of bitcoin", "keywords")
    assert {"价格", "暴涨", "price", "bitcoin"} <= set(keys)
    assert "币" not in keys and "the" not in keys and "of" not in keys
    assert tr.item_keys(["a", "b"], "", "", "tags") == ["a", "b"]
    with pytest.raises(ValueError, match="source"):
        tr.item_keys([], "", "", "words")


class WordScorer:
    """Deterministic sentiment: -1 for texts containing "bad", +1 otherwise."""

    def predict(self, texts: Sequence[str]) -> tuple[list[str], np.ndarray]:
        scores = np.array([-1.0 if "bad" in t else 1.0 for t in texts])
        return ["negative" if s < 0 else "positive" for s in scores], scores


def _posts(day_counts: dict[int, int], tag: str, title: str = "post") -> list[ItemIn]:
    return [
        ItemIn(
            item_id=f"{tag}-{day}-{i}",
            author_id="alice",
            title=title if day < 12 else f"{title} bad",
            tags=[tag],
            created=START + day * DAY + timedelta(hours=2, minutes=i),
        )
        for day, n in day_counts.items()
        for i in range(n)
    ]


@pytest.fixture
def engine_with_posts(engine: Engine) -> Engine:
    # staking: 2 posts a day, 12 on day 10 and 11; fees: 3 a day, negative from day 12 on
    staking = {d: 2 for d in range(16)} | {10: 12, 11: 12}
    fees = {d: 3 for d in range(16)}
    dataset = Dataset(
        users=[UserIn(user_id="alice", created=START)],
        items=_posts(staking, "staking") + _posts(fees, "fees"),
    )
    with transaction(session_factory(engine)) as session:
        add_dataset(session, dataset, BUILTIN_EVENT_TYPES)
    return engine


def test_migration_creates_exactly_the_analytics_tables(engine: Engine) -> None:
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"include_object": managed_outside_metadata}
        )
        diff = compare_metadata(context, Base.metadata)
    assert [d for d in diff if "analytics_" in str(d)] == []


def test_a_volume_spike_fires_once_per_episode(engine_with_posts: Engine) -> None:
    sessions = session_factory(engine_with_posts)
    with transaction(sessions) as session:
        spec = tr.RuleSpec(name="any-tag-spike", kind="volume_spike", baseline_buckets=7)
        tr.upsert_rule(session, spec, START)

    def run(day: int) -> tr.AlertRun:
        with transaction(sessions) as session:
            return tr.evaluate_alerts(session, START + day * DAY)

    assert run(10).fired == []  # day 9 is ordinary
    first = run(11)  # day 10: 12 staking posts against a baseline of 2
    assert [(e.key, e.value, e.baseline) for e in first.fired] == [("staking", 12.0, 2.0)]
    again = run(11)  # the same evaluation twice fires nothing new
    assert again.fired == [] and [e.key for e in again.ongoing] == ["staking"]
    assert run(12).fired == []  # day 11 still bursting: the episode goes on
    ended = run(13)  # day 12 is back to 2
    assert [e.key for e in ended.closed] == ["staking"] and ended.fired == []
    assert run(14).closed == []
    with sessions() as session:
        episodes = tr.list_alerts(session)
        assert len(episodes) == 1
        assert episodes[0].status == "closed"
        assert episodes[0].peak == 12.0
        assert episodes[0].closed is not None
        assert tr.list_alerts(session, "open") == []


def test_a_sentiment_drop_fires_with_the_given_scorer(engine_with_posts: Engine) -> None:
    sessions = session_factory(engine_with_posts)
    with transaction(sessions) as session:
        spec = tr.RuleSpec(
            name="fees-mood",
            kind="sentiment_drop",
            tag="fees",
            baseline_buckets=3,
            threshold=0.5,
            min_count=3,
        )
        tr.upsert_rule(session, spec, START)
        with pytest.raises(ValueError, match="sentiment scorer"):
            tr.evaluate_alerts(session, START + 12 * DAY)
    with transaction(sessions) as session:
        assert tr.evaluate_alerts(session, START + 12 * DAY, WordScorer()).fired == []
    with transaction(sessions) as session:
        fired = tr.evaluate_alerts(session, START + 13 * DAY, WordScorer()).fired
        assert [(e.key, e.value, e.baseline) for e in fired] == [("fees", -1.0, 1.0)]
        assert fired[0].detail == {"n": 3, "n_baseline": 9}
    with transaction(sessions) as session:  # the baseline now holds the bad days too
        later = tr.evaluate_alerts(session, START + 16 * DAY, WordScorer())
        assert later.fired == [] and len(later.closed) == 1


@pytest.fixture
def client(tmp_path: Path, engine_with_posts: Engine, database_url: str) -> Iterator[TestClient]:
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        api_key="test-admin",
        api_keys={"r": ["read"], "w": ["write"]},
    )
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def test_rules_trending_and_alerts_through_the_routes(client: TestClient) -> None:
    rule = {"name": "spikes", "kind": "volume_spike", "min_count": 5}
    created = client.post("/analytics/alerts/rules", json=rule, headers=ADMIN)
    assert created.status_code == 201, created.text
    assert created.json()["threshold"] == 1e-3 and created.json()["tag"] is None
    same = client.post("/analytics/alerts/rules", json=rule, headers=ADMIN)
    assert same.status_code == 200 and same.json()["id"] == created.json()["id"]
    bad = client.post("/analytics/alerts/rules", json={**rule, "bucket": "month"}, headers=ADMIN)
    assert bad.status_code == 422
    assert [p["location"] for p in bad.json()["problems"]] == ["body.bucket"]
    no_name = client.post("/analytics/alerts/rules", json={"kind": "x"}, headers=ADMIN).json()
    assert {p["location"] for p in no_name["problems"]} == {"body.name", "body.kind"}
    assert client.post("/analytics/alerts/rules", json=rule, headers=WRITE).status_code == 403
    assert len(client.get("/analytics/alerts/rules", headers=READ).json()) == 1

    now = (START + 11 * DAY).isoformat()
    trend = client.get(
        "/analytics/trending", params={"now": now, "buckets": 11}, headers=READ
    ).json()
    assert [b["key"] for b in trend["trending"]] == ["staking"]
    assert trend["trending"][0]["peak_count"] == 12

    fired = client.post("/analytics/alerts/evaluate", params={"now": now}, headers=ADMIN).json()
    assert [a["key"] for a in fired["fired"]] == ["staking"]
    again = client.post("/analytics/alerts/evaluate", params={"now": now}, headers=ADMIN).json()
    assert again["fired"] == []
    listed = client.get("/analytics/alerts?status=open", headers=READ).json()
    assert [(a["key"], a["status"], a["value"]) for a in listed] == [("staking", "open", 12.0)]

    mood = {"name": "mood", "kind": "sentiment_drop", "tag": "fees"}
    assert client.post("/analytics/alerts/rules", json=mood, headers=ADMIN).status_code == 201
    # no model trained here: the one shipped in the package scores (no 503, nothing to train)
    scored = client.post("/analytics/alerts/evaluate", params={"now": now}, headers=ADMIN)
    assert scored.status_code == 200, scored.text
    assert scored.json()["now_source"] == "query"
    assert [a["key"] for a in scored.json()["ongoing"]] == ["staking"]


def test_cli_rule_alerts_and_trending(
    engine_with_posts: Engine, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from agora.analytics.trending.cli import app
    from agora.config import get_settings

    monkeypatch.setenv("AGORA_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("AGORA_DATABASE_URL", database_url)
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        now = (START + 11 * DAY).isoformat()
        created = runner.invoke(app, ["rule", "spikes"])
        assert created.exit_code == 0 and "created rule" in created.output
        assert "updated rule" in runner.invoke(app, ["rule", "spikes"]).output
        assert runner.invoke(app, ["rule", "x", "--bucket", "month"]).exit_code != 0
        run = runner.invoke(app, ["alerts", "--evaluate", "--now", now], terminal_width=200)
        assert run.exit_code == 0, run.output
        assert "fired 1" in run.output and "staking" in run.output
        again = runner.invoke(app, ["alerts", "--evaluate", "--now", now], terminal_width=200)
        assert "fired 0, ongoing 1" in again.output
        trend = runner.invoke(
            app, ["trending", "--now", now, "--buckets", "11"], terminal_width=200
        )
        assert trend.exit_code == 0 and "staking" in trend.output
    finally:
        get_settings.cache_clear()
