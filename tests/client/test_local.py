"""agora.client.Agora: in-process use after a real `agora train` on the bundled community gives
what the API gives, with no wiring by the caller."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from typer.testing import CliRunner

from agora.api.app import create_app
from agora.cli.main import app as cli
from agora.client import Agora
from agora.config import Settings, get_settings
from agora.ingest.service import Rejected
from agora.serving.service import ModelUnavailable

REPO = Path(__file__).resolve().parents[2]
KEY = {"Authorization": "Bearer test-admin"}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The bundled community imported and trained with the real `agora` commands."""
    data = tmp_path_factory.mktemp("client") / "agora-data"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AGORA_DATA_DIR", str(data))
        patch.delenv("AGORA_DATABASE_URL", raising=False)
        get_settings.cache_clear()
        runner = CliRunner()
        imported = runner.invoke(cli, ["import", str(REPO / "data" / "cardano-se")])
        assert imported.exit_code == 0, imported.output
        trained = runner.invoke(cli, ["train", "--models", "trending,itemknn", "--no-validate"])
        assert trained.exit_code == 0, trained.output
        get_settings.cache_clear()
    yield data


def test_recommend_and_similar_match_the_api(data_dir: Path) -> None:
    settings = Settings(data_dir=data_dir, database_url=None, api_key="test-admin")
    with Agora(settings) as agora, TestClient(create_app(settings)) as api:
        recs = agora.recommend("28", n=5)
        assert len(recs) == 5 and {r.model for r in recs} == {"itemknn"}
        answer = api.get("/users/28/recommendations?n=5", headers=KEY).json()
        assert [r.item_id for r in recs] == [i["item_id"] for i in answer["items"]]

        item = recs[0].item_id
        similar = agora.similar(item, n=3)
        answer = api.get(f"/items/{item}/similar?n=3", headers=KEY).json()
        assert [r.item_id for r in similar] == [i["item_id"] for i in answer["items"]]
        assert item not in [r.item_id for r in similar]


def test_feed_pages_and_ingested_events_change_the_next_answer(data_dir: Path) -> None:
    with Agora(data_dir=data_dir, database_url=None) as agora:
        first = agora.feed("28", n=5)
        assert len(first.items) == 5 and first.next_cursor
        second = agora.feed("28", n=5, cursor=first.next_cursor)
        assert second.page == 2
        assert not {i.item_id for i in first.items} & {i.item_id for i in second.items}

        top = agora.recommend("28", n=1)[0].item_id
        summary = agora.ingest(
            [{"event_id": "client-e1", "user_id": "28", "item_id": top, "type": "like"}]
        )
        assert summary.written == {"events": 1}
        assert top not in [r.item_id for r in agora.recommend("28", n=10)]

        with pytest.raises(ValidationError, match="user_id"):
            agora.ingest([{"event_id": "client-e2", "item_id": top, "type": "like"}])
        with pytest.raises(Rejected, match="unknown event type"):
            agora.ingest([{"event_id": "client-e3", "user_id": "28", "item_id": top, "type": "x"}])
        with pytest.raises(ModelUnavailable, match="agora train --models ease"):
            agora.recommend("28", model="ease")
