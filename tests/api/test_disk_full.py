"""A full disk: writes answer 507 with a clear message and store nothing; once there is room
again, the same request succeeds. SQLite's ``max_page_count`` makes the database full for real
(SQLITE_FULL, as an exhausted disk does), without filling the machine's disk."""

from __future__ import annotations

from api_support import ADMIN, counts, event
from fastapi.testclient import TestClient
from sqlalchemy import event as sa_event


def test_a_full_database_answers_507_and_stores_nothing(sqlite_client: TestClient) -> None:
    assert sqlite_client.post("/events", json=[event(0)], headers=ADMIN).status_code == 201
    engine = sqlite_client.app.state.engine
    limit = {"pages": 0}

    def cap(dbapi_connection, _record) -> None:  # noqa: ANN001 - the DBAPI's connection
        pages = dbapi_connection.execute("PRAGMA page_count").fetchone()[0]
        limit["pages"] = pages
        dbapi_connection.execute(f"PRAGMA max_page_count = {pages}")

    sa_event.listen(engine, "connect", cap)
    engine.dispose()  # every connection from now on is capped at the file's current size
    before = counts(sqlite_client)["events"]
    batch = [
        event(f"big{i}", user=f"user-{i}", item=f"item-{i}", context={"text": "x" * 2000})
        for i in range(300)
    ]
    answer = sqlite_client.post("/events", json=batch, headers=ADMIN)
    assert limit["pages"] > 0
    assert answer.status_code == 507, answer.text
    assert answer.json()["detail"].startswith("the database's disk is full")
    assert answer.headers["retry-after"] == "60"
    assert counts(sqlite_client)["events"] == before  # all or nothing

    sa_event.remove(engine, "connect", cap)
    engine.dispose()  # room again
    again = sqlite_client.post("/events", json=batch, headers=ADMIN)
    assert again.status_code == 201, again.text
    assert counts(sqlite_client)["events"] == before + 300
