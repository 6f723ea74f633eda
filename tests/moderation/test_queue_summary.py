"""The review queue at a glance (the console's Moderation page): cases per status, open cases
per classifier-score band, open flags per reason; on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient
from moderation_support import ADMIN, WRITE, Sample, install_classifier, put_item

from agora.moderation import service


def _summary(client: TestClient) -> service.QueueSummary:
    with client.app.state.sessions() as session:
        return service.queue_summary(session)


def test_summary_counts_cases_score_bands_and_open_flags(
    client: TestClient, sample: Sample, trained_root: Path
) -> None:
    assert _summary(client) == service.QueueSummary(
        {"open": 0, "upheld": 0, "rejected": 0}, [0] * 10, 0, {}
    )
    install_classifier(client, trained_root)
    items = [sample.spam[20], sample.ok[131], sample.ok[132]]
    for item in items:
        put_item(client, item)
    assert client.post("/moderation/scan", headers=ADMIN).status_code == 200
    for item, user, reason in ((items[1], "a", "spam"), (items[1], "b", "offensive"),
                               (items[2], "a", "spam")):  # fmt: skip
        flagged = client.post(
            f"/items/{item.item_id}/flags", json={"user_id": user, "reason": reason}, headers=WRITE
        )
        assert flagged.status_code == 201, flagged.text
    queue = client.get("/moderation/queue", headers=ADMIN).json()
    assert len(queue) == 3
    decided = next(c for c in queue if c["item_id"] == items[2].item_id)
    path = f"/moderation/queue/{decided['case_id']}/decision"
    assert client.post(path, json={"outcome": "reject"}, headers=ADMIN).status_code == 201
    summary = _summary(client)
    assert summary.cases == {"open": 2, "upheld": 0, "rejected": 1}
    assert summary.open_flags == {"spam": 1, "offensive": 1}
    scores = [c["score"] for c in queue if c["case_id"] != decided["case_id"]]
    expected = [0] * 10
    for score in scores:
        expected[min(int(score * 10), 9)] += 1
    assert summary.bands == expected and summary.unscored == 0
