"""The operator console in a real Chromium against a real ``agora serve``: sign-in, every
page with its charts drawn and the store's own figures, the live rate, a feed preview, an
edited control, the Chinese texts, and a read key refused by the server."""

from __future__ import annotations

import re
import sqlite3
import uuid

import httpx
from console_support import (
    ADMIN,
    READER,
    SHARED_ITEM,
    SHARERS,
    WRITER,
    Store,
    charts_drawn,
    screenshot,
    sign_in,
)

from agora.web.console.i18n.en import TEXTS as ENGLISH


def _store_counts(store: Store) -> dict[str, int]:
    with sqlite3.connect(store.folder / "agora-data" / "agora.db") as db:
        return {
            name: db.execute(f"select count(*) from {table}").fetchone()[0]
            for name, table in [("users", "users"), ("items", "items"), ("events", "events"),
                                ("edges", "social_edges")]
        }  # fmt: skip


def test_no_page_or_fragment_without_a_session(store: Store) -> None:
    page = httpx.get(store.url + "/console/users/28", follow_redirects=False)
    assert page.status_code == 303
    assert page.headers["location"] == "/console/signin?next=/console/users/28"
    fragment = httpx.get(store.url + "/console/overview/rate", headers={"HX-Request": "true"})
    assert fragment.status_code == 401
    action = httpx.post(store.url + "/console/users/28/controls", data={"diversity": "0.9"})
    assert action.status_code == 401


def test_a_wrong_key_is_refused_and_the_key_never_reaches_the_log(browser, store: Store) -> None:
    context = browser.new_context()
    page = context.new_page()
    page.goto(store.url + "/console/signin")
    screenshot(page, "signin")
    page.fill("#api_key", "not-a-key")
    page.click("form button[type=submit]")
    assert page.locator(".error").inner_text() == "This key is not known, or it cannot read."
    assert "/console/signin" in page.url
    context.close()
    assert ADMIN not in store.server.log() and "not-a-key" not in store.server.log()


def test_overview_shows_the_store_live_rate_models_and_charts(browser, store: Store) -> None:
    context, page = sign_in(browser, store, ADMIN)
    counts = _store_counts(store)
    for name, value in counts.items():
        shown = page.locator(f"[data-testid=count-{name}] .value").inner_text()
        assert shown == f"{value:,}", name
    models = page.locator("#models").inner_text()
    for name in ("ease", "itemknn", "trending"):
        assert name in models
    assert re.search(r"itemknn\s+\S+\s+0\.\d{4}", models), models  # a real holdout NDCG@10
    assert charts_drawn(page) == [True, True, True]  # live rate, DAU/WAU, feed sources
    assert "DAU" in page.locator("#active-chart").inner_text()
    assert "collaborative" in page.locator("#sources-chart").inner_text()
    # events arrive while the page is open: the live rate rises without a reload
    before = int(page.locator("[data-testid=rate-last]").inner_text().replace(",", ""))
    fresh = [
        {"event_id": f"live-{uuid.uuid4().hex}", "user_id": "17", "item_id": "4596",
         "type": "view"}
        for _ in range(5)
    ]  # fmt: skip
    assert store.api("POST", "/events", key=WRITER, json=fresh).status_code in (200, 201)
    page.wait_for_function(
        f"() => parseInt(document.querySelector('[data-testid=rate-last]').textContent"
        f".replace(/,/g, '')) >= {before + 5}",
        timeout=15_000,
    )
    assert page.evaluate("performance.getEntriesByType('navigation').length") == 1
    screenshot(page, "overview")
    context.close()


def test_user_page_previews_the_feed_and_a_write_key_edits_a_control(browser, store: Store) -> None:
    context, page = sign_in(browser, store, WRITER)
    shown_before = store.api("GET", "/feed/sources").json()
    page.goto(store.url + "/console/users?q=28")
    page.click("#results a:text-is('28')")
    page.wait_for_url(store.url + "/console/users/28")
    assert "Level " in page.locator("#trust-level").inner_text()
    assert page.locator("#next-level tr").count() > 1
    assert "Is there any script" in page.locator("#events").inner_text()  # a real event
    items = page.locator("#preview-items li")
    items.first.wait_for()
    assert items.count() == 10
    first = items.first.inner_text()
    source = items.first.locator(".source").get_attribute("data-source")
    assert source in ("collaborative", "sequential", "content", "trending", "in_network")
    assert ENGLISH[f"reason.{source}"] in first  # why it is there, in the operator's words
    assert "Score carried by their past items:" in first  # what carried the model's score
    screenshot(page, "user")
    # mute the first previewed item's first tag: the preview refreshes without it
    tag = items.first.locator(".tag").first.inner_text()
    page.fill("input[name=muted_tags]", tag)
    page.fill("input[name=diversity]", "0.7")
    page.click("#save-controls")
    page.wait_for_function(
        "tag => document.querySelectorAll('#preview-items li').length > 0 && ![...document"
        ".querySelectorAll('#preview-items .tag')].some(t => t.textContent === tag)",
        arg=tag,
    )
    page.wait_for_timeout(1500)  # past the impression buffer's flush (1 s)
    assert store.api("GET", "/feed/sources").json() == shown_before  # previews record nothing
    stored = store.api("GET", "/users/28/feed/settings", key=READER).json()
    assert stored["muted_tags"] == [tag] and stored["diversity"] == 0.7
    assert page.locator("input[name=muted_tags]").input_value() == tag
    context.close()


def test_items_search_and_item_page_with_cascade_similar_and_moderation(
    browser, store: Store
) -> None:
    context, page = sign_in(browser, store, READER)
    page.goto(store.url + "/console/items?q=staking")
    assert page.locator("#results tr").count() > 2
    screenshot(page, "items")
    page.goto(store.url + f"/console/items/{SHARED_ITEM}")
    assert "Do script addresses have a staking part" in page.locator("h1").inner_text()
    stats = page.locator("#cascade-stats").inner_text()
    assert f"{len(SHARERS) + 1} people · depth {len(SHARERS)}" in stats  # a chain of shares
    assert charts_drawn(page) == [True]
    cascade = page.locator("#cascade-chart").inner_text()
    assert all(user in cascade for user in SHARERS)
    assert page.locator("#similar li").count() > 0
    assert page.locator("#moderation-status").inner_text()
    assert "share" in page.locator("#item-stats").inner_text()
    screenshot(page, "item")
    context.close()


def test_chinese_texts_are_remembered(browser, store: Store) -> None:
    context, page = sign_in(browser, store, ADMIN)
    page.click("a[hreflang=zh]")
    page.wait_for_url(store.url + "/console/")
    nav = page.locator("header nav").inner_text()
    assert all(word in nav for word in ("概览", "用户", "内容"))
    assert page.locator("header button").inner_text() == "退出"
    assert "日活" in page.locator("#active-chart").inner_text()
    assert "协同过滤" in page.locator("#sources-chart").inner_text()
    charts_drawn(page)
    screenshot(page, "overview-zh")
    page.goto(store.url + "/console/users/28")  # the choice is kept in a cookie
    assert "信任等级" in page.locator("main").inner_text()
    page.locator("#preview-items li").first.wait_for()
    assert "推荐依据" in page.locator("#preview-items").inner_text()
    screenshot(page, "user-zh")
    context.close()


def test_a_read_key_sees_no_action_and_the_server_refuses_one(browser, store: Store) -> None:
    context, page = sign_in(browser, store, READER)
    page.goto(store.url + "/console/users/31")
    assert page.locator("#controls form").count() == 0
    assert "Read-only" in page.locator("#controls").inner_text()
    # the page's own CSRF token and session cookie, posted by hand: the server says 403
    token = page.locator("header form input[name=csrf]").input_value()
    refused = page.request.post(
        store.url + "/console/users/31/controls",
        form={"csrf": token, "diversity": "0.1"},
        headers={"HX-Request": "true"},
    )
    assert refused.status == 403
    assert store.api("GET", "/users/31/feed/settings", key=READER).json()["diversity"] != 0.1
    context.close()


def test_an_action_without_its_csrf_token_is_refused_and_sign_out_ends_the_session(
    browser, store: Store
) -> None:
    context, page = sign_in(browser, store, ADMIN)
    forged = page.request.post(store.url + "/console/users/31/controls", form={"diversity": "0.2"})
    assert forged.status == 403 and "CSRF" in forged.text()
    page.click("header form button")
    page.wait_for_url(re.compile(r".*/console/signin$"))
    page.goto(store.url + "/console/items?q=staking")
    assert "/console/signin?next=/console/items%3Fq%3Dstaking" in page.url
    page.fill("#api_key", READER)  # signing in again goes back to the search asked for
    page.click("form button[type=submit]")
    page.wait_for_url(store.url + "/console/items?q=staking")
    assert page.locator("#results tr").count() > 2
    context.close()


def test_bad_input_gets_a_clear_4xx(browser, store: Store) -> None:
    context, page = sign_in(browser, store, ADMIN)
    ask = context.request
    missing_user = ask.get(store.url + "/console/users/nobody-here")
    assert missing_user.status == 404 and "There is no user “nobody-here”" in missing_user.text()
    missing_item = ask.get(store.url + "/console/items/no-such-item")
    assert missing_item.status == 404 and "There is no item" in missing_item.text()
    assert ask.get(store.url + "/console/users/nobody-here/preview").status == 404
    assert ask.get(store.url + "/console/users/" + "x" * 300).status == 422
    token = page.locator("header form input[name=csrf]").input_value()
    for value, said in (("abc", "not a number"), ("7", "less than or equal to 1")):
        refused = ask.post(
            store.url + "/console/users/31/controls", form={"csrf": token, "diversity": value}
        )
        assert refused.status == 422 and said in refused.text(), refused.text()
    away = ask.get(
        store.url + "/console/language/zh?next=https://elsewhere.example/", max_redirects=0
    )
    assert away.status == 303 and away.headers["location"] == "/console/"
    context.close()


def test_odd_stored_rows_do_not_take_a_page_down(browser, store: Store) -> None:
    """Rows written behind the API's back: tags that are not a list, a segment group whose
    attributes are not an object."""
    with sqlite3.connect(store.folder / "agora-data" / "agora.db") as db:
        db.execute(
            "insert into items (external_id, title, body, tags, created, media, attributes)"
            " values ('odd-1', 'An oddly stored post', '', '{\"not\": \"a list\"}',"
            " '2021-11-01 00:00:00.000000', '{}', '{}')"
        )
        db.execute(
            "insert into groups (external_id, name, created, attributes)"
            " values ('segment:9', 'odd', '2021-11-01 00:00:00.000000', '[1, 2]')"
        )
        db.execute(
            "insert into memberships (group_id, user_id, role, created) select g.id, u.id,"
            " 'member', '2021-11-01 00:00:00.000000' from groups g, users u"
            " where g.external_id = 'segment:9' and u.external_id = '17'"
        )
    context, page = sign_in(browser, store, ADMIN)
    page.goto(store.url + "/console/items?q=odd-1")
    assert "An oddly stored post" in page.locator("#results").inner_text()
    answer = page.goto(store.url + "/console/items/odd-1")
    assert answer.status == 200 and "An oddly stored post" in page.locator("h1").inner_text()
    answer = page.goto(store.url + "/console/users/17")
    assert answer.status == 200 and "segment:9" in page.locator("main").inner_text()
    context.close()
