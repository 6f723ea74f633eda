"""agora.client's HTTP clients against a real `agora serve`: every route has a method, answers
come back as the API gives them, errors say where the problem is, 429 and 503 are retried
after Retry-After."""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import json
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agora.api.app import create_app
from agora.client import (
    AgoraClient,
    AsyncAgoraClient,
    Forbidden,
    InvalidRequest,
    NotFound,
    RateLimited,
    Unauthorized,
    Unavailable,
)
from agora.client.operations import Operations
from agora.config import Settings

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from live_server import kill_server, start_server  # noqa: E402

ADMIN, READER, SLOW = "client-admin", "client-reader", "client-slow-reader"
SERVE = [sys.executable, "-m", "agora.cli.main", "serve"]


def _fingerprint(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:8]


class _Recorder(Operations[tuple[str, str]]):
    def _request(self, method: str, template: str, *args: Any, **kwargs: Any) -> tuple[str, str]:
        return method, template


def _placeholder(parameter: inspect.Parameter) -> Any:
    text = str(parameter.annotation)
    if "Mapping" in text or "Body" in text:
        return {}
    if "Sequence" in text:
        return []
    return 1 if "int" in text or "float" in text else "x"


def test_every_route_of_the_api_has_a_client_method() -> None:
    recorder, called = _Recorder(), set()
    for name, method in inspect.getmembers(Operations, inspect.isfunction):
        if name.startswith("_"):
            continue
        required = [
            p
            for p in list(inspect.signature(method).parameters.values())[1:]
            if p.default is inspect.Parameter.empty and p.kind is p.POSITIONAL_OR_KEYWORD
        ]
        called.add(getattr(recorder, name)(*[_placeholder(p) for p in required]))
    app = create_app(Settings(data_dir=Path(tempfile.mkdtemp()), api_key="x"))
    served = {
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        for method in operations
        if method in ("get", "post", "put", "patch", "delete")
    }
    assert served - called == set()  # every route has a method
    assert called - served == set()  # and every method a route


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    folder = Path(tempfile.mkdtemp(prefix="agora-client-"))
    limits = {"keys": {_fingerprint(SLOW): {"read": {"rate": 2, "burst": 1}}}}
    env = {
        "AGORA_DATA_DIR": str(folder / "data"),
        "AGORA_API_KEY": ADMIN,
        "AGORA_API_KEYS": json.dumps({READER: ["read"], SLOW: ["read"]}),
        "AGORA_LIMITS": json.dumps(limits),
    }
    live = start_server(SERVE, env, folder)
    try:
        yield live.base_url
    finally:
        kill_server(live)


def _seed(agora: AgoraClient) -> None:
    for user in ("ann", "bob"):
        agora.put_user(user, {})
    for n in range(6):
        agora.put_item(f"p{n}", {"title": f"Post {n}", "author_id": "bob", "tags": ["garden"]})
    events = [
        {"event_id": f"ann-p{n}", "user_id": "ann", "item_id": f"p{n}", "type": "like"}
        for n in range(3)
    ]
    assert agora.add_events(events)["accepted"] == 3


def test_a_platform_integration_in_a_few_calls(server: str) -> None:
    with AgoraClient(server, api_key=ADMIN) as agora:
        _seed(agora)
        assert agora.get_user("ann")["user_id"] == "ann"
        again = agora.add_events(
            [{"event_id": "ann-p0", "user_id": "ann", "item_id": "p0", "type": "like"}]
        )
        assert again == {"accepted": 0, "duplicates": 1}
        pages = list(agora.feed_pages("ann", n=2, pages=2))
        assert [p["page"] for p in pages] == [1, 2]
        shown = [i["item_id"] for p in pages for i in p["items"]]
        assert shown and len(shown) == len(set(shown))  # a session never repeats an item
        changed = agora.update_feed_settings("ann", diversity=0.6, muted_tags=["cars"])
        assert changed["diversity"] == 0.6 and changed["muted_tags"] == ["cars"]
        assert agora.feed_settings("ann")["muted_tags"] == ["cars"]
        assert agora.health()["status"] == "ok"
        assert b"agora_" in agora.metrics()
        assert agora.delete_item("p5") == b""
        with pytest.raises(NotFound):
            agora.get_item("p5")


def test_errors_say_what_went_wrong_and_where(server: str) -> None:
    with AgoraClient(server, api_key=ADMIN, retries=0) as agora:
        with pytest.raises(NotFound) as missing:
            agora.get_user("nobody-here")
        assert missing.value.status == 404 and "nobody-here" in missing.value.detail
        bad = [
            {"event_id": "ok-1", "user_id": "ann", "item_id": "p1", "type": "like"},
            {
                "event_id": "bad-1",
                "user_id": "ann",
                "item_id": "p1",
                "type": "like",
                "timestamp": "soon",
            },
        ]
        with pytest.raises(InvalidRequest) as invalid:
            agora.add_events(bad)
        assert invalid.value.status == 422
        assert [p.location for p in invalid.value.problems] == ["body.1.timestamp"]
        assert "body.1.timestamp" in str(invalid.value)
        with pytest.raises(Unavailable) as untrained:  # no model trained on this store
            agora.recommendations("ann")
        assert untrained.value.status == 503 and "agora train" in untrained.value.detail
    with AgoraClient(server, api_key=READER) as reader, pytest.raises(Forbidden):
        reader.add_events([{"event_id": "r-1", "user_id": "ann", "item_id": "p1", "type": "like"}])
    with AgoraClient(server, api_key="not-a-key") as stranger, pytest.raises(Unauthorized):
        stranger.feed("ann")


def test_429_and_503_are_retried_after_retry_after(server: str) -> None:
    with AgoraClient(server, api_key=SLOW, retries=0) as hasty:
        hasty.feed_settings("ann")
        with pytest.raises(RateLimited) as limited:
            hasty.feed_settings("ann")
        assert limited.value.status == 429
    time.sleep(1.0)  # the bucket refills
    with AgoraClient(server, api_key=SLOW, retries=2) as patient:
        patient.feed_settings("ann")
        t0 = time.monotonic()
        assert patient.feed_settings("ann")["diversity"] >= 0  # answered after its wait
        assert time.monotonic() - t0 >= 0.9  # Retry-After: 1 (whole seconds)
    with AgoraClient(server, api_key=ADMIN, retries=2, max_wait=0.2) as agora:
        t0 = time.monotonic()
        with pytest.raises(Unavailable):  # 503 with Retry-After 60, each wait capped at 0.2 s
            agora.recommendations("ann")
        assert 0.4 <= time.monotonic() - t0 < 10


def test_the_async_client_answers_the_same(server: str) -> None:
    async def run() -> tuple[dict, list[dict], str]:
        async with AsyncAgoraClient(server, api_key=ADMIN) as agora:
            user = await agora.get_user("bob")
            pages = [page async for page in agora.feed_pages("ann", n=2, pages=2)]
            try:
                await agora.get_item("never-stored")
            except NotFound as exc:
                missing = exc.detail
            return user, pages, missing

    user, pages, missing = asyncio.run(run())
    assert user["user_id"] == "bob"
    assert [p["page"] for p in pages] == [1, 2]
    assert "never-stored" in missing


def test_the_integration_in_the_docs_runs_as_written(server: str) -> None:
    """docs/python-client.md's example, run against a real server (its URL and key swapped)."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "python-client.md").read_text()
    code = text.split("```python\n", 1)[1].split("```", 1)[0]
    code = code.replace("http://127.0.0.1:8000", server).replace("platform-write-key", ADMIN)
    scope: dict[str, Any] = {}
    exec(compile(code, "docs/python-client.md", "exec"), scope)
    agora = scope["agora"]
    assert agora.feed_settings("u42")["muted_tags"] == ["politics"]
    assert {"source_id": "u42", "target_id": "u7", "type": "follow"}.items() <= agora.user_edges(
        "u42"
    )[0].items()
    assert scope["page"]["user_id"] == "u42"
    agora.close()
