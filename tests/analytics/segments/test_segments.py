"""User segments: recovery of two clear groups, descriptions, storing, ad targeting, routes, CLI."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from agora.analytics.segments import service as segments
from agora.analytics.segments.cli import app as cli_app
from agora.config import BUILTIN_EVENT_TYPES, Settings, get_settings
from agora.db.engine import make_engine, migrate, session_factory, transaction
from agora.db.tables import Group, Membership
from agora.feed.service import ad_viewer
from agora.ingest.schemas import Dataset, EventIn, GroupIn, ItemIn, MembershipIn, UserIn
from agora.ingest.service import add_dataset, upsert_groups
from agora.market import service as market
from agora.market.config import MarketConfig
from agora.market.schemas import CampaignIn

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
RUST = [f"r{i}" for i in range(10)]
HASKELL = [f"h{i}" for i in range(10)]
ADMIN = {"Authorization": "Bearer test-admin"}
READ = {"Authorization": "Bearer r"}


def community() -> Dataset:
    """r0-r9 only like posts tagged rust (+cargo), h0-h9 only haskell (+ghc); same behaviour."""
    items = [
        ItemIn(item_id=f"rust{j}", tags=["rust", "cargo"] if j % 2 else ["rust"], created=NOW)
        for j in range(6)
    ] + [
        ItemIn(item_id=f"hs{j}", tags=["haskell", "ghc"] if j % 2 else ["haskell"], created=NOW)
        for j in range(6)
    ]
    items += [ItemIn(item_id=f"ad{j}", author_id="brand", created=NOW) for j in range(2)]
    events = []
    for users, prefix in ((RUST, "rust"), (HASKELL, "hs")):
        for u, user in enumerate(users):
            for j in range(4):
                item = f"{prefix}{(u + j) % 6}"
                when = NOW - timedelta(days=j, hours=u)
                events.append(
                    EventIn(
                        event_id=f"{user}-{item}",
                        user_id=user,
                        item_id=item,
                        type="like",
                        timestamp=when,
                    )
                )
    return Dataset(
        users=[UserIn(user_id=u) for u in [*RUST, *HASKELL, "brand"]],
        items=items,
        events=events,
        groups=[GroupIn(group_id="pro")],
        memberships=[MembershipIn(group_id="pro", user_id="r0")],
    )


@pytest.fixture
def sessions(engine: Engine) -> Iterator[sessionmaker[Session]]:
    factory = session_factory(engine)
    with transaction(factory) as session:
        add_dataset(session, community(), BUILTIN_EVENT_TYPES, max_future_seconds=1e9)
    yield factory


def _groups(sessions) -> dict[str, dict]:
    with sessions() as session:
        return {s["group_id"]: s for s in segments.stored_segments(session)}


def test_two_clear_groups_are_recovered_and_described(sessions) -> None:
    with sessions() as session:
        result = segments.build_segments(session, k=2)
    assert result.k == 2
    assert sorted(result.users) == sorted(RUST + HASKELL)
    found = sorted(sorted(s.members) for s in result.segments)
    assert found == sorted([sorted(HASKELL), sorted(RUST)])
    for seg in result.segments:
        side = "rust" if seg.members[0].startswith("r") else "haskell"
        partner = "cargo" if side == "rust" else "ghc"
        assert seg.size == 10
        assert {t["tag"] for t in seg.top_tags} == {side, partner}
        assert all(t["lift"] == pytest.approx(2.0) for t in seg.top_tags)
        assert seg.top_event_types == [{"type": "like", "share": 1.0}]
        assert seg.median_events == 4
        assert len(seg.examples) == 5 and set(seg.examples) <= set(seg.members)
        assert side in seg.label and " · " in seg.label
    assert result.silhouette is not None and result.silhouette > 0.5


def test_a_trained_als_models_factors_can_replace_the_tag_profile(sessions, tmp_path) -> None:
    from agora.features.store import load_training_data
    from agora.models.artifacts import load_latest
    from agora.models.training import train_models

    with sessions() as session:
        interactions, side, _ = load_training_data(session, Settings().event_weights)
    als = {"als": {"factors": 8, "regularization": 0.1, "num_threads": 1}}
    train_models(interactions, side, ["als"], tmp_path, params=als, validate=False)
    with sessions() as session:
        result = segments.build_segments(session, k=2, factors=load_latest(tmp_path, "als"))
        assert result.embedding.shape[1] == len(segments.load_features(session).behaviour[0]) + 8
    found = sorted(sorted(s.members) for s in result.segments)
    assert found == sorted([sorted(HASKELL), sorted(RUST)])


def test_k_is_chosen_by_silhouette_and_seeded(sessions) -> None:
    with sessions() as session:
        first = segments.build_segments(session)
        again = segments.build_segments(session)
    assert first.k == max(first.silhouettes, key=first.silhouettes.get)
    assert set(first.silhouettes) == set(range(2, 9))
    assert np.array_equal(first.labels, again.labels)
    with sessions() as session, pytest.raises(ValueError, match="k must be between 1"):
        segments.build_segments(session, k=50)


def test_storing_twice_replaces_and_keeps_other_groups(sessions) -> None:
    with transaction(sessions) as session:
        segments.build_segments(session, k=3, store=True, now=NOW)
    assert set(_groups(sessions)) == {"segment:3:0", "segment:3:1", "segment:3:2"}
    with transaction(sessions) as session:
        segments.build_segments(session, k=2, store=True, now=NOW)
    stored = _groups(sessions)
    assert set(stored) == {"segment:2:0", "segment:2:1"}
    assert stored["segment:2:0"]["kind"] == "segment"
    with sessions() as session:
        members = session.scalar(
            select(func.count())
            .select_from(Membership)
            .join(Group, Group.id == Membership.group_id)
            .where(Group.external_id.startswith("segment:"))
        )
        assert members == 20  # each user in exactly one segment, old memberships gone
        assert session.scalar(select(Group.id).where(Group.external_id == "pro")) is not None
        [rust] = segments.user_segments(session, "r3")
        assert rust["top_tags"][0]["tag"] in {"rust", "cargo"}
        assert segments.user_segments(session, "brand") == []  # no events: not segmented


def test_a_campaign_targeting_a_segment_reaches_only_its_members(sessions) -> None:
    with transaction(sessions) as session:
        result = segments.build_segments(session, k=2, store=True, now=NOW)
    rust_segment = next(s.group_id for s in result.segments if s.members[0].startswith("r"))
    spec = CampaignIn(
        campaign_id="rusty",
        advertiser="Ferris",
        items=["ad0", "ad1"],
        bid=1.0,
        daily_budget=100.0,
        target_segments=[rust_segment],
    )
    with transaction(sessions) as session:
        market.create_campaign(session, spec, NOW)
    config = MarketConfig(holdout_share=0.0, pacing=False, slot_positions=[3, 10])
    page = [(f"p{i}", []) for i in range(10)]
    served = {}
    for user in RUST + HASKELL:
        with transaction(sessions) as session:
            viewer = ad_viewer(session, user)
            ads = market.serve_ads(session, viewer, page, config, NOW, np.random.default_rng(0))
        served[user] = {a.campaign_id for a in ads}
    assert {u for u, c in served.items() if "rusty" in c} == set(RUST)


@pytest.fixture
def client(seeded_client) -> TestClient:  # noqa: ANN001
    return seeded_client(community(), max_future_seconds=1e9)


def test_routes_build_list_and_user_segment(client: TestClient) -> None:
    assert client.get("/analytics/segments", headers=READ).status_code == 403
    assert client.get("/analytics/segments", headers=ADMIN).json() == []
    assert client.post("/analytics/segments", json={"k": 2}, headers=READ).status_code == 403
    bad = client.post("/analytics/segments", json={"k": 0}, headers=ADMIN)
    assert bad.status_code == 422 and "k" in bad.text
    built = client.post("/analytics/segments", json={"k": 2}, headers=ADMIN)
    assert built.status_code == 200, built.text
    body = built.json()
    assert (body["k"], body["users"]) == (2, 20)
    assert sorted(s["size"] for s in body["segments"]) == [10, 10]
    listed = client.get("/analytics/segments", headers=ADMIN).json()
    assert [s["group_id"] for s in listed] == ["segment:2:0", "segment:2:1"]
    assert client.get("/users/h4/segment", headers=READ).status_code == 403
    mine = client.get("/users/h4/segment", headers=ADMIN).json()
    assert {t["tag"] for t in mine["top_tags"]} == {"haskell", "ghc"}
    assert set(mine["examples"]) <= set(HASKELL) and mine["size"] == 10
    assert client.get("/users/brand/segment", headers=ADMIN).status_code == 404
    assert client.get("/users/nobody/segment", headers=ADMIN).status_code == 404


def test_cli_build_store_and_show(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("AGORA_DATABASE_URL", url)
    monkeypatch.setenv("AGORA_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    runner = CliRunner()
    empty = runner.invoke(cli_app, ["build"])
    assert empty.exit_code == 2 and "no events" in empty.output
    engine = make_engine(url)
    migrate(engine)
    with transaction(session_factory(engine)) as session:
        add_dataset(session, community(), BUILTIN_EVENT_TYPES, max_future_seconds=1e9)
    engine.dispose()
    assert runner.invoke(cli_app, ["show"]).exit_code == 1
    built = runner.invoke(cli_app, ["build", "--k", "2", "--store"])
    assert built.exit_code == 0, built.output
    assert "k=2" in built.output and "(stored)" in built.output
    shown = runner.invoke(cli_app, ["show"])
    assert shown.exit_code == 0 and "segment:2:1" in shown.output and "haskell" in shown.output
    get_settings.cache_clear()


WRITE = {"Authorization": "Bearer w"}


def test_a_write_key_cannot_overwrite_or_join_a_stored_segment(client: TestClient) -> None:
    assert client.post("/analytics/segments", json={"k": 2}, headers=ADMIN).status_code == 200
    before = client.get("/analytics/segments", headers=ADMIN).json()
    hostile = {"name": "x", "attributes": {"kind": "segment", "size": "lots", "top_tags": 7}}
    for group in ("segment:2:0", "segment:9:9"):
        put = client.put(f"/groups/{group}", json=hostile, headers=WRITE)
        assert put.status_code == 422, put.text
        assert "system-owned" in put.json()["detail"]
        assert put.json()["problems"][0]["location"] == "path.group_id"
    joined = client.post("/groups/segment:2:0/members", json={"user_id": "r1"}, headers=WRITE)
    assert joined.status_code == 422 and "system-owned" in joined.json()["detail"]
    assert client.get("/analytics/segments", headers=ADMIN).json() == before
    assert client.get("/users/h4/segment", headers=ADMIN).status_code == 200
    # other groups stay writable
    assert client.put("/groups/pro", json={"name": "Pro"}, headers=WRITE).status_code == 200


def test_segment_routes_survive_any_stored_group_row(client: TestClient) -> None:
    """Rows written behind the API's back (an import, an old version) never take a route down:
    a group that is not a valid segment is left out and named in the log, not a 500."""
    assert client.post("/analytics/segments", json={"k": 2}, headers=ADMIN).status_code == 200
    member = client.get("/users/h4/segment", headers=ADMIN).json()["group_id"]
    odd = [
        GroupIn(group_id=member, attributes={"kind": "segment", "size": "lots", "top_tags": 7}),
        GroupIn(group_id="segment:²:x", attributes={"label": None}),
        GroupIn(group_id="segment:", attributes={}),
    ]
    engine = make_engine(str(client.app.state.settings.resolved_database_url))
    with transaction(session_factory(engine)) as session:
        upsert_groups(session, odd)
    engine.dispose()
    listed = client.get("/analytics/segments", headers=ADMIN)
    assert listed.status_code == 200, listed.text
    assert member not in [s["group_id"] for s in listed.json()]
    assert len(listed.json()) == 1  # the other, intact segment
    mine = client.get("/users/h4/segment", headers=ADMIN)
    assert mine.status_code == 404 and "not a valid segment" in mine.json()["detail"]
