"""gorsejs 0.4.8, Gorse's own TypeScript client (from the npm registry), against a real
`agora serve`: every method of its ``Gorse`` class, called by ``gorsejs_surface.js`` under
Node, with what a platform's code receives, errors included (a ``GorseException`` with
Gorse's status and text).

The package is installed once into ``.cache/gorsejs-0.4.8`` at the repository's root (kept
between runs), with the ``tslib`` its build needs but does not declare. Without node or npm
the test is skipped, and fails under ``CI=true``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from gorse_support import ADMIN, CLUSTER_A, CLUSTER_B, HIDDEN, GorseServer

VERSION = "0.4.8"
#: gorsejs's build imports tslib's helpers without declaring tslib a dependency (a TypeScript
#: project has it anyway); installed with it, at the version its compiler emits for.
TSLIB = "tslib@2.8.1"
HERE = Path(__file__).resolve().parent
CACHE = HERE.parents[1] / ".cache" / f"gorsejs-{VERSION}"


def _missing(what: str) -> None:
    message = f"{what}: the gorsejs tests need Node and npm"
    if os.environ.get("CI") == "true":
        pytest.fail(message + " (CI=true: a missing client is a failure)")
    pytest.skip(message)


@pytest.fixture(scope="session")
def gorsejs() -> Path:
    """The node_modules folder holding gorsejs (installed from npm on first use)."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        _missing("node or npm is not on PATH")
    installed = CACHE / "node_modules" / "gorsejs" / "package.json"
    helpers = CACHE / "node_modules" / "tslib" / "package.json"
    current = installed.exists() and json.loads(installed.read_text())["version"] == VERSION
    if not (current and helpers.exists()):
        CACHE.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            ["npm", "install", "--prefix", str(CACHE), "--no-audit", "--no-fund",
             f"gorsejs@{VERSION}", TSLIB],
            capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        if done.returncode != 0:
            _missing(f"npm install gorsejs@{VERSION} failed: {done.stderr[-2000:]}")
    return CACHE / "node_modules"


@pytest.fixture(scope="module")
def report(gorsejs: Path, gorse_server: GorseServer) -> dict[str, Any]:
    done = subprocess.run(
        ["node", str(HERE / "gorsejs_surface.js"), gorse_server.url, ADMIN],
        env=os.environ | {"NODE_PATH": str(gorsejs)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def ok(report: dict[str, Any], step: str) -> Any:
    answer = report["steps"][step]
    assert "ok" in answer, (step, answer)
    return answer["ok"]


def error(report: dict[str, Any], step: str) -> tuple[int, str]:
    answer = report["steps"][step]
    assert "error" in answer, (step, answer)
    return answer["error"]["code"], answer["error"]["message"]


def test_every_method_of_the_client_is_called(report: dict[str, Any]) -> None:
    assert sorted(report["called"]) == sorted(report["methods"])
    assert len(report["methods"]) == 29
    assert not [step for step, answer in report["steps"].items() if "crash" in answer]


def test_users(report: dict[str, Any]) -> None:
    assert ok(report, "insertUser") == 1
    # the same user gorsejs's own test expects from a Gorse server
    assert ok(report, "getUser") == {
        "UserId": "js-user",
        "Labels": ["a", "b", "c"],
        "Subscribe": None,
        "Comment": "comment",
    }
    assert ok(report, "updateUser") == 1
    assert ok(report, "getUser after updateUser")["Comment"] == "new"
    assert ok(report, "getUser after updateUser")["Labels"] == ["a", "b", "c"]
    assert ok(report, "insertUsers") == 2
    first, second = ok(report, "getUsers"), ok(report, "getUsers next page")
    assert len(first["Users"]) == 2 and first["Cursor"]
    # gorsejs sends its cursor as `Cursor`: the next page, not the first again
    assert not {u["UserId"] for u in first["Users"]} & {u["UserId"] for u in second["Users"]}
    assert [n["Id"] for n in ok(report, "getUserNeighbors")] == ["u1", "u2"]
    assert ok(report, "deleteUser") == 1
    assert error(report, "getUser after deleteUser") == (404, "js-u3: user not found")


def test_items(report: dict[str, Any]) -> None:
    assert ok(report, "upsertItem") == 1
    # the same item gorsejs's own test expects from a Gorse server
    assert ok(report, "getItem") == {
        "ItemId": "js-item",
        "IsHidden": True,
        "Labels": ["a", "b", "c"],
        "Categories": ["d", "e"],
        "Timestamp": "2022-08-07T00:26:46Z",
        "Comment": "comment",
    }
    assert ok(report, "updateItem") == 1
    assert ok(report, "insertItemCategory") == 1
    assert ok(report, "deleteItemCategory") == 1
    changed = ok(report, "getItem after changes")
    assert (changed["IsHidden"], changed["Categories"], changed["Comment"]) == (
        False,
        ["e", "f"],
        "new",
    )
    assert ok(report, "upsertItems") == 2
    page = ok(report, "getItems")
    assert [i["ItemId"] for i in page["Items"]] == CLUSTER_A[:3] and page["Cursor"]
    neighbors = [n["Id"] for n in ok(report, "getItemNeighbors")]
    assert neighbors[0] == "i1" and set(neighbors) <= set(CLUSTER_A) - {"i0", HIDDEN}
    in_b = [n["Id"] for n in ok(report, "getItemNeighbors in a category")]
    assert in_b and set(in_b) <= set(CLUSTER_B) - {"i6"}
    assert ok(report, "deleteItem") == 1
    assert error(report, "getItem after deleteItem") == (404, "js-item: item not found")


def test_feedback(report: dict[str, Any]) -> None:
    assert ok(report, "insertFeedbacks") == 3
    assert ok(report, "upsertFeedbacks") == 1
    assert ok(report, "getFeedback") == {
        "FeedbackType": "like",
        "UserId": "js-user",
        "ItemId": "i0",
        "Value": 0.0,
        "Timestamp": "2023-01-01T00:00:00Z",  # PUT overwrote the first insert's time
        "Comment": "",
    }
    page = ok(report, "getFeedbacks")
    assert len(page["Feedback"]) == 2 and page["Cursor"]
    assert {f["FeedbackType"] for f in ok(report, "getFeedbacks of a type")["Feedback"]} == {"read"}
    on_i7 = {(f["FeedbackType"], f["UserId"]) for f in ok(report, "getItemFeedback")}
    assert on_i7 == {("star", "u3"), ("star", "u4"), ("star", "u5"), ("read", "js-user")}
    assert [f["ItemId"] for f in ok(report, "getItemFeedbackByType")] == ["i6"]
    assert sorted(f["ItemId"] for f in ok(report, "getUserFeedback")) == ["i0", "i6", "i7"]
    assert sorted(f["ItemId"] for f in ok(report, "getUserFeedbackByType")) == ["i6", "i7"]
    assert ok(report, "deleteFeedback") == {"RowAffected": 1}
    after = ok(report, "getUserFeedbackByType after deleteFeedback")
    assert [f["ItemId"] for f in after] == ["i6"]


def test_recommendations(report: dict[str, Any]) -> None:
    recommended = ok(report, "getRecommend")
    assert sorted(recommended) == ["i2", "i3", "i4"]  # plain ids, as Gorse answers gorsejs
    assert sorted(ok(report, "getRecommend in a category")) == ["i2", "i3", "i4"]
    written_back = ok(report, "getRecommend with write-back")
    assert len(written_back) == 1
    read = ok(report, "getUserFeedbackByType after write-back")
    assert [f["ItemId"] for f in read] == written_back
    session = ok(report, "getSessionRecommend")
    assert len(session) == 3 and {s["Id"] for s in session} <= set(CLUSTER_B) - {"i6"}
    popular = [p["Id"] for p in ok(report, "getPopular")]
    assert len(popular) == 3 and HIDDEN not in popular
    in_b = [p["Id"] for p in ok(report, "getPopular in a category")]
    assert in_b and set(in_b) <= set(CLUSTER_B)
    latest = ok(report, "getLatest")
    assert [item["Id"] for item in latest] == ["js-new-2", "js-new-1", "i11"]
    assert latest[0]["Score"] == 1735776000.0  # its time, in unix seconds


def test_a_wrong_key_is_unauthorized(report: dict[str, Any]) -> None:
    assert error(report, "wrong key") == (401, "unauthorized")
