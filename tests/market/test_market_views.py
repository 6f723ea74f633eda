"""The market routes and ads in the feed, through the real app (SQLite and PostgreSQL)."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from agora.market.config import MarketConfig

ADMIN = {"Authorization": "Bearer admin"}
WRITER = {"Authorization": "Bearer writer"}
READER = {"Authorization": "Bearer reader"}
CAMPAIGN = {
    "campaign_id": "c1",
    "advertiser": "Acme",
    "items": ["a0", "a1"],
    "bid": 1.0,
    "daily_budget": 0.5,
    "frequency_cap": 3,
}


def test_campaign_crud_with_scopes_and_clear_errors(client: TestClient) -> None:
    assert client.post("/campaigns", json=CAMPAIGN, headers=WRITER).status_code == 403
    created = client.post("/campaigns", json=CAMPAIGN, headers=ADMIN)
    assert created.status_code == 201, created.text
    assert created.json()["spent_today"] == 0 and created.json()["status"] == "active"
    assert client.post("/campaigns", json=CAMPAIGN, headers=ADMIN).status_code == 200
    conflict = client.post("/campaigns", json={**CAMPAIGN, "bid": 2}, headers=ADMIN)
    assert conflict.status_code == 409
    assert conflict.json()["detail"] == "campaign 'c1' exists with other settings; PATCH it instead"
    missing = client.post(
        "/campaigns", json={**CAMPAIGN, "campaign_id": "c2", "items": ["a0", "zz"]}, headers=ADMIN
    )
    assert missing.status_code == 404  # a well-formed request naming an item not stored
    assert missing.json()["problems"][0]["location"] == "body.items.1"
    assert missing.json()["detail"] == "creatives not stored: 'zz'"
    bad = client.post(
        "/campaigns", json={**CAMPAIGN, "campaign_id": "c3", "bid": -1}, headers=ADMIN
    )
    assert bad.status_code == 422 and "bid" in bad.text
    assert [c["campaign_id"] for c in client.get("/campaigns", headers=ADMIN).json()] == ["c1"]
    patched = client.patch("/campaigns/c1", json={"status": "paused", "bid": 0.7}, headers=ADMIN)
    assert patched.status_code == 200 and patched.json()["bid"] == 0.7
    assert client.patch("/campaigns/nope", json={"bid": 1}, headers=ADMIN).status_code == 404
    # null leaves a field a campaign needs as it is, and clears an optional one
    nulls = {"bid": None, "target_segments": None, "end_at": None, "daily_budget": 12.0}
    kept = client.patch("/campaigns/c1", json=nulls, headers=ADMIN)
    assert kept.status_code == 200, kept.text
    assert kept.json()["bid"] == 0.7 and kept.json()["end_at"] is None
    window = client.patch(
        "/campaigns/c1",
        json={"start_at": "2026-01-02T00:00:00Z", "end_at": "2026-01-01T00:00:00Z"},
        headers=ADMIN,
    )
    assert window.status_code == 422 and "end_at must be after start_at" in window.text
    assert window.json()["problems"] == [
        {
            "location": "body",
            "message": "Value error, end_at must be after start_at",
            "type": "value_error",
        }
    ]
    assert client.get("/campaigns/c1/report", headers=READER).status_code == 403


def test_ads_in_the_feed_clicks_conversions_and_report(client: TestClient) -> None:
    assert client.post("/campaigns", json=CAMPAIGN, headers=ADMIN).status_code == 201
    page = client.get("/users/u1/feed?n=4", headers=READER)
    assert page.status_code == 200, page.text
    items = page.json()["items"]
    ads = [(pos, i) for pos, i in enumerate(items, 1) if i["ad"]]
    assert [pos for pos, _ in ads] == [3]  # one campaign: the first slot
    ad = ads[0][1]
    assert ad["source"] == "ad" and ad["campaign_id"] == "c1" and ad["item_id"] in {"a0", "a1"}
    assert ad["reason"] == "Sponsored by Acme."
    assert page.json()["sources"]["ad"] == 1
    assert all("campaign_id" not in i for pos, i in enumerate(items, 1) if pos != 3)

    click = {"impression_id": ad["impression_id"]}
    assert client.post("/ads/clicks", json=click, headers=READER).status_code == 403
    charged = client.post("/ads/clicks", json=click, headers=WRITER)
    assert charged.status_code == 200, charged.text
    assert charged.json() == {
        "impression_id": ad["impression_id"],
        "campaign_id": "c1",
        "cost": MarketConfig().reserve_price,  # alone in the auction: pays the reserve
        "duplicate": False,
    }
    assert client.post("/ads/clicks", json=click, headers=WRITER).json()["duplicate"] is True
    unknown = client.post("/ads/clicks", json={"impression_id": 999999}, headers=WRITER)
    assert unknown.status_code == 404

    conversion = {"conversion_id": "k1", "campaign_id": "c1", "user_id": "u1", "value": 2.0}
    assert client.post("/ads/conversions", json=conversion, headers=WRITER).status_code == 201
    assert client.post("/ads/conversions", json=conversion, headers=WRITER).status_code == 200
    nobody = client.post(
        "/ads/conversions",
        json={**conversion, "conversion_id": "k2", "user_id": "x"},
        headers=WRITER,
    )
    assert nobody.status_code == 404

    report = client.get("/campaigns/c1/report", headers=ADMIN)
    assert report.status_code == 200, report.text
    body = report.json()
    assert (body["impressions"], body["clicks"], body["conversions"]) == (1, 1, 1)
    assert body["conversion_value"] == 2.0 and body["spend"] == pytest.approx(0.05)
    assert body["roi"] == pytest.approx((2.0 - 0.05) / 0.05)
    assert body["lift"]["holdout_users"] == 0 and body["lift"]["difference"]["estimate"] is None


def test_frequency_cap_in_the_feed(client: TestClient) -> None:
    assert client.post("/campaigns", json=CAMPAIGN, headers=ADMIN).status_code == 201
    shown = [
        sum(i["ad"] for i in client.get("/users/u2/feed?n=4", headers=READER).json()["items"])
        for _ in range(5)
    ]
    assert shown == [1, 1, 1, 0, 0]


BAD_BODIES = [
    b"{",
    b"null",
    b"[1, 2]",
    b'{"unknown_field": 1}',
    b'{"bid": NaN}',
    b'{"bid": 1e999}',
    json.dumps({**CAMPAIGN, "campaign_id": "a\u0000b"}).encode(),
    b'{"campaign_id": "\\ud800", "advertiser": "\\udfff", "items": ["\\ud800"]}',
    json.dumps({**CAMPAIGN, "hours": [25], "frequency_cap": 0}).encode(),
    json.dumps({**CAMPAIGN, "start_at": "2026-01-01T00:00:00"}).encode(),  # no time zone
    json.dumps({"impression_id": "x", "conversion_id": ["a"], "user_id": {"b": 1}}).encode(),
    json.dumps({"impression_id": 0, "value": -1}).encode(),
]
WRITE_ROUTES = [
    ("POST", "/campaigns"),
    ("PATCH", "/campaigns/c1"),
    ("POST", "/ads/clicks"),
    ("POST", "/ads/conversions"),
]


@pytest.mark.parametrize(("method", "path"), WRITE_ROUTES)
def test_bad_bodies_get_4xx_and_store_nothing(client: TestClient, method: str, path: str) -> None:
    for body in BAD_BODIES:
        answer = client.request(
            method, path, content=body, headers={**ADMIN, "content-type": "application/json"}
        )
        assert 400 <= answer.status_code < 500, (body[:80], answer.status_code, answer.text)
        assert "detail" in answer.json()
    assert client.get("/campaigns", headers=ADMIN).json() == []
