"""The feed as a platform user sees it: pages, real-time changes, controls, feedback, cold start."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from feed_support import ADMIN, ITEMS, NOW, iso, make_client, seed, train
from sqlalchemy import func, select

from agora.db.engine import transaction
from agora.db.tables import User
from agora.feed import online, service, sources
from agora.feed.cache import FeedCache
from agora.feed.online import effective_controls
from agora.feed.schemas import FeedPageOut
from agora.feed.state import load_state


def page(client: TestClient, user: str = "me", **params) -> dict:  # noqa: ANN003
    answer = client.get(f"/users/{user}/feed", params=params, headers=ADMIN)
    assert answer.status_code == 200, answer.text
    return answer.json()


def ids(body: dict) -> list[str]:
    return [item["item_id"] for item in body["items"]]


def all_pages(client: TestClient, n: int = 5, user: str = "me") -> list[dict]:
    pages, cursor = [], None
    while True:
        body = page(client, user, n=n, **({"cursor": cursor} if cursor else {}))
        if not body["items"]:
            return pages
        pages.append(body)
        cursor = body["next_cursor"]


def impressions_written(client: TestClient, at_least: int) -> int:
    """The impressions ``/feed/sources`` counts, once there are ``at_least`` (they are written
    in batches behind the pages, at least every second)."""
    deadline = time.monotonic() + 10
    while (count := sum(client.get("/feed/sources", headers=ADMIN).json().values())) < at_least:
        assert time.monotonic() < deadline, f"{count} impressions written after 10 s"
        time.sleep(0.1)
    return count


def test_pages_never_repeat_and_say_where_items_come_from(community: TestClient) -> None:
    pages = all_pages(community)
    served = [i for body in pages for i in ids(body)]
    assert len(served) == len(set(served))  # no repeats across the pages of one session
    assert not {"a0", "a1"} & set(served)  # the user's own history never comes back
    # everything not touched, not their own is reachable by paging
    assert set(served) == set(ITEMS) - {"a0", "a1"}
    first = pages[0]
    assert sum(first["sources"].values()) == len(first["items"]) == 5
    assert first["model"] in ("itemknn", "ease", "als")
    for item in first["items"]:
        assert item["source"] in first["sources"] and item["reason"]
    # the followed user's fresh like is attributed to the social source, with its reason
    b5 = next(i for body in pages for i in body["items"] if i["item_id"] == "b5")
    assert b5["source"] == "in_network" and b5["reason"].startswith("1 person you follow")
    assert impressions_written(community, len(served)) == len(served)


def test_a_page_body_is_what_its_documented_model_writes(community: TestClient) -> None:
    """The route writes its JSON itself (orjson): byte for byte what the documented response
    model writes, None fields left out, with and without explanations."""
    for params in ({"n": 8}, {"n": 8, "explain": "true"}):
        answer = community.get("/users/me/feed", params=params, headers=ADMIN)
        assert answer.status_code == 200, answer.text
        documented = FeedPageOut.model_validate_json(answer.content)
        assert documented.model_dump_json(exclude_none=True).encode() == answer.content
        assert all(item.created is not None and not item.ad for item in documented.items)
    assert any(item.because for item in documented.items)  # explained: the past items named


def test_a_posted_event_changes_the_next_page(community: TestClient) -> None:
    top = ids(page(community, n=3))[0]
    event = {"event_id": "me-now", "user_id": "me", "item_id": top, "type": "like"}
    assert community.post("/events", json=event, headers=ADMIN).status_code == 201
    assert top not in {i for body in all_pages(community) for i in ids(body)}


def test_next_pages_come_from_the_first_ranking_and_still_follow_new_events(
    community: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker ranks a page and the two after it at once; the session's next pages take them
    while nothing changed, an event still removes its item from the next page, and a change
    of controls ranks afresh."""
    ranked = []  # pages ranked by the worker (the refresher ranks first pages ahead too)
    real = online._rank
    monkeypatch.setattr(online, "_rank", lambda *a, **k: ranked.append(1) or real(*a, **k))
    cache = community.app.state.feed_cache
    # what a ranking was made from (a record the refresher, busy after the fixture's training,
    # swaps in; the user's state) can change between two pages: the session then rightly
    # ranks again, and the test starts a new one
    for _ in range(5):
        ranked.clear()
        first = page(community, n=2)
        second = page(community, n=2, cursor=first["next_cursor"])
        if len(ranked) == 1:
            break
    assert len(ranked) == 1  # the second page was taken from the first ranking
    browsing, _ = service.decode_cursor(second["next_cursor"])
    with community.app.state.sessions() as session:
        snapshot = cache.catalogue.get(session)
    liked = snapshot.ids[int(cache.ahead(browsing).ranked.positions[0])]  # would open page 3
    event = {"event_id": "me-ahead", "user_id": "me", "item_id": liked, "type": "like"}
    assert community.post("/events", json=event, headers=ADMIN).status_code == 201
    third = page(community, n=2, cursor=second["next_cursor"])
    assert liked not in ids(third) and len(ids(third)) == 2
    community.patch("/users/me/feed/settings", json={"diversity": 0.9}, headers=ADMIN)
    before = len(ranked)
    fourth = page(community, n=2, cursor=third["next_cursor"])
    assert len(ranked) == before + 1  # new controls: ranked again
    shown = [i for body in (first, second, third, fourth) for i in ids(body)]
    assert len(shown) == len(set(shown)) == 8 and liked not in shown


def test_hidden_muted_and_blocked_content_never_returns(community: TestClient) -> None:
    def feedback(**body) -> None:  # noqa: ANN003
        answer = community.post("/users/me/feedback", json=body, headers=ADMIN)
        assert answer.status_code == 204, answer.text

    feedback(kind="hide", item_id="a2")
    feedback(kind="mute_author", author_id="carol")
    feedback(kind="mute_tag", tag="garden")
    served = {i for body in all_pages(community) for i in ids(body)}
    assert served and "a2" not in served
    assert not {i for i in served if ITEMS[i][0] == "carol"}
    assert not {i for i in served if "garden" in ITEMS[i][1]}
    feedback(kind="unmute_tag", tag="garden")  # lifting a mute brings the topic back
    served = {i for body in all_pages(community) for i in ids(body)}
    assert {"b0", "b1"} <= served and "a2" not in served


def test_not_interested_suppresses_similar_items_then_fades(community: TestClient) -> None:
    factory, models = community.app.state.sessions, community.app.state.models
    cfg = community.app.state.settings.feed
    weights = community.app.state.settings.event_weights

    def scores(now) -> dict[str, float]:  # noqa: ANN001
        with factory() as session:
            feed = service.build_feed(
                session, models, "me", 40, None, cfg, weights, now, np.random.default_rng(0)
            )
            session.rollback()  # look without recording impressions
        return {i.item_id: i.score for i in feed.items}

    before = scores(NOW)
    answer = community.post(
        "/users/me/feedback", json={"kind": "not_interested", "item_id": "a3"}, headers=ADMIN
    )
    assert answer.status_code == 204
    now = scores(NOW + timedelta(seconds=5))
    assert now["a4"] < before["a4"] - 0.5  # same author and topic: pushed down
    assert now["c3"] == before["c3"]  # unrelated: untouched
    later = scores(NOW + timedelta(days=30))
    assert now["a4"] < later["a4"]  # suppression fades


def test_controls_move_results_the_expected_way(community: TestClient) -> None:
    def settings(**body) -> None:  # noqa: ANN003
        answer = community.patch("/users/me/feed/settings", json=body, headers=ADMIN)
        assert answer.status_code == 200, answer.text

    settings(diversity=0.0, social_weight=0.0, freshness=0.0, exploration=0.0)
    focused = page(community, n=3)
    settings(diversity=1.0)
    diverse = page(community, n=3)

    def topics(body: dict) -> set[str]:
        return {tag for item in body["items"] for tag in item["tags"]}

    assert topics(focused) == {"python"}  # the three best matches share one topic
    assert len(topics(diverse)) >= 2  # full diversity trades one of them for another topic
    settings(diversity=0.0, social_weight=5.0)
    assert ids(page(community, n=3))[0] == "b5"  # the followed user's like goes first
    settings(social_weight=0.0, freshness=5.0)
    fresh_first = ids(page(community, n=3))
    assert fresh_first[0] in {"f0", "n0", "n1"}
    got = community.get("/users/me/feed/settings", headers=ADMIN).json()
    assert got["freshness"] == 5.0 and got["social_weight"] == 0.0
    settings(freshness=None)  # back to the platform default
    assert community.get("/users/me/feed/settings", headers=ADMIN).json()["freshness"] == 0.3


def test_exploration_slots_and_new_creators_get_seen(community: TestClient) -> None:
    community.patch(
        "/users/me/feed/settings", json={"exploration": 0.5, "freshness": 0.0}, headers=ADMIN
    )
    body = page(community, n=6)
    explored = [i for i in body["items"] if i["source"] == "exploration"]
    assert len(explored) == 3  # every second slot
    assert {i["item_id"] for i in explored} <= {"f0", "n0", "n1"}  # only new items
    assert any(i["new_creator"] for i in body["items"])


def test_cold_users_get_onboarding_topics_friends_then_trending(
    community: TestClient,
) -> None:
    answer = community.post("/users/newcomer/interests", json={"tags": ["music"]}, headers=ADMIN)
    assert answer.status_code == 200 and answer.json()["followed_tags"] == ["music"]
    body = page(community, "newcomer", n=4)
    assert len(body["items"]) == 4 and body.get("model") is None
    assert sum("music" in i["tags"] for i in body["items"]) >= 2
    assert any(i["source"] == "topics" for i in body["items"])

    assert community.put("/users/stranger", json={}, headers=ADMIN).status_code in (200, 201)
    edge = {"source_id": "stranger", "target_id": "u6", "type": "friend"}
    assert community.post("/edges", json=edge, headers=ADMIN).status_code in (200, 201)
    body = page(community, "stranger", n=4)
    assert ids(body)[0] == "b5" and body["items"][0]["source"] == "in_network"

    assert community.put("/users/nobody", json={}, headers=ADMIN).status_code in (200, 201)
    body = page(community, "nobody", n=4)
    assert len(body["items"]) == 4
    assert {i["source"] for i in body["items"]} <= {"trending", "fresh", "exploration"}


def test_new_item_reaches_feeds_before_any_retraining(community: TestClient) -> None:
    body = {"title": "Brand new", "author_id": "newbie", "tags": ["python"], "created": iso(0.01)}
    assert community.put("/items/brand-new", json=body, headers=ADMIN).status_code == 201
    community.patch("/users/u0/feed/settings", json={"exploration": 0.5}, headers=ADMIN)
    served = [i for body in all_pages(community, user="u0") for i in body["items"]]
    new = next(i for i in served if i["item_id"] == "brand-new")
    assert new["source"] in ("fresh", "exploration", "topics") and new["new_creator"]


def test_bad_requests_are_refused_clearly(community: TestClient) -> None:
    bad = community.get("/users/me/feed", params={"cursor": "nonsense"}, headers=ADMIN)
    assert bad.status_code == 422 and bad.json()["problems"][0]["location"] == "query.cursor"
    wrong = community.post(
        "/users/me/feedback", json={"kind": "hide", "tag": "python"}, headers=ADMIN
    )
    assert wrong.status_code == 422 and "item_id" in wrong.text
    missing = community.post(
        "/users/me/feedback", json={"kind": "hide", "item_id": "nope"}, headers=ADMIN
    )
    assert missing.status_code == 404
    out_of_range = community.patch("/users/me/feed/settings", json={"diversity": 3}, headers=ADMIN)
    assert out_of_range.status_code == 422


def test_feed_without_any_trained_model_still_serves(sqlite_url: str, tmp_path: Path) -> None:
    with make_client(tmp_path, sqlite_url) as client:
        seed(client)
        body = page(client, n=5)
        assert len(body["items"]) == 5 and body.get("model") is None
        train(client)
        assert page(client, n=5).get("model") is not None


def test_next_pages_follow_the_users_events_at_once(community: TestClient) -> None:
    first = page(community, n=2)
    second = page(community, n=2, cursor=first["next_cursor"])
    coming = [i for i in ids(page(community, n=10)) if i not in ids(first) + ids(second)]
    event = {"event_id": "me-acts", "user_id": "me", "item_id": coming[0], "type": "like"}
    assert community.post("/events", json=event, headers=ADMIN).status_code == 201
    third = page(community, n=2, cursor=second["next_cursor"])
    assert coming[0] not in ids(third)  # the liked item left at once
    assert not set(ids(third)) & set(ids(first) + ids(second))


def test_the_refresher_takes_a_new_event_into_the_candidates_within_a_second(
    community: TestClient,
) -> None:
    answer = community.get("/users/me/feed", params={"n": 3}, headers=ADMIN)
    assert answer.headers["X-Feed-Candidates"] in ("ready", "built")
    event = {"event_id": "me-likes-c0", "user_id": "me", "item_id": "c0", "type": "like"}
    assert community.post("/events", json=event, headers=ADMIN).status_code == 201
    deadline, how = time.monotonic() + 1.0, "stale"
    while how != "ready" and time.monotonic() < deadline:
        time.sleep(0.05)
        how = community.get("/users/me/feed", params={"n": 3}, headers=ADMIN).headers[
            "X-Feed-Candidates"
        ]
    assert how == "ready"


def test_a_new_user_is_personalised_after_a_few_events(community: TestClient) -> None:
    assert community.put("/users/fresh-face", json={}, headers=ADMIN).status_code in (200, 201)
    before = page(community, "fresh-face", n=4)
    assert before.get("model") is None  # nothing to personalise on yet
    events = [
        {"event_id": f"ff-{item}", "user_id": "fresh-face", "item_id": item, "type": "like"}
        for item in ("c0", "c1")
    ]
    assert community.post("/events", json=events, headers=ADMIN).status_code == 201
    after = page(community, "fresh-face", n=4)  # no retraining in between: fold-in
    assert after.get("model") is not None
    music = [i for i in after["items"] if "music" in i["tags"]]
    assert len(music) >= 2 and {"c0", "c1"}.isdisjoint(ids(after))


def test_home_page_charts_what_feeds_were_made_of(community: TestClient) -> None:
    assert "No feed page has been served yet" in community.get("/").text
    served = page(community, n=5)
    impressions_written(community, 5)
    home = community.get("/").text
    assert "5 items shown, by candidate source" in home and "<svg" in home
    for source in served["sources"]:
        assert f">{source}</text>" in home


def test_an_item_posted_after_training_reaches_matching_users_by_content(
    community: TestClient,
) -> None:
    body = {
        "title": "Python decorators explained",
        "author_id": "alex",
        "tags": ["python"],
        "created": iso(1.0),
    }  # fmt: skip  (a day old: past the fresh window's top draws)
    assert community.put("/items/py-late", json=body, headers=ADMIN).status_code == 201
    community.patch(
        "/users/me/feed/settings", json={"exploration": 0.0, "freshness": 0.0}, headers=ADMIN
    )
    items = [i for body in all_pages(community) for i in body["items"]]
    late = next(i for i in items if i["item_id"] == "py-late")
    assert late["source"] in ("content", "fresh")
    with community.app.state.sessions() as session:
        snapshot = community.app.state.feed_cache.catalogue.get(session)
        rows = [("a0", "like", None, NOW), ("a1", "like", None, NOW)]
        matches = sources.new_content(
            community.app.state.models, community.app.state.feed_cache, snapshot,
            snapshot.newest_first, rows, {"like": 3.0}, 10,
        )  # fmt: skip
    assert matches == {"py-late": 1.0}  # the one unseen item, matched on its python tag


def test_pages_alternating_between_two_workers_never_repeat(community: TestClient) -> None:
    factory, models = community.app.state.sessions, community.app.state.models
    settings = community.app.state.settings
    workers = [FeedCache(), FeedCache()]  # two processes without a shared Redis
    served, cursor = [], None
    for turn in range(6):  # A and B take turns; each reads what the other showed
        with transaction(factory) as session:
            feed = service.build_feed(
                session, models, "me", 2, cursor, settings.feed, settings.event_weights,
                NOW, np.random.default_rng(turn), cache=workers[turn % 2],
            )  # fmt: skip
        served += [item.item_id for item in feed.items]
        cursor = feed.next_cursor
    assert len(served) == 12 and len(served) == len(set(served))


def test_items_moderation_took_down_leave_the_feed(community: TestClient) -> None:
    top = ids(page(community, n=3))[0]
    flag = {"user_id": "me", "reason": "spam"}
    assert community.post(f"/items/{top}/flags", json=flag, headers=ADMIN).status_code == 201
    case = next(c for c in community.get("/moderation/queue", headers=ADMIN).json()
                if c["item_id"] == top)  # fmt: skip
    decided = community.post(
        f"/moderation/queue/{case['case_id']}/decision", json={"outcome": "uphold"}, headers=ADMIN
    )
    assert decided.status_code == 201, decided.text
    time.sleep(1.1)  # the feed's catalogue picks moderation up within a second
    assert top not in {i for body in all_pages(community) for i in ids(body)}


def test_a_running_experiment_sets_the_arm_controls_and_logs_the_exposure(
    community: TestClient,
) -> None:
    experiment = {
        "experiment_id": "explore-more",
        "arms": [{"name": "control"}, {"name": "explore", "overrides": {"exploration": 0.5}}],
        "planned_users": 100,
    }
    assert community.post("/experiments", json=experiment, headers=ADMIN).status_code == 201
    assert community.post("/experiments/explore-more/start", headers=ADMIN).status_code == 200
    assert page(community, n=4)["items"]
    shown = community.get("/experiments/explore-more", headers=ADMIN).json()
    assert sum(arm["exposed_users"] for arm in shown["arms"]) == 1
    arm = community.get("/experiments/explore-more/assignment/me", headers=ADMIN).json()
    feed = community.app.state.settings.feed
    with community.app.state.sessions() as session:  # what the next page is built with
        state = load_state(session, "me", NOW)
    controls = effective_controls(state, feed)
    assert controls.exploration == (0.5 if arm["arm"] == "explore" else feed.exploration)


def test_first_pages_of_a_new_user_asked_at_once_all_answer(community: TestClient) -> None:
    """A platform's first page for a new user often comes twice at once (two tabs, a retry):
    both create the user; one row is kept and neither answer fails."""
    users = [f"twice-{i}" for i in range(6) for _ in range(2)]
    with ThreadPoolExecutor(8) as pool:
        answers = list(
            pool.map(lambda u: community.get(f"/users/{u}/feed?n=3", headers=ADMIN), users)
        )
    assert [a.status_code for a in answers] == [200] * len(users), [a.text for a in answers]
    with community.app.state.sessions() as session:
        stored = session.execute(
            select(User.external_id, func.count()).where(User.external_id.like("twice-%"))
            .group_by(User.external_id)
        ).all()  # fmt: skip
    assert sorted(stored) == [(f"twice-{i}", 1) for i in range(6)]


def test_feed_ranked_by_a_factor_model_uses_its_item_index(community: TestClient) -> None:
    community.app.state.settings.feed.ranking_model = "als"
    answer = community.get("/users/me/feed", params={"n": 5}, headers=ADMIN)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["model"] == "als" and len(body["items"]) == 5
    assert not {"a0", "a1"} & {i["item_id"] for i in body["items"]}
    models = community.app.state.models
    built = dict(models._indexes)  # what the page built, before this test asks for one
    index = models.item_index(models.get("als"))
    assert list(built.values()) == [index]  # the page's, kept for the served version
    assert len(index) == len(models.get("als").item_ids)
