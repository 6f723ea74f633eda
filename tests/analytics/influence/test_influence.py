"""Influence and spread: centrality, reach, share cascades, CELF seeds, the routes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from analytics_support import computed
from fastapi.testclient import TestClient

from agora.analytics.influence import service as inf
from agora.config import BUILTIN_EVENT_TYPES
from agora.db.engine import make_engine, migrate, session_factory, transaction
from agora.ingest.schemas import Dataset, EdgeIn, EventIn, ItemIn, UserIn
from agora.ingest.service import add_dataset

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
READ = {"Authorization": "Bearer r"}


def test_star_centre_has_the_highest_pagerank_and_eigenvector() -> None:
    graph = inf.graph_from_edges([(f"leaf{i}", "hub") for i in range(6)] + [("hub", "leaf0")])
    ranked = inf.centrality(graph)
    assert ranked[0].user_id == "hub"
    assert ranked[0].eigenvector == pytest.approx(1.0)
    assert ranked[0].in_degree == 6
    assert sum(r.pagerank for r in ranked) == pytest.approx(1.0)
    # leaf0 gets the hub's vote, so it beats the other leaves
    assert ranked[1].user_id == "leaf0"
    assert len(inf.centrality(graph, top=3)) == 3


def test_chain_cascade_has_depth_n_minus_1_and_known_virality() -> None:
    n = 6
    shares = [inf.Share(f"u{i}", float(i * 10), via=f"u{i - 1}") for i in range(1, n)]
    cascade = inf.reconstruct_cascade("u0", 0.0, shares)
    assert cascade.size == n
    assert cascade.depth == n - 1
    assert cascade.max_breadth == 1
    # mean distance over the pairs of a path of n nodes is (n + 1) / 3
    assert cascade.structural_virality() == pytest.approx((n + 1) / 3)
    assert cascade.time_to_reach(3) == 20.0
    assert cascade.time_to_reach(n + 1) is None


def test_star_cascade_is_broad_and_shallow() -> None:
    shares = [inf.Share(f"u{i}", float(i)) for i in range(1, 5)]
    cascade = inf.reconstruct_cascade("root", 0.0, shares)
    assert (cascade.size, cascade.depth, cascade.max_breadth) == (5, 1, 4)
    assert cascade.structural_virality() == pytest.approx(2 * 4 / 5)
    assert set(cascade.how.values()) == {"root"}


def test_parent_rule_via_then_earliest_followed_sharer_then_author() -> None:
    shares = [
        inf.Share("b", 3.0),
        inf.Share("a", 1.0),
        inf.Share("c", 5.0),  # follows a and b: the earliest of them (a) is the parent
        inf.Share("d", 6.0, via="b"),  # names b: via wins over following a
        inf.Share("e", 7.0, via="zed"),  # zed never held the item: falls back to the root
        inf.Share("a", 9.0),  # second share by a: counted, does not move a
    ]
    follows = {("c", "b"), ("c", "a"), ("d", "a")}
    cascade = inf.reconstruct_cascade("author", 0.0, shares, follows)
    assert cascade.parent == {
        "author": None,
        "a": "author",
        "b": "author",
        "c": "a",
        "d": "b",
        "e": "author",
    }
    assert cascade.how["c"] == "follow" and cascade.how["d"] == "via"
    assert cascade.duplicates == 1
    assert cascade.depth == 2


def test_weibo_cascades_agree_with_the_dataset_fields(shared_data: Path) -> None:
    cascades = inf.read_weibo_cascades(shared_data / "weibo-cascades-sample" / "dataset.txt")
    assert len(cascades) == 30
    for c in cascades:
        tree = inf.reconstruct_cascade(c.root, c.published, c.shares())
        # the dataset counts every retweet; a user's repeated retweet is one node of the tree
        assert tree.size + tree.duplicates == c.n_declared
        assert tree.depth == c.path_depth
        last = max(t for _, t in c.paths)
        assert tree.time_to_reach(tree.size) <= last


def test_celf_picks_the_big_hub_then_the_other_one_and_matches_brute_force() -> None:
    edges = [("A", f"a{i}") for i in range(10)] + [("B", f"b{i}") for i in range(5)]
    edges += [("a0", "B"), ("C", "c0")]
    graph = inf.graph_from_edges(edges)
    certain = inf.LiveEdgeSamples(graph, p=1.0, runs=3, seed=0)
    seeds = inf.celf_seeds(graph, 2, certain)
    # with p = 1, A reaches its 10 leaves, B and B's 5 leaves (17 users); then C adds c0
    assert seeds.seeds == ["A", "C"]
    assert seeds.spread == [17, 19]
    noisy = inf.LiveEdgeSamples(graph, p=0.3, runs=200, seed=1)
    best = max(range(graph.vcount()), key=lambda v: noisy.spread([v]))
    first = inf.celf_seeds(graph, 3, noisy)
    assert first.seeds[0] == graph.vs[best]["name"]
    assert first.spread[0] == pytest.approx(noisy.spread([best]))
    index = {name: i for i, name in enumerate(graph.vs["name"])}
    assert first.spread[-1] == pytest.approx(noisy.spread([index[s] for s in first.seeds]))
    assert first.evaluations < graph.vcount() * 3  # lazy: far fewer than plain greedy


def _community() -> Dataset:
    """alice posts p1 and p2; bob, carol, dave share p1 along a chain; follows and likes."""
    users = [UserIn(user_id=u, created=T0) for u in ("alice", "bob", "carol", "dave", "erin")]
    items = [
        ItemIn(item_id="p1", author_id="alice", title="Staking", tags=["staking"], created=T0),
        ItemIn(item_id="p2", author_id="alice", title="Fees", tags=["fees"], created=T0),
        ItemIn(item_id="p3", author_id="erin", title="Wallet", tags=["wallet"], created=T0),
    ]
    minute = timedelta(minutes=1)
    events = [
        EventIn(event_id="s1", user_id="bob", item_id="p1", type="share", timestamp=T0 + minute),
        EventIn(
            event_id="s2",
            user_id="carol",
            item_id="p1",
            type="share",
            timestamp=T0 + 2 * minute,
            context={"via": "bob"},
        ),
        EventIn(
            event_id="s3",
            user_id="dave",
            item_id="p1",
            type="share",
            timestamp=T0 + 3 * minute,
            context={"parent": "s2"},
        ),
        EventIn(event_id="l1", user_id="erin", item_id="p1", type="like", timestamp=T0),
        EventIn(event_id="l2", user_id="bob", item_id="p2", type="like", timestamp=T0),
        EventIn(event_id="l3", user_id="alice", item_id="p1", type="view", timestamp=T0),
    ]
    edges = [
        EdgeIn(source_id="erin", target_id="alice", type="follow", created=T0),
        EdgeIn(source_id="bob", target_id="alice", type="block", created=T0),
        EdgeIn(source_id="carol", target_id="erin", type="friend", created=T0),
    ]
    return Dataset(users=users, items=items, events=events, edges=edges)


@pytest.fixture
def client(seeded_client) -> TestClient:  # noqa: ANN001
    return seeded_client(_community())


def test_store_graph_reach_and_cascade_through_the_routes(client: TestClient) -> None:
    body = computed(client, "/analytics/influence?top=3", READ).json()
    assert body["top"][0]["user_id"] == "alice"  # everyone's events point at her posts
    assert len(body["top"]) == 3
    # block edges and the author's own view do not count; friend counts both ways
    full = client.get("/analytics/influence?top=100", headers=READ).json()
    assert full["users"] == 5
    assert full["edges"] == 6  # bob/carol/dave/erin -> alice, carol <-> erin

    reach = client.get("/analytics/reach?by=item", headers=READ).json()
    assert reach[0] == {"key": "p1", "users": 4, "events": 4}
    authors = client.get("/analytics/reach?by=author", headers=READ).json()
    assert authors[0] == {"key": "alice", "users": 4, "events": 5}

    cascade = client.get("/analytics/cascades/p1", headers=READ).json()
    parents = {n["user_id"]: n["parent"] for n in cascade["nodes"]}
    assert parents == {"alice": None, "bob": "alice", "carol": "bob", "dave": "carol"}
    assert (cascade["size"], cascade["depth"], cascade["max_breadth"]) == (4, 3, 1)
    assert cascade["nodes"][-1]["seconds"] == 180.0
    assert client.get("/analytics/cascades/p3", headers=READ).json()["size"] == 1
    missing = client.get("/analytics/cascades/nope", headers=READ)
    assert missing.status_code == 404
    assert client.get("/analytics/influence").status_code == 401
    assert client.get("/analytics/reach?by=tag", headers=READ).status_code == 422


def test_cli_cascades_of_the_weibo_file_and_influence_of_the_store(
    shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from agora.analytics.influence.cli import app
    from agora.config import get_settings

    url = f"sqlite:///{tmp_path / 'agora.db'}"
    monkeypatch.setenv("AGORA_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("AGORA_DATABASE_URL", url)
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        weibo = shared_data / "weibo-cascades-sample" / "dataset.txt"
        result = runner.invoke(app, ["cascades", "--weibo", str(weibo)], terminal_width=200)
        assert result.exit_code == 0, result.output
        assert "14709" in result.output and result.output.count("\n") > 30
        assert runner.invoke(app, ["cascades"]).exit_code != 0  # neither item nor file
        engine = make_engine(url)
        migrate(engine)
        with transaction(session_factory(engine)) as session:
            add_dataset(session, _community(), BUILTIN_EVENT_TYPES)
        engine.dispose()
        result = runner.invoke(app, ["influence", "--top", "2"], terminal_width=200)
        assert result.exit_code == 0, result.output
        assert "alice" in result.output and "5 users" in result.output
        result = runner.invoke(app, ["cascades", "p1"], terminal_width=200)
        assert result.exit_code == 0 and "p1" in result.output
        assert runner.invoke(app, ["cascades", "nope"]).exit_code == 1
        result = runner.invoke(app, ["seeds", "--k", "1", "--p", "1"], terminal_width=200)
        assert result.exit_code == 0, result.output
    finally:
        get_settings.cache_clear()


def test_influence_is_read_from_the_stored_result(client: TestClient) -> None:
    first = client.get("/analytics/influence", headers=READ)
    assert first.status_code == 202 and first.json()["job"] == "influence"
    body = computed(client, "/analytics/influence?events=false", READ).json()
    assert (
        body["edges"] == 3 and body["computed_at"]
    )  # follow, friend both ways and body["age_seconds"] >= 0


def test_overflowing_stored_weights_cannot_abort_the_process() -> None:
    """A weight of 1e308 (stored before weights were bounded) made igraph's LAPACK code abort
    the whole server from the background influence job; it is capped, and junk is dropped."""
    edges = {("a", "b"): 1.7e308, ("b", "a"): 1.7e308, ("a", "c"): float("nan"), ("c", "b"): 2.0}
    edges |= {("c", "a"): -5.0, ("b", "c"): float("inf")}
    graph = inf.graph_from_edges(edges)
    assert max(graph.es["weight"]) == inf.MAX_EDGE_WEIGHT and graph.ecount() == 3
    ranked = inf.centrality(graph)
    assert {u.user_id for u in ranked} == {"a", "b", "c"}
    assert all(0 <= u.pagerank <= 1 and u.eigenvector >= 0 for u in ranked)


def test_edge_weights_are_bounded_at_the_edge() -> None:
    with pytest.raises(ValueError, match="less than or equal to 1000000"):
        EdgeIn(source_id="a", target_id="b", type="trust", weight=1e308)
