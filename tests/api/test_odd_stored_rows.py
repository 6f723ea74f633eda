"""Rows no client can send any more (old data, another writer) must not take a route down: every
GET route, and the engagement replay, still answer when the store holds times out of range."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from api_support import ADMIN, WRITE, event, make_settings
from fastapi.testclient import TestClient
from sqlalchemy import insert, select

from agora.api.app import create_app
from agora.db import tables
from agora.db.tables import Event, Group, Item, Membership, SocialEdge, User

ANCIENT = datetime(1, 1, 2, 3, 4, 5, tzinfo=UTC)  # logged once per process: a value of its own
FAR = datetime(9999, 12, 31, 23, 59, tzinfo=UTC)
PATH_VALUES = {"user_id": "ancient", "item_id": "old-post"}


@pytest.fixture
def client(
    tmp_path: Path, database_url: str, migrated_store: Callable[[str], str]
) -> Iterator[TestClient]:
    """The app answering 500s as a client sees them (rather than raising in the test), on a
    copy of the run's migrated store."""
    app = create_app(make_settings(tmp_path, migrated_store(database_url)))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def _plant_odd_rows(client: TestClient) -> None:
    """A normal community, then rows written straight to the database, past validation."""
    now = datetime.now(UTC).isoformat()
    normal = [event(i, user=f"u{i % 3}", item=f"p{i % 4}", timestamp=now) for i in range(12)]
    assert client.post("/events", json=normal, headers=WRITE).status_code == 201
    with client.app.state.sessions() as session, session.begin():
        user = session.scalar(
            insert(User).values(external_id="ancient", created=ANCIENT, attributes={})
            .returning(User.id)
        )  # fmt: skip
        future = session.scalar(
            insert(User).values(external_id="future", created=FAR, attributes={})
            .returning(User.id)
        )  # fmt: skip
        item = session.scalar(
            insert(Item).values(
                external_id="old-post", author_id=future, title="old", body="", tags=["t"],
                created=ANCIENT, media={}, attributes={},
            ).returning(Item.id)
        )  # fmt: skip
        other = session.scalar(select(Item.id).where(Item.external_id == "p1"))
        for n, (who, what, when) in enumerate(
            [(user, item, ANCIENT), (user, other, FAR), (future, item, FAR), (user, item, ANCIENT)]
        ):
            session.execute(
                insert(Event).values(
                    event_id=f"odd{n}", user_id=who, item_id=what, type="like", value=None,
                    timestamp=when, context={},
                )
            )  # fmt: skip
        session.execute(
            insert(SocialEdge).values(
                source_id=user, target_id=future, type="follow", weight=1.0, created=ANCIENT
            )
        )
        group = session.scalar(
            insert(Group).values(external_id="g", name="g", created=ANCIENT, attributes={})
            .returning(Group.id)
        )  # fmt: skip
        session.execute(
            insert(Membership).values(group_id=group, user_id=user, role="member", created=FAR)
        )


def _get_routes(client: TestClient) -> list[str]:
    paths = client.app.openapi()["paths"]
    urls = []
    for path, operations in paths.items():
        if "get" not in operations:
            continue
        names = re.findall(r"{(\w+)}", path)
        urls.append(re.sub(r"{(\w+)}", lambda m: PATH_VALUES.get(m.group(1), "x"), path))
        assert all(n in PATH_VALUES or n.endswith("_id") for n in names)
    return urls


def test_every_get_route_answers_with_odd_times_stored(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    _plant_odd_rows(client)
    tables._LOGGED_ODD_TIMES.clear()  # logged once per process: the other database's run did
    caplog.set_level(logging.WARNING)
    failures = {}
    for url in _get_routes(client):
        answer = client.get(url, headers=ADMIN)
        if answer.status_code >= 500 and answer.status_code != 503:
            failures[url] = answer.status_code
    for url in ("/leaderboards?period=week", "/leaderboards?period=all"):
        answer = client.get(url, headers=ADMIN)
        if answer.status_code != 200:
            failures[url] = answer.status_code
    for url in ("/engagement/replay", "/analytics/alerts/evaluate"):
        answer = client.post(url, headers=ADMIN)
        if answer.status_code >= 500:
            failures[url] = answer.status_code
    assert failures == {}
    for user in ("ancient", "future"):
        for what in ("points", "badges", "trust", "digest"):
            answer = client.get(f"/users/{user}/{what}", headers=ADMIN)
            assert answer.status_code == 200, (user, what, answer.text)
    assert "out of range" in caplog.text  # the odd rows are logged...
    assert "ancient" not in caplog.text  # ...without naming whose they are
