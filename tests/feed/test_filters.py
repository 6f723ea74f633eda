"""Every page passes the current filters, from ready candidates: blocks, take-downs, mutes."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient
from feed_support import ADMIN, ITEMS

from agora.feed.cache import FeedCache


def feed(client: TestClient, user: str = "me", **params) -> tuple[dict, str]:  # noqa: ANN003
    answer = client.get(f"/users/{user}/feed", params=params, headers=ADMIN)
    assert answer.status_code == 200, answer.text
    return answer.json(), answer.headers["X-Feed-Candidates"]


def later_pages(client: TestClient, cursor: str, n: int) -> list[tuple[dict, str]]:
    """Every page after the one that issued ``cursor``, with its X-Feed-Candidates header."""
    pages = []
    while True:
        body, how = feed(client, n=n, cursor=cursor)
        if not body["items"]:
            return pages
        pages.append((body, how))
        cursor = body["next_cursor"]


def ahead(client: TestClient, first: dict) -> list[dict]:
    """Items the next pages of ``first``'s session would show: a longer page of another
    session, less what ``first`` showed."""
    shown = {i["item_id"] for i in first["items"]}
    longer, _ = feed(client, n=10)
    return [i for i in longer["items"] if i["item_id"] not in shown]


def take_down(client: TestClient, item: str) -> None:
    flag = {"user_id": "u14", "reason": "spam"}
    assert client.post(f"/items/{item}/flags", json=flag, headers=ADMIN).status_code == 201
    queue = client.get("/moderation/queue", headers=ADMIN).json()
    case = next(c for c in queue if c["item_id"] == item)
    decided = client.post(
        f"/moderation/queue/{case['case_id']}/decision", json={"outcome": "uphold"}, headers=ADMIN
    )
    assert decided.status_code == 201, decided.text


@pytest.fixture(params=["in-process", "redis"])
def shared(request: pytest.FixtureRequest, community: TestClient) -> TestClient:
    """The community app with its browsing sessions in this process or in the real Redis."""
    if request.param == "redis":
        community.app.state.feed_cache = FeedCache(redis_url=request.getfixturevalue("redis_url"))
    return community


def test_blocks_and_take_downs_apply_to_the_next_pages(shared: TestClient) -> None:
    first, _ = feed(shared, n=2)
    coming = ahead(shared, first)
    blocked = coming[0]["author_id"]
    removed = next(i["item_id"] for i in coming if i["author_id"] != blocked)
    edge = {"source_id": "me", "target_id": blocked, "type": "block"}
    assert shared.post("/edges", json=[edge], headers=ADMIN).status_code in (200, 201)
    take_down(shared, removed)
    time.sleep(1.1)  # the catalogue picks take-downs up within a second

    pages = later_pages(shared, first["next_cursor"], n=2)
    assert pages and pages[0][1] in ("ready", "built")  # not a stale ranking
    served = [i for body, _ in pages for i in body["items"]]
    assert served, "later pages still have items"
    assert blocked not in {i["author_id"] for i in served}
    assert removed not in {i["item_id"] for i in served}


def test_mutes_and_hides_apply_to_the_next_pages(shared: TestClient) -> None:
    first, _ = feed(shared, n=2)
    coming = ahead(shared, first)
    hidden = coming[0]["item_id"]
    muted_author = next(i["author_id"] for i in coming if i["item_id"] != hidden)
    muted_tags = {t for i in coming for t in i["tags"]} - set(ITEMS[hidden][1])
    for body in (
        {"kind": "hide", "item_id": hidden},
        {"kind": "mute_author", "author_id": muted_author},
        *({"kind": "mute_tag", "tag": tag} for tag in muted_tags),
    ):
        answer = shared.post("/users/me/feedback", json=body, headers=ADMIN)
        assert answer.status_code == 204, answer.text
    served = [
        i for body, _ in later_pages(shared, first["next_cursor"], n=2) for i in body["items"]
    ]
    assert hidden not in {i["item_id"] for i in served}
    assert muted_author not in {i["author_id"] for i in served}
    assert not muted_tags & {t for i in served for t in i["tags"]}


def test_a_fresh_page_leaves_out_a_take_down_within_a_second(community: TestClient) -> None:
    top = feed(community, n=3)[0]["items"][0]["item_id"]
    take_down(community, top)
    time.sleep(1.1)
    first, _ = feed(community, n=20)
    assert first["items"] and top not in {i["item_id"] for i in first["items"]}
