"""Mutes have one home (the feed settings), and a platform's brand-new member gets a feed."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi.testclient import TestClient
from feed_support import ADMIN, ITEMS
from sqlalchemy import JSON, Engine, column, insert, select, table

from agora.db.engine import downgrade, migrate
from agora.db.tables import User
from agora.feed.models import FeedFeedback, FeedSettings


def settings(client: TestClient, user: str = "me") -> dict:
    answer = client.get(f"/users/{user}/feed/settings", headers=ADMIN)
    assert answer.status_code == 200, answer.text
    return answer.json()


def feedback(client: TestClient, **body) -> None:  # noqa: ANN003
    answer = client.post("/users/me/feedback", json=body, headers=ADMIN)
    assert answer.status_code == 204, answer.text


def served(client: TestClient, user: str = "me") -> list[dict]:
    """Every item of one browsing session (all its pages)."""
    items, cursor = [], None
    while True:
        params = {"n": 5, **({"cursor": cursor} if cursor else {})}
        answer = client.get(f"/users/{user}/feed", params=params, headers=ADMIN)
        assert answer.status_code == 200, answer.text
        if not answer.json()["items"]:
            return items
        items += answer.json()["items"]
        cursor = answer.json()["next_cursor"]


def garden(items: list[dict]) -> set[str]:
    return {i["item_id"] for i in items if "garden" in i["tags"]}


def test_mute_feedback_shows_in_the_settings_and_unmute_lifts_it(community: TestClient) -> None:
    feedback(community, kind="mute_tag", tag="garden")
    feedback(community, kind="mute_author", author_id="carol")
    now = settings(community)
    assert now["muted_tags"] == ["garden"] and now["muted_authors"] == ["carol"]
    items = served(community)
    assert not garden(items) and "carol" not in {i["author_id"] for i in items}
    feedback(community, kind="unmute_tag", tag="garden")
    feedback(community, kind="unmute_author", author_id="carol")
    now = settings(community)
    assert now["muted_tags"] == [] and now["muted_authors"] == []
    items = served(community)
    assert garden(items) and "carol" in {i["author_id"] for i in items}


def test_unmute_feedback_lifts_a_mute_set_in_the_settings(community: TestClient) -> None:
    patch = {"muted_tags": ["garden"], "muted_authors": ["carol"]}
    answer = community.patch("/users/me/feed/settings", json=patch, headers=ADMIN)
    assert answer.status_code == 200 and answer.json()["muted_authors"] == ["carol"]
    assert not garden(served(community))
    feedback(community, kind="unmute_tag", tag="garden")
    assert settings(community)["muted_tags"] == []
    items = served(community)
    assert garden(items)  # the settings and the feed agree: the topic is back
    assert "carol" not in {i["author_id"] for i in items}  # the other mute stays


def test_muting_an_unknown_author_is_a_404_that_changes_nothing(community: TestClient) -> None:
    patch = {"muted_authors": ["carol", "nobody"]}
    answer = community.patch("/users/me/feed/settings", json=patch, headers=ADMIN)
    assert answer.status_code == 404 and "nobody" in answer.json()["detail"]
    assert settings(community)["muted_authors"] == []


def test_a_brand_new_member_gets_a_cold_start_feed_and_is_created(community: TestClient) -> None:
    assert community.get("/users/newcomer", headers=ADMIN).status_code == 404
    answer = community.get("/users/newcomer/feed", params={"n": 5}, headers=ADMIN)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert len(body["items"]) == 5 and body.get("model") is None  # nothing to personalise yet
    assert {i["item_id"] for i in body["items"]} <= set(ITEMS)
    assert community.get("/users/newcomer", headers=ADMIN).status_code == 200
    nxt = community.get(
        "/users/newcomer/feed", params={"n": 5, "cursor": body["next_cursor"]}, headers=ADMIN
    )
    assert nxt.status_code == 200 and nxt.json()["items"]
    assert settings(community, "newcomer")["muted_tags"] == []


def test_migration_folds_old_mute_feedback_into_the_settings(engine: Engine) -> None:
    downgrade(engine, "0007")
    now = datetime(2026, 12, 1, tzinfo=UTC)
    with engine.begin() as conn:
        for name in ("me", "you", "carol", "dan"):
            conn.execute(insert(User).values(external_id=name, created=now, attributes={}))
        pk = dict(conn.execute(select(User.external_id, User.id)).all())
        old_settings = table(  # feed_settings as of 0007: no muted_authors yet
            "feed_settings",
            column("user_id"),
            column("followed_tags", JSON),
            column("muted_tags", JSON),
            column("updated"),
        )
        conn.execute(
            insert(old_settings).values(
                user_id=pk["me"], followed_tags=["x"], muted_tags=["a", "b"], updated=now
            )
        )
        rows = [
            (pk["me"], "unmute_tag", None, "a"),
            (pk["me"], "mute_tag", None, "c"),
            (pk["me"], "mute_author", pk["carol"], None),
            (pk["me"], "mute_author", pk["dan"], None),
            (pk["me"], "unmute_author", pk["dan"], None),
            (pk["you"], "mute_tag", None, "z"),
        ]
        for user, kind, author, tag in rows:
            conn.execute(
                insert(FeedFeedback.__table__).values(
                    user_id=user, kind=kind, author_id=author, tag=tag, created=now
                )
            )
        conn.execute(
            insert(FeedFeedback.__table__).values(user_id=pk["me"], kind="hide", created=now)
        )
    migrate(engine)
    with engine.connect() as conn:
        folded = {
            user: (tags, authors, followed)
            for user, tags, authors, followed in conn.execute(
                select(
                    FeedSettings.user_id,
                    FeedSettings.muted_tags,
                    FeedSettings.muted_authors,
                    FeedSettings.followed_tags,
                )
            )
        }
        kinds = conn.scalars(select(FeedFeedback.kind)).all()
    assert folded[pk["me"]] == (["b", "c"], [pk["carol"]], ["x"])
    assert folded[pk["you"]] == (["z"], [], [])
    assert kinds == ["hide"]  # mute feedback now lives in the settings only
