"""Ads in real feed pages (SQLite and PostgreSQL): the feed's filters apply to ads, creatives of
running campaigns never appear as organic items, a campaign that cannot serve says why, a
failing ad step costs the page nothing, and a click round-trips with the id the feed gives."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from market_support import NOW
from sqlalchemy import text

from agora.config import Settings
from agora.db.engine import transaction
from agora.ingest.schemas import Dataset, ItemIn, UserIn
from agora.ingest.service import add_dataset

ADMIN = {"Authorization": "Bearer admin"}
WRITER = {"Authorization": "Bearer writer"}
READER = {"Authorization": "Bearer reader"}
#: brand's creatives a0, a1 (python); acme's creative g0 (garden)
BRAND = {"campaign_id": "c1", "advertiser": "Brand", "items": ["a0", "a1"], "bid": 1.0}
ACME = {"campaign_id": "c2", "advertiser": "Acme", "items": ["g0"], "bid": 1.0}


def extra() -> Dataset:
    """Organic posts by people other than the brand (q0-q9, chess, new: the feed explores
    them), and acme's creative g0."""
    new = datetime.now(UTC) - timedelta(hours=1)
    return Dataset(
        users=[UserIn(user_id=u) for u in ("w1", "acme")],
        items=[
            ItemIn(item_id="g0", author_id="acme", title="Seeds", tags=["garden"], created=NOW),
            *(
                ItemIn(item_id=f"q{i}", author_id="w1", title=f"Q{i}", tags=["chess"], created=new)
                for i in range(10)
            ),
        ],
    )


@pytest.fixture
def client(client: TestClient) -> TestClient:
    """The market's app and community, with :func:`extra`."""
    with transaction(client.app.state.sessions) as session:
        add_dataset(session, extra(), Settings().event_types, max_future_seconds=1e9)
    return client


def launch(client: TestClient, spec: dict, **fields) -> None:
    body = {"daily_budget": 10.0, "frequency_cap": 20, **spec, **fields}
    answer = client.post("/campaigns", json=body, headers=ADMIN)
    assert answer.status_code == 201, answer.text


def feed(client: TestClient, user: str = "u1", n: int = 12, cursor: str | None = None) -> dict:
    query = f"/users/{user}/feed?n={n}" + (f"&cursor={cursor}" if cursor else "")
    answer = client.get(query, headers=READER)
    assert answer.status_code == 200, answer.text
    return answer.json()


def ads(page: dict) -> list[str]:
    return [i["item_id"] for i in page["items"] if i["ad"]]


def organic(page: dict) -> list[str]:
    return [i["item_id"] for i in page["items"] if not i["ad"]]


def take_down(client: TestClient, item: str) -> None:
    flag = {"user_id": "u30", "reason": "spam"}
    assert client.post(f"/items/{item}/flags", json=flag, headers=WRITER).status_code == 201
    case = next(
        c for c in client.get("/moderation/queue", headers=ADMIN).json() if c["item_id"] == item
    )
    decided = client.post(
        f"/moderation/queue/{case['case_id']}/decision", json={"outcome": "uphold"}, headers=ADMIN
    )
    assert decided.status_code == 201, decided.text


def feedback(client: TestClient, **body) -> None:
    answer = client.post("/users/u1/feedback", json=body, headers=WRITER)
    assert answer.status_code == 204, answer.text


BLOCK_OR_MUTE: dict[str, Callable[[TestClient], None]] = {
    "block the author": lambda c: c.post(
        "/edges", json={"source_id": "u1", "target_id": "brand", "type": "block"}, headers=WRITER
    ).raise_for_status(),
    "mute the author": lambda c: feedback(c, kind="mute_author", author_id="brand"),
    "mute the topic (feedback)": lambda c: feedback(c, kind="mute_tag", tag="python"),
    "mute the topic (settings)": lambda c: c.patch(
        "/users/u1/feed/settings", json={"muted_tags": ["python"]}, headers=WRITER
    ).raise_for_status(),
    "hide the creatives": lambda c: [feedback(c, kind="hide", item_id=i) for i in ("a0", "a1")],
    "take the creatives down": lambda c: [take_down(c, i) for i in ("a0", "a1")],
}


@pytest.mark.parametrize("action", list(BLOCK_OR_MUTE))
def test_ads_obey_blocks_mutes_hides_and_take_downs(client: TestClient, action: str) -> None:
    launch(client, BRAND)
    launch(client, ACME)
    before = feed(client)
    assert sorted(ads(before)) in (["a0", "g0"], ["a1", "g0"])  # both campaigns win a slot
    BLOCK_OR_MUTE[action](client)
    for _ in range(3):  # fresh pages: the brand's creatives never come back, acme still serves
        page = feed(client)
        assert len(organic(page)) >= 9  # both slots were there to fill
        assert ads(page) == ["g0"], page["items"]


def test_a_new_post_as_creative_is_shown_as_an_ad_never_as_organic(client: TestClient) -> None:
    post = {"author_id": "acme", "title": "Brand new", "tags": ["python"]}
    assert client.put("/items/new1", json=post, headers=WRITER).status_code in (200, 201)
    launch(client, {"campaign_id": "fresh", "advertiser": "Acme", "items": ["new1"], "bid": 1.0})
    seen_as_ad, cursor = 0, None
    for _ in range(3):  # a browsing session: the first page and two next ones
        page = feed(client, n=6, cursor=cursor)
        cursor = page["next_cursor"]
        assert "new1" not in organic(page), page["items"]
        seen_as_ad += ads(page).count("new1")
    assert seen_as_ad >= 1
    report = client.get("/campaigns/fresh/report", headers=ADMIN).json()
    assert report["impressions"] == seen_as_ad
    assert report["serving"] == {"status": "serving", "reasons": [], "notes": []}

    # pages long enough for every new post (eleven compete for a short page's slots by
    # Thompson draws, which depend on when the impressions above were counted): while the
    # campaign runs the post is never organic; paused, it is organic content again
    assert "new1" not in organic(feed(client, n=40))
    client.patch("/campaigns/fresh", json={"status": "paused"}, headers=ADMIN).raise_for_status()
    assert "new1" in organic(feed(client, n=40))


def codes(client: TestClient, campaign: str) -> list[str]:
    """The reasons a campaign cannot serve, from its report; its GET says the same."""
    report = client.get(f"/campaigns/{campaign}/report", headers=ADMIN)
    assert report.status_code == 200, report.text
    shown = client.get(f"/campaigns/{campaign}", headers=ADMIN).json()["serving"]
    assert shown == report.json()["serving"]
    status = report.json()["serving"]["status"]
    reasons = [r["code"] for r in report.json()["serving"]["reasons"]]
    assert status == ("not_serving" if reasons else "serving")
    assert all(r["detail"] for r in report.json()["serving"]["reasons"])
    return reasons


def test_a_campaign_that_cannot_serve_says_why(client: TestClient) -> None:
    now = datetime.now(UTC)
    launch(client, BRAND)
    assert codes(client, "c1") == []
    launch(client, BRAND, campaign_id="paused", status="paused")
    assert codes(client, "paused") == ["paused"]
    later = {"start_at": (now + timedelta(days=1)).isoformat()}
    launch(client, BRAND, campaign_id="later", **later)
    assert codes(client, "later") == ["not_started"]
    over = {"start_at": (now - timedelta(days=2)).isoformat(), "end_at": now.isoformat()}
    launch(client, BRAND, campaign_id="over", **over)
    assert codes(client, "over") == ["ended"]
    launch(client, BRAND, campaign_id="cheap", bid=0.01)
    assert codes(client, "cheap") == ["bid_below_reserve"]
    launch(client, BRAND, campaign_id="nobody", target_segments=["no-such-group"])
    assert codes(client, "nobody") == ["no_audience"]
    launch(client, BRAND, campaign_id="notag", target_tags=["no-item-has-this"])
    assert codes(client, "notag") == ["no_audience"]
    launch(client, BRAND, campaign_id="tagged", target_tags=["python"], target_segments=["pro"])
    assert codes(client, "tagged") == []
    launch(client, ACME, campaign_id="gone")
    take_down(client, "g0")
    assert codes(client, "gone") == ["no_creatives"]

    # a spent budget: one click at the reserve spends all of it
    launch(client, ACME, campaign_id="small", items=["q0"], daily_budget=0.05)
    ad = next(i for i in feed(client, user="u25")["items"] if i.get("campaign_id") == "small")
    click = client.post("/ads/clicks", json={"impression_id": ad["impression_id"]}, headers=WRITER)
    assert click.status_code == 200, click.text
    assert codes(client, "small") == ["budget_spent"]
    assert "q0" not in ads(feed(client, user="u26"))

    # a creative partly gone still serves, with a note
    take_down(client, "a0")
    assert codes(client, "c1") == []
    notes = client.get("/campaigns/c1", headers=ADMIN).json()["serving"]["notes"]
    assert [n["code"] for n in notes] == ["creatives_unavailable"] and "a0" in notes[0]["detail"]


def refuse_ad_impressions(client: TestClient, on: bool) -> None:
    """A real database error at the market's write: a trigger that rejects ad impressions."""
    sessions = client.app.state.sessions
    with transaction(sessions) as session:
        postgres = session.get_bind().dialect.name == "postgresql"
        if not on:
            session.execute(text("DROP TRIGGER refuse_ads" + (" ON ad_impressions" * postgres)))
        elif postgres:
            session.execute(
                text(
                    "CREATE FUNCTION refuse_ads() RETURNS trigger AS $$ BEGIN "
                    "RAISE EXCEPTION 'ad impressions refused'; END $$ LANGUAGE plpgsql"
                )
            )
            session.execute(
                text(
                    "CREATE TRIGGER refuse_ads BEFORE INSERT ON ad_impressions "
                    "FOR EACH ROW EXECUTE FUNCTION refuse_ads()"
                )
            )
        else:
            session.execute(
                text(
                    "CREATE TRIGGER refuse_ads BEFORE INSERT ON ad_impressions "
                    "BEGIN SELECT RAISE(ABORT, 'ad impressions refused'); END"
                )
            )


def test_a_failing_ad_step_serves_the_organic_page_and_loses_nothing(
    client: TestClient,
) -> None:
    launch(client, BRAND)
    refuse_ad_impressions(client, on=True)
    first = feed(client, n=6)  # the ad step fails: the page is served without ads
    assert ads(first) == [] and len(first["items"]) == 6 and "ad" not in first["sources"]
    client.app.state.impressions.flush()  # organic impressions are written in batches
    shown = client.get("/feed/sources?hours=1", headers=READER).json()
    assert sum(shown.values()) == 6  # its items are recorded once, with the page
    nxt = feed(client, n=6, cursor=first["next_cursor"])  # from the cache, the ad step fails
    assert ads(nxt) == [] and len(nxt["items"]) == 6
    assert not set(organic(nxt)) & set(organic(first))
    refuse_ad_impressions(client, on=False)
    assert ads(feed(client, n=6, cursor=nxt["next_cursor"])) in (["a0"], ["a1"])


def test_a_stored_campaign_that_breaks_the_auction_is_skipped_and_says_so(
    client: TestClient,
) -> None:
    launch(client, BRAND)
    launch(client, ACME)
    with transaction(client.app.state.sessions) as session:
        session.execute(text("UPDATE ad_campaigns SET target_tags = '5' WHERE external_id = 'c1'"))
    page = feed(client)
    assert ads(page) == ["g0"]
    assert codes(client, "c1") == ["invalid_settings"]
    reason = client.get("/campaigns/c1", headers=ADMIN).json()["serving"]["reasons"][0]
    assert reason["detail"].startswith("its stored settings are invalid (target_tags: ")
    assert [c["campaign_id"] for c in client.get("/campaigns", headers=ADMIN).json()] == [
        "c1",
        "c2",
    ]


def test_a_click_round_trips_with_the_id_the_feed_gives(client: TestClient) -> None:
    launch(client, BRAND)
    ad = next(i for i in feed(client)["items"] if i["ad"])
    assert "ad_impression" not in ad
    click = client.post("/ads/clicks", json={"impression_id": ad["impression_id"]}, headers=WRITER)
    assert click.status_code == 200, click.text
    assert click.json()["impression_id"] == ad["impression_id"]
    assert click.json()["campaign_id"] == "c1" and click.json()["duplicate"] is False
