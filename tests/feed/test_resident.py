"""A worker holds its users from the start and keeps them current without expiring them
(SQLite and PostgreSQL): the users who acted last are held as the worker starts, so their first
pages read nothing of theirs from the store; a removed edge, a started experiment and a record
the refresher stored anew reach a held user's next page through the tail, not a timeout."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from feed_support import ADMIN, PREPARED_FEED, first_page, make_client, reads_during, user_pk
from sqlalchemy import func, select

from agora.experiments.models import Exposure
from agora.feed.state import UserState, events_since, events_since_many
from agora.feed.store import RedisCandidates, TableCandidates

#: what the statements that load one user's state and record look up
ONE_USER = ("user_id =", "external_id =")


def wait_for(condition: Callable[[], object], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "not within the time allowed"
        time.sleep(0.05)


def held(client: TestClient, user: str) -> UserState | None:
    return client.app.state.feed_cache.states.held(user)


def test_a_starting_worker_holds_the_recent_users_and_their_pages_read_nothing_of_them(
    prepared: TestClient, database_url: str, tmp_path: Path
) -> None:
    with make_client(tmp_path, database_url, feed=PREPARED_FEED) as other:
        wait_for(lambda: held(other, "me") is not None and held(other, "u0") is not None)
        reads = reads_during(other, lambda: first_page(other, "me"))
        _, ranking = first_page(other, "u0")
    assert ranking == "prepared"
    assert not [s for s in reads if any(lookup in s for lookup in ONE_USER)], reads


def test_a_worker_told_not_to_hold_users_on_start_loads_them_per_page(
    prepared: TestClient, database_url: str, tmp_path: Path
) -> None:
    with make_client(
        tmp_path, database_url, feed=PREPARED_FEED.model_copy(update={"hold_on_start": 0})
    ) as other:
        time.sleep(0.5)
        assert held(other, "me") is None
        reads = reads_during(other, lambda: first_page(other, "me"))
    assert any("feed_candidates" in s for s in reads), reads


def test_users_held_while_an_experiment_runs_are_exposed_by_their_first_page_only(
    prepared: TestClient, database_url: str, tmp_path: Path
) -> None:
    experiment = {
        "experiment_id": "calm",
        "arms": [{"name": "control"}, {"name": "calm", "overrides": {"diversity": 0.9}}],
        "planned_users": 100,
    }
    assert prepared.post("/experiments", json=experiment, headers=ADMIN).status_code == 201
    assert prepared.post("/experiments/calm/start", headers=ADMIN).status_code == 200

    def exposed() -> int:
        with prepared.app.state.sessions() as session:
            return session.scalar(select(func.count()).select_from(Exposure))

    with make_client(tmp_path, database_url, feed=PREPARED_FEED) as other:
        wait_for(lambda: held(other, "me") is not None)
        assert exposed() == 0 and held(other, "me").exposed is False
        first_page(other, "me")
        assert exposed() == 1 and held(other, "me").exposed is True


def test_a_removed_block_reaches_another_workers_held_state_through_the_tail(
    prepared: TestClient, database_url: str, tmp_path: Path
) -> None:
    block = {"source_id": "me", "target_id": "bob", "type": "block"}
    assert prepared.post("/edges", json=block, headers=ADMIN).status_code in (200, 201)
    with make_client(tmp_path, database_url, feed=PREPARED_FEED) as other:
        first_page(other, "me")
        bob = user_pk(other, "bob")
        assert bob in held(other, "me").excluded_authors
        removed = prepared.request("DELETE", "/edges", json=block, headers=ADMIN)
        assert removed.status_code in (200, 204), removed.text
        # the other worker's state goes within a tail turn (0.25 s), not at its expiry
        wait_for(lambda: held(other, "me") is None, seconds=2.0)
        first_page(other, "me")
        assert bob not in held(other, "me").excluded_authors


def test_an_experiment_started_elsewhere_drops_every_held_state(
    prepared: TestClient, database_url: str, tmp_path: Path
) -> None:
    with make_client(tmp_path, database_url, feed=PREPARED_FEED) as other:
        first_page(other, "me")
        first_page(other, "u0")
        experiment = {"experiment_id": "later", "arms": [{"name": "a"}, {"name": "b"}]}
        experiment["planned_users"] = 100
        assert prepared.post("/experiments", json=experiment, headers=ADMIN).status_code == 201
        assert prepared.post("/experiments/later/start", headers=ADMIN).status_code == 200
        wait_for(lambda: held(other, "me") is None and held(other, "u0") is None, seconds=2.0)


@pytest.mark.parametrize("kind", ["table", "redis"])
def test_a_record_stored_anew_leaves_the_workers_memory_once(
    prepared: TestClient, kind: str, request: pytest.FixtureRequest
) -> None:
    state = prepared.app.state
    if kind == "table":
        store = TableCandidates(state.sessions)
    else:
        store = RedisCandidates(request.getfixturevalue("redis_url"), namespace="resident-test")
        store.put([TableCandidates(state.sessions).get(user_pk(prepared, "me"))])
    ready = type(state.feed_cache.ready)(store)
    me = user_pk(prepared, "me")
    with state.sessions() as session:
        snapshot = state.feed_cache.catalogue.get(session)
    assert ready.follow_store() == 0  # the first look notes where the store is
    record = ready.stored(me, snapshot).record
    assert ready.stored(me, snapshot).record is record  # held
    store.put([record])  # the refresher stores the user's record again
    assert ready.follow_store() >= 1
    again = ready.stored(me, snapshot).record
    assert again is not record  # read from the store afresh
    ready.follow_store()  # the same change, seen again within the overlap: kept
    assert ready.stored(me, snapshot).record is again


def test_events_since_many_answers_what_events_since_answers_for_each(
    prepared: TestClient,
) -> None:
    state = prepared.app.state
    store = TableCandidates(state.sessions)
    names = ["me", "u0", "u1", "u2", "u3", "u7"]
    pks = {name: user_pk(prepared, name) for name in names}
    marks = {pk: store.get(pk).prepared for pk in pks.values()}
    view = {"event_id": "late-view", "user_id": "me", "item_id": "a3", "type": "view"}
    assert prepared.post("/events", json=view, headers=ADMIN).status_code == 201
    hide = {"kind": "hide", "item_id": "a4"}
    assert prepared.post("/users/u0/feedback", json=hide, headers=ADMIN).status_code == 204
    calm = {"diversity": 0.9}
    assert prepared.patch("/users/u1/feed/settings", json=calm, headers=ADMIN).status_code == 200
    block = {"source_id": "u7", "target_id": "bob", "type": "block"}
    assert prepared.post("/edges", json=block, headers=ADMIN).status_code in (200, 201)
    wanted = {pk: (p.state["last_event"], p.marks) for pk, p in marks.items()}
    with state.sessions() as session:
        many = events_since_many(session, wanted)
        one = {pk: events_since(session, pk, *wanted[pk]) for pk in wanted}
    assert many == one
    assert many[pks["me"]] and many[pks["u3"]] == []
    assert many[pks["u0"]] is None and many[pks["u1"]] is None and many[pks["u7"]] is None
    removed = prepared.request("DELETE", "/edges", json=block, headers=ADMIN)
    assert removed.status_code == 204
    wanted[pks["u7"]] = (wanted[pks["u7"]][0], {**wanted[pks["u7"]][1], "edges": 10**9})
    with state.sessions() as session:  # only the removal is newer than these marks now
        assert events_since_many(session, wanted)[pks["u7"]] is None
        assert events_since(session, pks["u7"], *wanted[pks["u7"]]) is None
