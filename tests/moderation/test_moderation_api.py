"""Flags, the review queue, decisions and their feedback, through the real API on SQLite and
PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient
from moderation_support import ADMIN, READ, WRITE, Sample, install_classifier, put_item
from sqlalchemy import select

from agora.db.tables import Event, Item
from agora.moderation import service


def _flag(client: TestClient, item: str, user: str, reason: str = "spam", headers=WRITE):
    return client.post(
        f"/items/{item}/flags", json={"user_id": user, "reason": reason}, headers=headers
    )


def _events(client: TestClient, kind: str) -> list[Event]:
    with client.app.state.sessions() as session:
        return list(session.scalars(select(Event).where(Event.type == kind)))


def _removed(client: TestClient) -> set[str]:
    with client.app.state.sessions() as session:
        ids = service.removed_item_ids(session)
        return set(session.scalars(select(Item.external_id).where(Item.id.in_(ids))))


def test_a_users_repeated_flag_is_stored_once(client: TestClient, sample: Sample) -> None:
    put_item(client, sample.ok[0])
    item = sample.ok[0].item_id
    first = _flag(client, item, "reader1")
    assert first.status_code == 201, first.text
    again = _flag(client, item, "reader1", reason="low_quality")
    assert again.status_code == 200
    assert again.json()["flag_id"] == first.json()["flag_id"]
    assert again.json()["reason"] == "spam"  # the open flag, unchanged
    assert first.json()["priority"] == 0.5  # unscored, one flagger
    second_user = _flag(client, item, "reader2", reason="low_quality")
    assert second_user.status_code == 201
    assert second_user.json()["case_id"] == first.json()["case_id"]
    assert second_user.json()["priority"] == 0.75
    queue = client.get("/moderation/queue", headers=ADMIN).json()
    assert [(c["item_id"], c["n_flags"]) for c in queue] == [(item, 2)]
    assert queue[0]["reasons"] == {"spam": 1, "low_quality": 1}


def test_queue_puts_more_flags_and_higher_scores_first(
    client: TestClient, sample: Sample, trained_root: Path
) -> None:
    install_classifier(client, trained_root)
    fine, spam = sample.ok[130], sample.spam[20]
    for item in (fine, spam, sample.ok[131], sample.ok[132]):
        put_item(client, item)
    scan = client.post("/moderation/scan", headers=ADMIN)
    assert scan.status_code == 200, scan.text
    assert scan.json()["scored"] == 4
    queue = client.get("/moderation/queue", headers=ADMIN).json()
    assert [c["item_id"] for c in queue] == [spam.item_id]  # only the spam is above threshold
    assert queue[0]["score"] > scan.json()["threshold"] and queue[0]["n_flags"] == 0
    # three users flag one real post, one user flags another: flags raise priority
    for user in ("a", "b", "c"):
        assert _flag(client, sample.ok[131].item_id, user).status_code == 201
    assert _flag(client, sample.ok[132].item_id, "a").status_code == 201
    queue = client.get("/moderation/queue", headers=ADMIN).json()
    priorities = [c["priority"] for c in queue]
    assert priorities == sorted(priorities, reverse=True)
    order = [c["item_id"] for c in queue]
    assert order.index(sample.ok[131].item_id) < order.index(sample.ok[132].item_id)
    # flagging scored the items first: their cases carry the classifier's score too
    assert all(c["score"] is not None for c in queue)
    # a second scan finds nothing new to score
    assert client.post("/moderation/scan", headers=ADMIN).json()["scored"] == 0


def test_uphold_writes_one_flag_upheld_event_and_removes_the_item(
    client: TestClient, sample: Sample
) -> None:
    post = sample.spam[0]  # authored by spammer0
    put_item(client, post)
    case_id = _flag(client, post.item_id, "reader1").json()["case_id"]
    decided = client.post(
        f"/moderation/queue/{case_id}/decision", json={"outcome": "uphold"}, headers=ADMIN
    )
    assert decided.status_code == 201, decided.text
    body = decided.json()
    assert body["case"]["status"] == "upheld"
    assert body["event_id"] == f"moderation:{body['decision_id']}"
    again = client.post(
        f"/moderation/queue/{case_id}/decision", json={"outcome": "uphold"}, headers=ADMIN
    )
    assert again.status_code == 200 and again.json()["decision_id"] == body["decision_id"]
    events = _events(client, "flag_upheld")
    assert len(events) == 1 and events[0].event_id == body["event_id"]
    with client.app.state.sessions() as session:
        author = session.scalar(select(Item.author_id).where(Item.external_id == post.item_id))
    assert events[0].user_id == author
    assert _removed(client) == {post.item_id}
    status = client.get(f"/moderation/items/{post.item_id}", headers=READ).json()
    assert status["status"] == "removed" and status["flags"] == {"spam": 1}
    assert status["open_flags"] == 0
    # the opposite decision is refused and changes nothing
    flip = client.post(
        f"/moderation/queue/{case_id}/decision", json={"outcome": "reject"}, headers=ADMIN
    )
    assert flip.status_code == 409 and "already decided: uphold" in flip.json()["detail"]
    assert len(_events(client, "flag_upheld")) == 1
    # the user may flag the item again now that their flag is decided: a new case
    assert _flag(client, post.item_id, "reader1").status_code == 201


def test_rejected_case_clears_the_item_and_authorless_uphold_writes_no_event(
    client: TestClient, sample: Sample
) -> None:
    fine = sample.ok[1]
    put_item(client, fine)
    case_id = _flag(client, fine.item_id, "grumpy", reason="other").json()["case_id"]
    rejected = client.post(
        f"/moderation/queue/{case_id}/decision",
        json={"outcome": "reject", "moderator": "mod-1", "note": "on topic"},
        headers=ADMIN,
    )
    assert rejected.status_code == 201 and rejected.json()["event_id"] is None
    assert client.get(f"/moderation/items/{fine.item_id}", headers=READ).json()["status"] == (
        "cleared"
    )
    orphan = sample.spam[1].model_copy(update={"author_id": None, "item_id": "orphan"})
    put_item(client, orphan)
    case_id = _flag(client, "orphan", "reader1").json()["case_id"]
    upheld = client.post(
        f"/moderation/queue/{case_id}/decision", json={"outcome": "uphold"}, headers=ADMIN
    )
    assert upheld.status_code == 201 and upheld.json()["event_id"] is None
    assert _events(client, "flag_upheld") == []
    assert _removed(client) == {"orphan"}
    upheld_queue = client.get("/moderation/queue?status=upheld", headers=ADMIN).json()
    assert [c["item_id"] for c in upheld_queue] == ["orphan"]


def test_bad_input_gets_a_clear_4xx_and_writes_nothing(client: TestClient, sample: Sample) -> None:
    put_item(client, sample.ok[2])
    item = sample.ok[2].item_id
    bad_reason = _flag(client, item, "u1", reason="boring")
    assert bad_reason.status_code == 422
    problem = bad_reason.json()["problems"][0]
    assert problem["location"] == "body.reason" and "spam" in problem["message"]
    missing_user = client.post(f"/items/{item}/flags", json={"reason": "spam"}, headers=WRITE)
    assert missing_user.json()["problems"][0]["location"] == "body.user_id"
    unknown_item = _flag(client, "no-such-item", "u1")
    assert unknown_item.status_code == 404 and "no-such-item" in unknown_item.json()["detail"]
    assert _flag(client, item, "u1", headers=READ).status_code == 403
    assert client.get("/moderation/queue", headers=WRITE).status_code == 403
    assert client.get("/moderation/queue?status=maybe", headers=ADMIN).status_code == 422
    unknown_case = client.post(
        "/moderation/queue/999/decision", json={"outcome": "uphold"}, headers=ADMIN
    )
    assert unknown_case.status_code == 404 and "999" in unknown_case.json()["detail"]
    bad_outcome = client.post(
        "/moderation/queue/1/decision", json={"outcome": "delete"}, headers=ADMIN
    )
    assert bad_outcome.status_code == 422
    assert bad_outcome.json()["problems"][0]["location"] == "body.outcome"
    assert client.get("/moderation/items/nope", headers=READ).status_code == 404
    assert client.get("/moderation/queue", headers=ADMIN).json() == []
    no_model = client.post("/moderation/scan", headers=ADMIN)
    assert no_model.status_code == 503 and "agora moderation train" in no_model.json()["detail"]
    status = client.get(f"/moderation/items/{item}", headers=READ).json()
    assert status["status"] == "unscored" and status["flags"] == {}


BAD_BODIES = [
    b"{",
    b"null",
    b"[1, 2]",
    b'{"unknown_field": 1}',
    b'{"user_id": "u1", "reason": "spam", "note": "' + b"x" * 3000 + b'"}',
    b'{"user_id": "u\\u0000", "reason": "spam"}',
    b'{"user_id": "", "reason": "spam"}',
    b'{"user_id": true, "reason": "spam"}',
    b'{"outcome": ["uphold"]}',
    b"\xff\xfe",
]


def test_malformed_bodies_get_4xx_never_500(client: TestClient, sample: Sample) -> None:
    put_item(client, sample.ok[3])
    case_id = _flag(client, sample.ok[3].item_id, "u0").json()["case_id"]
    for path in (f"/items/{sample.ok[3].item_id}/flags", f"/moderation/queue/{case_id}/decision"):
        for body in BAD_BODIES:
            answer = client.post(
                path, content=body, headers={**ADMIN, "Content-Type": "application/json"}
            )
            assert answer.status_code in (400, 422), (path, body[:40], answer.text)
            assert answer.json()["detail"]
    status = client.get(f"/moderation/items/{sample.ok[3].item_id}", headers=READ).json()
    assert status["open_flags"] == 1 and status["status"] == "in_review"
