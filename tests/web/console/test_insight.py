"""The Market, Experiments and Analytics pages in a real Chromium against the served demo
store: a campaign created, clicked, paused and re-budgeted from the page, with its spend drawn
against the pacing curve; an experiment started and stopped; trending, sentiment, influence,
segments and suspects as the API answers them; and a read key refused by the server."""

from __future__ import annotations

import re
import sqlite3
import time

from console_support import (
    ADMIN,
    READER,
    SHARED_ITEM,
    WRITER,
    Store,
    charts_drawn,
    screenshot,
    sign_in,
)

CAMPAIGN = "console-campaign"
EXPERIMENT = "console-experiment"
#: An early window of the bundled community (its first posts, scored first by the background
#: sentiment scorer): the analytics tests read its bursts and sentiment.
UNTIL = "2021-06-30"
WINDOW = {"since": "2021-05-02T00:00:00Z", "until": "2021-07-01T00:00:00Z"}  # 60 days


def _members(store: Store, n: int) -> list[str]:
    """``n`` members of the store: the authors whose posts reached most people."""
    return [row["key"] for row in store.api("GET", f"/analytics/reach?by=author&n={n}").json()]


def _p_value(p: float | None) -> str:
    """A p-value as the pages write it."""
    return "–" if p is None else "< 0.001" if p < 0.001 else f"{p:.3f}"


def _ad_impressions(store: Store, campaign_id: str) -> list[tuple[str, int]]:
    """(user, impression id) of the campaign's ads in members' feeds (a few members are in
    its holdout and never get it)."""
    found = []
    for user in _members(store, 12):
        page = store.api("GET", f"/users/{user}/feed", key=READER).json()
        found += [
            (user, i["impression_id"]) for i in page["items"] if i.get("campaign_id") == campaign_id
        ]
    return found


def _wait_for(store: Store, path: str, timeout: float = 120.0) -> dict:
    """The API's answer once a background result exists (200, not 202 pending)."""
    deadline = time.time() + timeout
    while True:
        answer = store.api("GET", path)
        if answer.status_code == 200:
            return answer.json()
        assert answer.status_code == 202 and time.time() < deadline, answer.text
        time.sleep(1.0)


def _scored_in_window(store: Store) -> int:
    """Posts and comments of the window the background scorer has scored, as the API says."""
    answer = store.api("GET", "/analytics/sentiment", params={"by": "day", **WINDOW})
    return answer.json()["n_texts"]


def _analytics(page, store: Store, until: str) -> None:
    """The analytics page of the window ending ``until``, once its keywords and sentiment
    panels (fragments the page loads) are in."""
    page.goto(store.url + f"/console/analytics?until={until}")
    page.locator("#trending-keywords:not([hx-get])").wait_for()
    page.locator("#sentiment:not([hx-get])").wait_for()


def test_market_creates_a_campaign_draws_its_pacing_and_pauses_it(browser, store: Store) -> None:
    context, page = sign_in(browser, store, ADMIN)
    page.goto(store.url + "/console/market")
    form = page.locator("#create-campaign")
    form.locator("[name=campaign_id]").fill(CAMPAIGN)
    form.locator("[name=advertiser]").fill("Stake Pool Co")
    form.locator("[name=name]").fill("Staking explained")
    form.locator("[name=items]").fill(SHARED_ITEM)
    form.locator("[name=bid]").fill("0.5")
    form.locator("[name=daily_budget]").fill("2")
    page.click("#create-submit")
    page.wait_for_url(store.url + f"/console/market/{CAMPAIGN}")
    stored = store.api("GET", f"/campaigns/{CAMPAIGN}").json()
    assert stored["advertiser"] == "Stake Pool Co" and stored["items"] == [SHARED_ITEM]
    assert stored["bid"] == 0.5 and stored["daily_budget"] == 2 and stored["status"] == "active"

    # members' feeds carry the ad; three click it, one of them converts: the page shows it
    shown = _ad_impressions(store, CAMPAIGN)
    assert len(shown) >= 3, shown
    costs = []
    for _, impression in shown[:3]:
        click = store.api("POST", "/ads/clicks", key=WRITER, json={"impression_id": impression})
        assert click.status_code == 200, click.text
        costs.append(click.json()["cost"])
    conversion = {
        "conversion_id": "console-conv-1",
        "campaign_id": CAMPAIGN,
        "user_id": shown[0][0],
    }
    assert store.api("POST", "/ads/conversions", key=WRITER, json=conversion).status_code == 201
    page.reload()
    assert charts_drawn(page) == [True]
    pacing = page.locator("#pacing-chart").inner_text()
    assert "Spend so far" in pacing and "Pacing target" in pacing
    spent = f"{sum(costs):.2f} of the daily budget 2.00 spent today"
    assert spent in page.inner_text("#pacing-text")
    report = store.api("GET", f"/campaigns/{CAMPAIGN}/report").json()
    performance = page.inner_text("#performance")
    assert f"Impressions\t{report['impressions']:,}" in performance
    assert "Clicks\t3" in performance and "Conversions after a click\t1" in performance
    ctr = report["ctr"]
    assert f"{ctr['estimate']:.2%} [{ctr['low']:.2%}, {ctr['high']:.2%}]" in page.inner_text("#ctr")
    lift = page.inner_text("#lift")
    assert f"{report['lift']['exposed_users']:,}" in lift
    cvr = report["cvr"]
    assert f"{cvr['estimate']:.2%} [{cvr['low']:.2%}, {cvr['high']:.2%}]" in page.inner_text("#cvr")
    assert page.inner_text("#serving").strip() == "Serving"
    screenshot(page, "campaign")

    with page.expect_navigation():  # the change shows on the page loaded again
        page.click("#toggle-status")
    assert page.inner_text("#campaign-status") == "Paused"
    assert "Paused" in page.inner_text("#serving-reasons")
    assert store.api("GET", f"/campaigns/{CAMPAIGN}").json()["status"] == "paused"
    page.fill(".budget input[name=daily_budget]", "35")
    with page.expect_navigation():
        page.click("#save-budget")
    assert page.inner_text("#campaign-budget") == "35.00"
    assert store.api("GET", f"/campaigns/{CAMPAIGN}").json()["daily_budget"] == 35
    token = page.locator("header form input[name=csrf]").input_value()
    refused = page.request.post(
        store.url + f"/console/market/{CAMPAIGN}/change",
        form={"csrf": token, "daily_budget": "-3"},
    )
    assert (
        refused.status == 422 and "daily_budget: Input should be greater than 0" in refused.text()
    )

    page.goto(store.url + "/console/market")
    row = page.locator("#campaigns tr", has_text=CAMPAIGN)
    assert "Paused" in row.inner_text() and "Stake Pool Co" in row.inner_text()
    screenshot(page, "market")

    context.add_cookies([{"name": "agora_lang", "value": "zh", "url": store.url}])
    page.goto(store.url + f"/console/market/{CAMPAIGN}")  # the campaign page in Chinese
    assert page.inner_text("#campaign-status") == "已暂停"
    assert "今日花费与匀速投放曲线" in page.inner_text("main") and all(charts_drawn(page))
    screenshot(page, "campaign-zh")
    context.close()


def test_an_experiment_is_started_measured_and_stopped_from_its_page(browser, store: Store) -> None:
    spec = {
        "experiment_id": EXPERIMENT,
        "name": "More diverse feeds",
        "arms": [{"name": "control"}, {"name": "diverse", "overrides": {"diversity": 0.9}}],
        "planned_users": 40,
        "guardrails": [{"metric": "ctr", "max_drop": 0.2}],
    }
    assert store.api("POST", "/experiments", json=spec).status_code == 201
    context, page = sign_in(browser, store, ADMIN)
    page.goto(store.url + "/console/experiments")
    row = page.locator("#experiments tr", has_text=EXPERIMENT)
    assert "Draft" in row.inner_text()
    row.locator("a").click()
    page.wait_for_url(store.url + f"/console/experiments/{EXPERIMENT}")
    with page.expect_navigation():
        page.click("#start-experiment")
    assert page.inner_text("#experiment-status") == "Running"
    assert store.api("GET", f"/experiments/{EXPERIMENT}").json()["status"] == "running"

    members = _members(store, 6)  # fewer than the first guardrail look's 8: none is taken yet
    for n, user in enumerate(members):  # members read their feeds (exposed to their arm)
        feed = store.api("GET", f"/users/{user}/feed", key=READER).json()["items"]
        likes = [  # and like some of what they were shown
            {
                "event_id": f"console-exp-{user}-{i}",
                "user_id": user,
                "item_id": item["item_id"],
                "type": "like",
            }
            for i, item in enumerate(feed[: 1 + n % 3])
        ]
        assert store.api("POST", "/events", key=WRITER, json=likes).status_code in (200, 201)
    page.wait_for_timeout(1500)  # past the impression buffer's flush (1 s)
    page.reload()
    assert charts_drawn(page) == [True]
    stored = store.api("GET", f"/experiments/{EXPERIMENT}").json()
    exposed = {arm["name"]: arm["exposed_users"] for arm in stored["arms"]}
    assert sum(exposed.values()) == len(members)
    arms = page.inner_text("#arms")
    for name, n in exposed.items():
        assert re.search(rf"{name}.*\t{n}$", arms, re.MULTILINE), arms
    results = store.api("GET", f"/experiments/{EXPERIMENT}/results").json()
    shown = page.locator("table.comparisons[data-arm=diverse] tr[data-metric]")
    assert shown.count() == 3  # CTR, engagements per user, retention
    ctr = next(c for c in results["comparisons"][0]["comparisons"] if c["metric"] == "ctr")
    assert page.inner_text("tr[data-metric=ctr] .p-value") == _p_value(ctr["p_value"])
    assert "No guardrail look taken yet." in page.inner_text("main")
    assert "Next look (1/5) when 8 users are exposed" in page.inner_text("#next-look")
    screenshot(page, "experiment")

    page.fill("input[name=reason]", "enough seen for the demo")
    with page.expect_navigation():
        page.click("#stop-experiment")
    assert page.inner_text("#experiment-status") == "Stopped"
    assert "enough seen for the demo" in page.inner_text("#stop-reason")
    stopped = store.api("GET", f"/experiments/{EXPERIMENT}").json()
    assert stopped["status"] == "stopped" and stopped["stop_reason"] == "enough seen for the demo"
    assert page.locator("#stop-experiment, #start-experiment").count() == 0
    context.close()


def test_analytics_shows_the_apis_bursts_sentiment_influence_segments_and_suspects(
    browser, store: Store
) -> None:
    built = store.api("POST", "/analytics/segments", json={"k": 4, "seed": 1})
    assert built.status_code == 200, built.text
    segments = built.json()["segments"]
    influence = _wait_for(store, "/analytics/influence?top=1")
    suspects = _wait_for(store, "/analytics/anomalies/users?top=1")
    trending = store.api(
        "GET", f"/analytics/trending?now={WINDOW['until']}&buckets=60&source=tags"
    ).json()
    assert trending["bursts"], "the bundled community's first months have bursts"
    rule = {"name": "console-spikes", "kind": "volume_spike"}  # any tag
    assert store.api("POST", "/analytics/alerts/rules", json=rule).status_code in (200, 201)
    burst = trending["bursts"][0]  # evaluated the day after the strongest burst's last day
    fired = store.api("POST", "/analytics/alerts/evaluate", params={"now": burst["end"]}).json()
    assert fired["fired"], fired
    keywords = store.api(
        "GET", f"/analytics/trending?now={WINDOW['until']}&buckets=60&source=keywords"
    ).json()
    deadline = time.time() + 120  # the background scorer starts with the oldest posts
    while not _scored_in_window(store):
        assert time.time() < deadline, "no post of the window was scored"
        time.sleep(2)

    context, page = sign_in(browser, store, ADMIN)
    before = _scored_in_window(store)
    _analytics(page, store, UNTIL)
    assert all(charts_drawn(page))
    for chart in ("#tags-chart", "#sentiment-day-chart", "#sentiment-tag-chart"):
        assert page.locator(chart + "[data-drawn=true]").count() == 1, chart
    assert "Peak posts / day" in page.inner_text("#tags-chart")
    said = page.inner_text("#trending-keywords")
    n = len(keywords["bursts"])
    assert (f"{n} bursts in the window" if n else "No burst in this window.") in said
    top = trending["bursts"][0]
    first = page.locator("#trending-tags table.bursts tr").nth(1).inner_text()
    assert top["key"] in first and f"\t{top['peak_count']}\t" in first
    note = page.inner_text("#sentiment-note")
    scored = int(re.search(r"([\d,]+) posts and comments scored", note).group(1).replace(",", ""))
    assert before <= scored <= _scored_in_window(store)  # the scorer goes on meanwhile
    assert (
        page.locator("#influence tr").nth(1).inner_text().startswith(influence["top"][0]["user_id"])
    )
    listed = [row.split("\t")[1] for row in page.inner_text("#alerts").splitlines()[1:]]
    open_alerts = store.api("GET", "/analytics/alerts", params={"status": "open"}).json()
    assert len(open_alerts) == len(fired["fired"])  # the burst's day fired them all
    assert listed == [alert["key"] for alert in open_alerts[:12]]  # the newest 12
    assert f"{len(open_alerts)} open alerts; the newest {len(listed)}" in page.inner_text("main")
    assert page.locator("#segments tr").count() == 1 + len(segments)
    assert "·" in page.locator("#segments tr").nth(1).inner_text()  # persona: level · interests
    suspect = page.locator("#suspects tr").nth(1).inner_text()
    assert suspect.startswith(suspects["top"][0]["user_id"])
    screenshot(page, "analytics")

    page.click("a[hreflang=zh]")  # Chinese, kept in a cookie
    page.wait_for_url(store.url + "/console/analytics")
    _analytics(page, store, UNTIL)
    assert all(charts_drawn(page))
    main = page.inner_text("main")
    assert all(
        word in main for word in ("热门标签", "每日情绪", "最有影响力的用户", "疑似刷量用户")
    )
    screenshot(page, "analytics-zh")
    context.close()


def test_a_read_key_sees_analytics_but_no_campaign_experiment_or_suspect(
    browser, store: Store
) -> None:
    context, page = sign_in(browser, store, READER)
    _analytics(page, store, UNTIL)
    assert page.locator("#trending-tags table.bursts").count() == 1
    assert page.locator("#segments, #suspects").count() == 0
    assert "admin keys only" in page.inner_text("#suspects-admin")
    page.goto(store.url + "/console/market")
    assert "admin keys only" in page.inner_text("#admin-only")
    assert page.locator("#create-campaign, #campaigns").count() == 0
    page.goto(store.url + f"/console/experiments/{EXPERIMENT}")
    assert "admin keys only" in page.inner_text("#admin-only")
    context.close()


def test_no_market_or_experiment_action_without_an_admin_key(browser, store: Store) -> None:
    """The page's own CSRF token and session cookie, posted by hand: the server answers 403
    for a read key and for a write key (the API keeps campaigns and experiments for admin)."""
    spec = {
        "experiment_id": "console-draft",
        "arms": [{"name": "a"}, {"name": "b"}],
        "planned_users": 10,
    }
    assert store.api("POST", "/experiments", json=spec).status_code == 201
    campaign = {
        "campaign_id": "console-paused",
        "advertiser": "x",
        "items": [SHARED_ITEM],
        "bid": 1,
        "daily_budget": 5,
        "status": "paused",
    }
    assert store.api("POST", "/campaigns", json=campaign).status_code == 201
    for key in (READER, WRITER):
        context, page = sign_in(browser, store, key)
        token = page.locator("header form input[name=csrf]").input_value()
        actions = [
            (
                "/console/market",
                {
                    "campaign_id": "sneaky",
                    "advertiser": "x",
                    "items": SHARED_ITEM,
                    "bid": "1",
                    "daily_budget": "5",
                },
            ),
            ("/console/market/console-paused/change", {"status": "active"}),
            ("/console/experiments/console-draft/start", {}),
            ("/console/experiments/console-draft/stop", {"reason": "no"}),
        ]
        for path, fields in actions:
            refused = page.request.post(
                store.url + path, form={"csrf": token, **fields}, headers={"HX-Request": "true"}
            )
            assert refused.status == 403 and "'admin' scope" in refused.text(), (key, path)
        context.close()
    assert store.api("GET", "/campaigns/sneaky").status_code == 404
    assert store.api("GET", "/experiments/console-draft").json()["status"] == "draft"
    assert store.api("GET", "/campaigns/console-paused").json()["status"] == "paused"


def test_bad_input_on_these_pages_gets_a_clear_4xx(browser, store: Store) -> None:
    context, page = sign_in(browser, store, ADMIN)
    ask = context.request
    missing = ask.get(store.url + "/console/market/no-such-campaign")
    assert missing.status == 404 and "There is no campaign “no-such-campaign”" in missing.text()
    missing = ask.get(store.url + "/console/experiments/no-such-experiment")
    assert missing.status == 404 and "There is no experiment" in missing.text()
    far = ask.get(store.url + "/console/analytics?until=9999-12-31")
    assert far.status == 422 and "less than or equal to 2099-12-30" in far.text()
    assert ask.get(store.url + "/console/analytics/keywords?until=someday").status == 422
    token = page.locator("header form input[name=csrf]").input_value()
    for fields, said in (
        (
            {
                "campaign_id": "c",
                "advertiser": "a",
                "items": SHARED_ITEM,
                "bid": "cheap",
                "daily_budget": "5",
            },
            "bid: Input should be a valid number",
        ),
        (
            {
                "campaign_id": "c",
                "advertiser": "a",
                "items": "no-such-item",
                "bid": "1",
                "daily_budget": "5",
            },
            "creatives not stored: 'no-such-item'",
        ),
    ):
        refused = ask.post(store.url + "/console/market", form={"csrf": token, **fields})
        assert refused.status in (404, 422) and said in refused.text(), refused.text()
    assert store.api("GET", "/campaigns/c").status_code == 404
    context.close()


def test_an_oddly_stored_campaign_does_not_take_the_market_pages_down(
    browser, store: Store
) -> None:
    """A campaign row written behind the API's back: lists that are not lists, a status the
    API does not know."""
    with sqlite3.connect(store.folder / "agora-data" / "agora.db") as db:
        db.execute(
            "insert into ad_campaigns (external_id, advertiser, name, items, target_tags,"
            " target_segments, bid, daily_budget, frequency_cap, hours, conversion_event,"
            " conversion_value, status, holdout_salt, created, updated) values ('odd-campaign',"
            " 'odd', '', '{\"not\": \"a list\"}', '7', 'null', 1.0, 5.0, 3, '\"all\"', 'click',"
            " 1.0, 'archived', 'salt', '2021-11-01 00:00:00.000000', '2021-11-01 00:00:00.000000')"
        )
    context, page = sign_in(browser, store, ADMIN)
    answer = page.goto(store.url + "/console/market")
    assert answer.status == 200 and "odd-campaign" in page.inner_text("#campaigns")
    answer = page.goto(store.url + "/console/market/odd-campaign")
    assert answer.status == 200
    assert "Invalid stored settings" in page.inner_text("#serving-reasons")
    context.close()
