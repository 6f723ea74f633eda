"""First pages the refresher ranked ahead, as the online path serves them (SQLite and
PostgreSQL): the same page as ranked now, what changed since filtered or ranked afresh, and no
state query for a user the worker has not seen."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from feed_support import (
    ADMIN,
    NOW,
    first_page,
    make_client,
    reads_during,
    refresh,
    train,
    user_pk,
)
from feed_support import PREPARED_FEED as FEED
from sqlalchemy import select

from agora.config import FeedConfig
from agora.db.tables import Item
from agora.feed.refresher import Refresher
from agora.feed.store import TableCandidates


def test_a_prepared_first_page_is_the_page_ranked_now(
    prepared: TestClient, database_url: str, tmp_path: Path
) -> None:
    store = TableCandidates(prepared.app.state.sessions)
    record = store.get(user_pk(prepared, "me"))
    assert record.prepared is not None and record.prepared.n == 20

    items, ranking = first_page(prepared)
    assert ranking == "prepared"
    assert items == [str(i) for i in ids_of(prepared, record.prepared.pks[:20])]

    record.prepared = None  # the same record without its pages: ranked per page
    store.put([record])
    with make_client(tmp_path, database_url, feed=FEED) as other:
        again, ranking = first_page(other)
    assert ranking == "now"
    assert again == items


def ids_of(client: TestClient, pks) -> list[str]:  # noqa: ANN001 - an array of item pks
    with client.app.state.sessions() as session:
        names = dict(session.execute(select(Item.id, Item.external_id)).all())
    return [names[int(pk)] for pk in pks]


def test_an_item_touched_after_preparing_leaves_the_prepared_page(prepared: TestClient) -> None:
    items, _ = first_page(prepared)
    liked = items[0]
    body = {"event_id": "me-late", "user_id": "me", "item_id": liked, "type": "like",
            "timestamp": NOW.isoformat()}  # fmt: skip
    assert prepared.post("/events", json=[body], headers=ADMIN).status_code == 201

    after, ranking = first_page(prepared)
    assert ranking == "prepared"  # the refresher has not run: its pages, minus the like
    assert liked not in after
    assert after[: len(items) - 1] == [i for i in items if i != liked][: len(after)]


@pytest.mark.parametrize("change", ["hide", "block"])
def test_a_new_filter_ranks_the_page_afresh(
    prepared: TestClient, change: str, database_url: str, tmp_path: Path
) -> None:
    items, _ = first_page(prepared)
    target = items[0]
    item = prepared.get(f"/items/{target}", headers=ADMIN).json()
    if change == "hide":
        body = {"kind": "hide", "item_id": target}
        answer = prepared.post("/users/me/feedback", json=body, headers=ADMIN)
    else:
        edge = {"source_id": "me", "target_id": item["author_id"], "type": "block"}
        answer = prepared.post("/edges", json=[edge], headers=ADMIN)
    assert answer.status_code in (200, 201, 204), answer.text

    after, ranking = first_page(prepared)
    assert ranking == "now"
    assert target not in after
    if change == "block":
        authors = {prepared.get(f"/items/{i}", headers=ADMIN).json()["author_id"] for i in after}
        assert item["author_id"] not in authors

    refresh(prepared)  # the refresher ranks the pages again under the new filter
    with make_client(tmp_path, database_url, feed=FEED) as worker:  # one that held nothing
        again, ranking = first_page(worker)
    assert ranking == "prepared"
    assert target not in again


def test_a_user_the_worker_has_not_seen_costs_no_state_queries(
    prepared: TestClient, database_url: str, tmp_path: Path
) -> None:
    """A worker that never served the user reads who they are, their record and what they
    did since it was ranked: three statements, not the state's five and the ranking (a
    worker holds the users who acted last as it starts: not this one)."""
    cold = FEED.model_copy(update={"hold_on_start": 0})
    with make_client(tmp_path, database_url, feed=cold) as other:
        first_page(other, "u0")  # the catalogue, models and the shared record read first
        ranking = ""

        def me() -> None:
            nonlocal ranking
            _, ranking = first_page(other, "me")

        reads = reads_during(other, me)
    assert ranking == "prepared"
    assert len(reads) <= 3, reads
    assert not any("feed_settings.muted_tags" in s for s in reads), reads


def test_exploration_slots_are_drawn_per_page(seeded: Callable[[], str], tmp_path: Path) -> None:
    feed = FeedConfig(refresh_in_serve=False, exploration=0.25)
    with make_client(tmp_path, seeded(), feed=feed) as client:
        train(client)
        refresh(client, feed)
        answer = client.get("/users/me/feed?n=20", headers=ADMIN)
        assert answer.headers["x-feed-ranking"] == "prepared"
        sources = [i["source"] for i in answer.json()["items"]]
    explored = [at for at, source in enumerate(sources, 1) if source == "exploration"]
    assert explored, sources
    assert all(at % 4 == 0 for at in explored), sources


def test_feedback_and_settings_make_a_user_dirty(prepared: TestClient) -> None:
    """Their prepared pages change: the refresher's next round ranks them again."""
    state = prepared.app.state
    store = TableCandidates(state.sessions)
    refresher = Refresher(state.sessions, state.models, store, FEED, state.settings.event_weights)
    me = user_pk(prepared, "me")
    items, _ = first_page(prepared)

    body = {"kind": "hide", "item_id": items[0]}
    assert prepared.post("/users/me/feedback", json=body, headers=ADMIN).status_code == 204
    assert refresher.refresh_dirty() == 1
    stored = store.get(me).prepared
    assert stored.state["hidden"] and items[0] not in ids_of(prepared, stored.pks)

    body = {"followed_tags": ["music"]}
    assert prepared.patch("/users/me/feed/settings", json=body, headers=ADMIN).status_code == 200
    assert refresher.refresh_dirty() == 1
    assert store.get(me).prepared.state["followed_tags"] == ["music"]
    assert refresher.refresh_dirty() == 0  # nothing new since
