"""The console's Models and Moderation pages in a real Chromium against the served demo store:
versions with their metrics from meta.json, a training run started from the page (progress
live, a second start refused, its log kept, the new versions served and sasrec's curve
drawn), the review queue with classifier scores, an upheld flag leaving a member's feed
preview, and read and write keys refused by the server for every action."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from console_support import ADMIN, READER, WRITER, Store, charts_drawn, screenshot, sign_in

#: Who flags the previewed item (distinct members raise the case's priority).
FLAGGERS = ("5", "31", "40", "41")
#: The member whose feed preview loses the upheld item.
MEMBER = "17"


def _data(store: Store) -> Path:
    return store.folder / "agora-data"


def _metas(store: Store) -> dict[tuple[str, str], dict]:
    """Every model version's meta.json on disk, by (model, version)."""
    return {
        (p.parent.parent.name, p.parent.name): json.loads(p.read_text())
        for p in (_data(store) / "models").glob("*/*/meta.json")
    }


@pytest.fixture(scope="module")
def scanned(store: Store, agora_here: Callable) -> Store:
    """The store with the moderation classifier trained on its imported evidence and part of
    its posts scanned, as an operator would (``agora moderation train`` and ``scan``)."""
    env = {"AGORA_DATA_DIR": str(_data(store))}
    agora_here(["moderation", "train"], env)
    agora_here(["moderation", "scan", "--limit", "400"], env)
    return store


def _csrf(page) -> str:
    return page.locator("header form input[name=csrf]").input_value()


def test_models_page_shows_versions_and_a_training_run_finishes_live(browser, store: Store) -> None:
    context, page = sign_in(browser, store, ADMIN)
    page.goto(store.url + "/console/models")
    metas = _metas(store)
    for (name, version), meta in metas.items():
        row = page.locator(f"#versions tr[data-model='{name}'][data-version='{version}']")
        ndcg = meta["metrics"].get("holdout_ndcg@10")
        if ndcg is not None:
            assert f"{ndcg:.4f}" in row.inner_text(), (name, version)
    assert charts_drawn(page) == [True]  # holdout NDCG@10 per version
    assert "itemknn" in page.locator("#history-chart").inner_text()
    assert page.locator(".curve-chart").count() == 0  # the demo's models fit in one pass
    # start a run of three models: progress shows live, a second start is refused meanwhile
    for name in ("trending", "itemknn", "sasrec"):
        page.check(f"input[name='model.{name}']")
    page.click("#start-run")
    page.locator("#run[data-state=running]").wait_for()
    page.click("#start-run")
    flash = page.locator("#flash")
    flash.wait_for(state="visible")
    assert "409" in flash.inner_text() and "already going on" in flash.inner_text()
    page.locator("#run[data-state=done]").wait_for(timeout=120_000)
    assert page.locator("#run-progress").get_attribute("value") == "3"
    assert "3 of 3 models done" in page.locator("#run").inner_text()
    log = page.locator("#run-log").text_content()
    assert "served models reloaded" in log and "finished in" in log, log
    # the new versions are served and listed with their metrics; sasrec's curve is drawn
    served = store.api("GET", "/models").json()
    page.locator("#curve-sasrec[data-drawn=true]").wait_for()
    for name in ("trending", "itemknn", "sasrec"):
        version = served[name]["version"]
        assert f"{name} {version}" in page.locator("#run-versions").inner_text()
        row = page.locator(f"#versions tr[data-model='{name}'][data-version='{version}']")
        assert "served" in row.inner_text()
    fresh = served["itemknn"]["version"]
    ndcg = _metas(store)[("itemknn", fresh)]["metrics"]["holdout_ndcg@10"]
    row = page.locator(f"#versions tr[data-model='itemknn'][data-version='{fresh}']")
    assert f"{ndcg:.4f}" in row.inner_text()
    assert charts_drawn(page) == [True, True]  # the history and sasrec's training curve
    curve = page.locator("#curve-sasrec").inner_text()
    assert "Training loss" in curve and "Epoch" in curve
    screenshot(page, "models")
    # the log stays readable on the run's own page
    page.click("#run a[href^='/console/models/runs/']")
    page.wait_for_url(re.compile(r".*/console/models/runs/\d{8}T\d{6}Z-[0-9a-f]{6}$"))
    assert "finished in" in page.locator("#run-log").text_content()
    assert page.locator("#run").get_attribute("data-state") == "done"
    screenshot(page, "training-run")
    assert (
        page.request.get(store.url + "/console/models/runs/20990101T000000Z-abcdef").status == 404
    )
    context.close()


def test_an_upheld_flag_leaves_the_feed_preview(browser, scanned: Store) -> None:
    store = scanned
    context, page = sign_in(browser, store, ADMIN)
    page.goto(store.url + f"/console/users/{MEMBER}")
    previewed = page.locator("#preview-items li")
    previewed.first.wait_for()
    item = previewed.first.get_attribute("data-item")
    for flagger in FLAGGERS:
        flagged = store.api(
            "POST", f"/items/{item}/flags", key=WRITER, json={"user_id": flagger, "reason": "spam"}
        )
        assert flagged.status_code == 201, flagged.text
    case_id = flagged.json()["case_id"]
    queue = store.api("GET", "/moderation/queue?limit=500").json()
    page.goto(store.url + "/console/moderation")
    assert page.locator("[data-testid=cases-open] .value").inner_text() == f"{len(queue):,}"
    scores = [c["score"] for c in queue if c["score"] is not None]
    assert scores, "the scan queued scored items"
    shown = page.locator("#queue td.score").all_inner_texts()
    assert any(re.fullmatch(r"0\.\d{3}", s) for s in shown), shown  # classifier scores
    assert charts_drawn(page) == [True]  # open cases by classifier score
    row = page.locator(f"#case-{case_id}")
    assert f"spam {len(FLAGGERS)}" in row.inner_text()
    screenshot(page, "moderation")
    row.locator("button.uphold").click()
    page.locator(f"#case-{case_id} .decided").wait_for()
    assert "Upheld" in page.locator(f"#case-{case_id}").inner_text()
    decided = store.api("GET", f"/moderation/items/{item}").json()
    assert decided["status"] == "removed"
    route = "/console/moderation/cases/{case_id}/decision"
    audited = store.api("GET", "/admin/audit", params={"route": route}).json()["entries"]
    assert [(a["status"], a["path_params"]) for a in audited] == [
        (200, {"case_id": str(case_id)})
    ]  # recorded like every admin action
    # the member's preview no longer holds it (the feed's catalogue rereads take-downs each
    # second)
    page.wait_for_timeout(1200)
    page.goto(store.url + f"/console/users/{MEMBER}")
    page.locator("#preview-items li").first.wait_for()
    kept = page.locator("#preview-items li").evaluate_all("els => els.map(e => e.dataset.item)")
    assert item not in kept and len(kept) == 10
    page.goto(store.url + f"/console/moderation?item={item}&queue=upheld")
    assert page.locator("#item-status").inner_text() == "Removed"
    assert page.locator(f"#case-{case_id}").count() == 1  # in the upheld tab
    context.close()


def test_chinese_models_and_moderation_pages(browser, scanned: Store) -> None:
    context, page = sign_in(browser, scanned, ADMIN, lang="zh")
    page.goto(scanned.url + "/console/moderation")
    assert "审核队列" in page.locator("main").inner_text()
    assert "确认违规" in page.locator("#queue").inner_text()
    assert "分类器得分" in page.locator("#bands-chart").inner_text()
    charts_drawn(page)
    screenshot(page, "moderation-zh")
    page.goto(scanned.url + "/console/models")
    assert "训练模型" in page.locator("main").inner_text()
    assert "留出集 NDCG@10" in page.locator("#history-chart").inner_text()
    charts_drawn(page)
    screenshot(page, "models-zh")
    context.close()


@pytest.mark.parametrize("key", [READER, WRITER])
def test_read_and_write_keys_see_no_action_and_the_server_refuses_them(
    browser, scanned: Store, key: str
) -> None:
    store = scanned
    open_case = store.api("GET", "/moderation/queue?limit=1").json()[0]
    context, page = sign_in(browser, store, key)
    page.goto(store.url + "/console/moderation")
    assert page.locator("#queue").count() == 0 and page.locator("button.uphold").count() == 0
    assert "for admin keys" in page.locator("main").inner_text()
    assert charts_drawn(page) == [True]  # counts and bands are for every key
    page.goto(store.url + "/console/models")
    assert page.locator("#train-form").count() == 0
    assert "admin key" in page.locator("main").inner_text()
    token = _csrf(page)
    runs_before = sorted((_data(store) / "training-runs").glob("*.json"))
    for path, form in (
        (f"/console/moderation/cases/{open_case['case_id']}/decision", {"outcome": "uphold"}),
        ("/console/models/train", {"model.trending": "on"}),
    ):
        refused = page.request.post(
            store.url + path, form={"csrf": token, **form}, headers={"HX-Request": "true"}
        )
        assert refused.status == 403, (path, refused.status)
    assert store.api("GET", f"/moderation/items/{open_case['item_id']}").json()["status"] in (
        "in_review",
    )
    assert sorted((_data(store) / "training-runs").glob("*.json")) == runs_before
    context.close()


def test_bad_actions_get_a_clear_4xx(browser, scanned: Store) -> None:
    store = scanned
    context, page = sign_in(browser, store, ADMIN)
    page.goto(store.url + "/console/models")
    token, ask = _csrf(page), context.request
    cases = store.api("GET", "/moderation/queue?limit=2").json()
    decide = f"/console/moderation/cases/{cases[0]['case_id']}/decision"
    for path, form, status, said in (
        ("/console/models/train", {}, 422, "choose at least one model"),
        ("/console/models/train", {"model.nosuchmodel": "on"}, 422, "unknown models"),
        (decide, {"outcome": "maybe"}, 422, "outcome must be one of"),
        ("/console/moderation/cases/999999999/decision", {"outcome": "reject"}, 404, "not found"),
    ):
        answer = ask.post(store.url + path, form={"csrf": token, **form})
        assert answer.status == status and said in answer.text(), (path, answer.text())
    assert ask.post(store.url + decide, form={"csrf": token, "outcome": "reject"}).ok
    opposite = ask.post(store.url + decide, form={"csrf": token, "outcome": "uphold"})
    assert opposite.status == 409 and "already decided" in opposite.text()
    assert ask.post(store.url + decide, form={"outcome": "reject"}).status == 403  # no CSRF
    assert ask.get(store.url + "/console/moderation?queue=closed").status == 422
    page.goto(store.url + "/console/moderation?item=no-such-item")
    assert (
        page.locator("#item-moderation").inner_text()
        == "There is no item “no-such-item” in the store."
    )
    context.close()
