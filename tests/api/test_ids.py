"""Ids: every id a write accepts can be read and deleted through its routes; the others get a 422
at their place; rows stored with unaddressable ids before the rule can still be erased."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import pytest
from api_support import ADMIN, WRITE, counts, event
from fastapi.testclient import TestClient
from sqlalchemy import insert, select
from typer.testing import CliRunner

from agora.cli.main import app as cli
from agora.config import get_settings
from agora.db.engine import make_engine, migrate, session_factory
from agora.db.tables import Event, Item, User

NOW = datetime.now(UTC)
#: Awkward but valid: every one must be addressable by every route.
AWKWARD = [
    "42", "alice bob", "100%", "a?b", "c#d", "x+y", "a&b=c", "张伟", "日本語ユーザー", "🙂",
    "👨‍👩‍👧", "a.b", "...", "a\\b", "é", "~user", "'quoted'", '"dq"', "<b>", "a;b",
    "name@example.org", "x" * 255,
]  # fmt: skip
#: Ids no route could address (or that break lines in logs and exports).
UNADDRESSABLE = [
    "alice/bob", "/", "a\nb", "a\tb", "a\rb", "line\u2028sep", "nul\x7f", ".", "..", " bob",
    "bob ", "x" * 256, "",
]  # fmt: skip


def _path(value: str) -> str:
    return quote(value, safe="")


@pytest.mark.parametrize("awkward", AWKWARD)
def test_every_accepted_id_is_read_and_deleted_through_its_routes(
    sqlite_client: TestClient, awkward: str
) -> None:
    client = sqlite_client
    stored = client.post("/events", json=event(1, user=awkward, item=awkward), headers=WRITE)
    assert stored.status_code == 201, stored.text
    user, item = _path(awkward), _path(awkward)
    assert client.get(f"/users/{user}", headers=WRITE).json()["user_id"] == awkward
    assert client.get(f"/items/{item}", headers=WRITE).json()["item_id"] == awkward
    for route in ("points", "badges", "trust", "edges", "feed/settings"):
        assert client.get(f"/users/{user}/{route}", headers=ADMIN).status_code == 200, route
    assert client.put(f"/users/{user}", json={"attributes": {}}, headers=WRITE).status_code == 200
    assert client.put(f"/items/{item}", json={"title": "t"}, headers=WRITE).status_code == 200
    assert client.put(f"/groups/{user}", json={}, headers=WRITE).status_code == 200
    members = client.post(f"/groups/{user}/members", json={"user_id": awkward}, headers=WRITE)
    assert members.status_code == 200, members.text
    assert client.delete(f"/items/{item}", headers=ADMIN).status_code == 204
    assert client.delete(f"/users/{user}", headers=ADMIN).status_code == 204
    assert client.get(f"/users/{user}", headers=WRITE).status_code == 404
    assert counts(client)["events"] == 0


@pytest.mark.parametrize("bad", UNADDRESSABLE)
def test_unaddressable_ids_are_422_at_their_place(sqlite_client: TestClient, bad: str) -> None:
    client = sqlite_client
    for field, body in (
        ("user_id", event(1, user=bad)),
        ("item_id", event(1, item=bad)),
        ("event_id", {**event(1), "event_id": bad}),
    ):
        answer = client.post("/events", json=[event(0), body], headers=WRITE)
        assert answer.status_code == 422, (field, answer.text)
        assert [p["location"] for p in answer.json()["problems"]] == [f"body.1.{field}"]
    edge = client.post("/edges", json={"source_id": "a", "target_id": bad, "type": "follow"},
                       headers=WRITE)  # fmt: skip
    assert [p["location"] for p in edge.json()["problems"]] == ["body.target_id"]
    item = client.put("/items/p1", json={"author_id": bad}, headers=WRITE)
    assert [p["location"] for p in item.json()["problems"]] == ["body.author_id"]
    assert client.put("/groups/g", json={}, headers=WRITE).status_code == 200
    member = client.post("/groups/g/members", json={"user_id": bad}, headers=WRITE)
    assert [p["location"] for p in member.json()["problems"]] == ["body.user_id"]
    feedback = client.post("/users/u1/feedback", json={"kind": "hide", "item_id": bad},
                           headers=WRITE)  # fmt: skip
    assert feedback.status_code == 422
    assert [p["location"] for p in feedback.json()["problems"]] == ["body.item_id"]
    flag = client.post("/items/p1/flags", json={"user_id": bad, "reason": "spam"}, headers=WRITE)
    assert [p["location"] for p in flag.json()["problems"]] == ["body.user_id"]
    assert counts(client)["users"] == 0 and counts(client)["events"] == 0


@pytest.mark.parametrize("bad", ["a\nb", " bob", "a\tb", "x" * 256])
def test_a_write_path_with_an_unaddressable_id_is_422_at_the_path(
    sqlite_client: TestClient, bad: str
) -> None:
    answer = sqlite_client.put(f"/users/{_path(bad)}", json={}, headers=WRITE)
    assert answer.status_code == 422, answer.text
    assert [p["location"] for p in answer.json()["problems"]] == ["path.user_id"]


def test_rows_stored_before_the_rule_can_still_be_erased(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, database_url: str
) -> None:
    engine = make_engine(database_url)
    migrate(engine)
    sessions = session_factory(engine)
    with sessions() as session, session.begin():
        user = session.scalar(
            insert(User).values(external_id="alice/bob", created=NOW, attributes={})
            .returning(User.id)
        )  # fmt: skip
        item = session.scalar(
            insert(Item).values(external_id="x/y\nz", title="", body="", tags=[], created=NOW,
                                media={}, attributes={}).returning(Item.id)
        )  # fmt: skip
        session.execute(
            insert(Event).values(event_id="old", user_id=user, item_id=item, type="like",
                                 timestamp=NOW, context={})
        )  # fmt: skip
    monkeypatch.setenv("AGORA_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("AGORA_DATABASE_URL", database_url)
    get_settings.cache_clear()
    runner = CliRunner()
    try:
        erased = runner.invoke(cli, ["erase", "user", "alice/bob"])
        assert erased.exit_code == 0, erased.output
        assert "erased user 'alice/bob'" in erased.output
        again = runner.invoke(cli, ["erase", "user", "alice/bob"])
        assert again.exit_code == 1 and "no user 'alice/bob' is stored" in again.output
        item_gone = runner.invoke(cli, ["erase", "item", "x/y\nz"])
        assert item_gone.exit_code == 0, item_gone.output
    finally:
        get_settings.cache_clear()
    with sessions() as session:
        assert session.scalar(select(User.id).where(User.external_id == "alice/bob")) is None
        assert session.scalars(select(Event.id)).all() == []
        assert session.scalars(select(Item.id)).all() == []
    engine.dispose()
