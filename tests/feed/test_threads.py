"""On the bundled Cardano community: one item per question thread per page and never the
user's own posts, in feeds, recommendations and the CLI."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from agora.api.app import create_app
from agora.cli.main import app as cli
from agora.config import get_settings
from agora.ingest.stackexchange import load_stackexchange

HEADERS = {"Authorization": "Bearer cardano-admin"}
#: The most prolific askers and answerers of the dump: their own posts are likely candidates.
AUTHORS = ("28", "1130", "4023")


@pytest.fixture(scope="module")
def threads(bundled_dump_path: Path) -> dict[str, tuple[str, str]]:
    """Item id -> (its question thread, its author), from the dump itself."""
    items = load_stackexchange(bundled_dump_path).dataset.items
    return {i.item_id: (i.attributes["parent_id"] or i.item_id, i.author_id) for i in items}


@pytest.fixture(scope="module")
def bundled_dump_path() -> Path:
    return Path(__file__).resolve().parents[2] / "data" / "cardano-se"


@pytest.fixture
def cardano(
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    community_store: Callable[[str], str],
) -> Iterator[TestClient]:
    """The bundled dump (a copy of the run's import of it) trained through the CLI, served by
    the app."""
    monkeypatch.setenv("AGORA_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("AGORA_DATABASE_URL", community_store(database_url))
    monkeypatch.setenv("AGORA_API_KEY", "cardano-admin")
    monkeypatch.setenv("AGORA_MODELS", '["trending", "itemknn", "ease"]')
    get_settings.cache_clear()
    result = CliRunner().invoke(cli, ["train", "--no-validate"])
    assert result.exit_code == 0, result.output
    with TestClient(create_app(get_settings())) as client:
        yield client
    get_settings.cache_clear()


def assert_one_per_thread_none_own(
    user: str, ids: list[str], threads: dict[str, tuple[str, str]]
) -> None:
    assert ids
    per_thread = Counter(threads[i][0] for i in ids)
    assert max(per_thread.values()) == 1, {t: c for t, c in per_thread.items() if c > 1}
    assert not [i for i in ids if threads[i][1] == user]


def test_recommendations_feeds_and_cli_show_one_item_per_thread_and_no_own_posts(
    cardano: TestClient, threads: dict[str, tuple[str, str]]
) -> None:
    for user in AUTHORS:
        for model in ("ease", "itemknn"):
            answer = cardano.get(
                f"/users/{user}/recommendations", params={"n": 40, "model": model}, headers=HEADERS
            )
            assert answer.status_code == 200, answer.text
            ids = [i["item_id"] for i in answer.json()["items"]]
            assert len(ids) == 40
            assert_one_per_thread_none_own(user, ids, threads)
        cursor = None
        for _ in range(4):
            params = {"n": 15, **({"cursor": cursor} if cursor else {})}
            answer = cardano.get(f"/users/{user}/feed", params=params, headers=HEADERS)
            assert answer.status_code == 200, answer.text
            body = answer.json()
            assert_one_per_thread_none_own(user, [i["item_id"] for i in body["items"]], threads)
            cursor = body["next_cursor"]
    result = CliRunner().invoke(cli, ["recommend", "1130", "--n", "30", "--model", "ease"])
    assert result.exit_code == 0, result.output
    printed = [
        cells[2].strip()
        for line in result.output.splitlines()
        if len(cells := line.split("│")) > 3 and cells[2].strip() in threads
    ]
    assert len(printed) == 30
    assert_one_per_thread_none_own("1130", printed, threads)


def test_the_thread_limit_is_a_setting(
    cardano: TestClient, threads: dict[str, tuple[str, str]]
) -> None:
    cardano.app.state.settings.feed.max_per_thread = 0  # no limit: the model's raw order
    answer = cardano.get(
        "/users/1130/recommendations", params={"n": 40, "model": "ease"}, headers=HEADERS
    )
    per_thread = Counter(threads[i["item_id"]][0] for i in answer.json()["items"])
    assert max(per_thread.values()) > 1  # the dump has answers of one question side by side
