"""GET /users/{id}/recommendations answered from the ready records, beside the computed path
(SQLite and PostgreSQL)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from feed_support import ADMIN, ITEMS, TRAINED, like, make_client, train

from agora.config import FeedConfig
from agora.db import queries
from agora.feed.refresher import Refresher
from agora.feed.store import TableCandidates
from agora.serving import service

URL = "/users/{}/recommendations"


@pytest.fixture
def ready(seeded: Callable[[], str], tmp_path: Path) -> Iterator[tuple[TestClient, Refresher]]:
    """The seeded community (a copy of the run's), trained, every user's record made current
    by a refresher run here (the app's own refresher thread is off: the test says when records
    change)."""
    feed = FeedConfig(refresh_in_serve=False)
    with make_client(tmp_path, seeded(), feed=feed) as client:
        train(client)
        state = client.app.state
        store = TableCandidates(state.sessions)
        refresher = Refresher(
            state.sessions, state.models, store, feed, state.settings.event_weights
        )
        refresher.refresh_all()
        yield client, refresher


def _get(client: TestClient, user: str, **params: object) -> tuple[list[dict], str]:
    answer = client.get(URL.format(user), params=params, headers=ADMIN)
    assert answer.status_code == 200, answer.text
    return answer.json()["items"], answer.headers["X-Recommendations"]


def _computed(client: TestClient, user: str, model: str, n: int) -> list[service.Recommendation]:
    """What the route computed for every request before ready records were used."""
    state = client.app.state
    with state.sessions() as session:
        return service.recommend(
            session,
            state.models,
            user,
            n,
            model,
            state.settings.event_weights,
            max_per_thread=state.settings.feed.max_per_thread,
        )


def _ranked(pairs: list[tuple[str, float]]) -> list[tuple[str, float]]:
    """Best first, equal scores by id (either path may order ties either way)."""
    return sorted(((i, round(s, 5)) for i, s in pairs), key=lambda p: (-p[1], p[0]))


def test_a_current_record_answers_what_the_model_computes(
    ready: tuple[TestClient, Refresher],
) -> None:
    client, _ = ready
    ranking = client.app.state.models.best()
    for user in ("me", "u0", "u7", "u13"):
        items, source = _get(client, user, n=len(ITEMS))
        assert source == "ready"
        assert {i["model"] for i in items} == {ranking}
        computed = _computed(client, user, ranking, len(ITEMS))
        assert _ranked([(i["item_id"], i["score"]) for i in items]) == _ranked(
            [(r.item_id, r.score) for r in computed]
        )
        expected = {r.item_id: r for r in computed}
        for item in items:  # the catalogue's fields, as the store gives them
            want = expected[item["item_id"]]
            assert (item["title"], item["author_id"]) == (want.title, want.author_id)
            assert item["tags"] == want.tags and item["created"].startswith(
                want.created.isoformat()[:19]
            )
    top, source = _get(client, "me", n=3, model=ranking)  # the ranking model named
    assert source == "ready" and len(top) == 3
    explained, source = _get(client, "me", n=3, explain="true")
    assert source == "ready"
    assert [i["item_id"] for i in explained] == [i["item_id"] for i in top]
    assert all(i["because"] and i["reason"] for i in explained)
    other = next(name for name in TRAINED if name not in (ranking, "trending", "content"))
    items, source = _get(client, "me", n=3, model=other)
    assert source == "computed" and {i["model"] for i in items} == {other}


def test_an_event_removes_the_item_from_the_next_answer_at_once(
    ready: tuple[TestClient, Refresher],
) -> None:
    client, refresher = ready
    before, _ = _get(client, "me", n=5)
    _get(client, "me", n=5)  # kept: the next answer is the kept one unless something changed
    top = before[0]["item_id"]
    assert client.post("/events", json=like("me", top, 0), headers=ADMIN).status_code == 201
    after, source = _get(client, "me", n=5)
    assert top not in [i["item_id"] for i in after]
    assert source == "computed"  # the record is behind the user's events until refreshed
    assert refresher.refresh_dirty() >= 1
    deadline = time.monotonic() + 2.0  # the worker looks in the store again every 0.1 s
    while (answer := _get(client, "me", n=5))[1] != "ready":
        assert time.monotonic() < deadline, "the refreshed record was not picked up"
        time.sleep(0.05)
    again = answer[0]
    assert top not in [i["item_id"] for i in again]
    assert [i["item_id"] for i in again] == [i["item_id"] for i in after]


def test_users_without_a_record_get_the_computed_path_and_nothing_is_written(
    ready: tuple[TestClient, Refresher],
) -> None:
    client, _ = ready
    # a user stored after the refresher ran: no record yet
    assert client.post("/events", json=like("late", "a0", 0), headers=ADMIN).status_code == 201
    items, source = _get(client, "late", n=3)
    assert source == "computed" and "a0" not in [i["item_id"] for i in items]
    with client.app.state.sessions() as session:
        stored = queries.counts(session)
    stranger, source = _get(client, "stranger", n=3)
    assert source == "computed" and {i["model"] for i in stranger} == {"trending"}
    with client.app.state.sessions() as session:
        assert queries.counts(session) == stored  # no user created for a read
