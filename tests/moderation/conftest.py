"""Moderation fixtures: real Stack Exchange posts, a real trained classifier, the real app."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from agora.api.app import create_app
from agora.config import Settings
from agora.ingest.schemas import ItemIn
from agora.ingest.stackexchange import load_stackexchange
from agora.moderation.classifier import Post, QualityClassifier, label_from_attributes
from agora.moderation.views import router

HERE = Path(__file__).parent
REPO = HERE.parents[1]
ADMIN = {"Authorization": "Bearer test-admin"}
READ = {"Authorization": "Bearer r"}
WRITE = {"Authorization": "Bearer w"}


@dataclass
class Sample:
    """Real posts (score >= 2 and not closed: clearly fine) and hand-written spam (English and
    Chinese)."""

    ok: list[ItemIn]
    spam: list[ItemIn]


def as_post(item: ItemIn) -> Post:
    return Post(item.title, item.body, item.attributes.get("post_type"))


@pytest.fixture(scope="session")
def sample() -> Sample:
    dataset = load_stackexchange(REPO / "data" / "cardano-se").dataset
    ok = [
        i
        for i in dataset.items
        if i.attributes["score"] >= 2 and i.body and label_from_attributes(i.attributes) == 0
    ][:160]
    spam = [
        ItemIn(item_id=f"spam{n}", author_id=f"spammer{n % 4}", **json.loads(line))
        for n, line in enumerate((HERE / "spam_posts.jsonl").read_text().splitlines())
    ]
    return Sample(ok, spam)


@pytest.fixture(scope="session")
def trained_root(sample: Sample, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A classifier fitted on 120 real posts and the first 16 spam posts, saved once."""
    root = tmp_path_factory.mktemp("moderation-model")
    posts = [as_post(i) for i in sample.ok[:120] + sample.spam[:16]]
    labels = [0] * 120 + [1] * 16
    QualityClassifier().fit(posts, labels).save(root, labels={"low_quality": 16, "ok": 120})
    return root


def make_settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        api_key="test-admin",
        api_keys={"r": ["read"], "w": ["write"]},
    )


@pytest.fixture
def client(tmp_path: Path, database_url: str) -> Iterator[TestClient]:
    """The real app with the moderation router, on SQLite and on PostgreSQL; no classifier."""
    app = create_app(make_settings(tmp_path, database_url))
    app.include_router(router)
    with TestClient(app) as test_client:
        yield test_client


def install_classifier(client: TestClient, trained_root: Path) -> None:
    """Copy the trained classifier into the app's data directory."""
    data_dir = client.app.state.settings.data_dir
    shutil.copytree(trained_root / "moderation", data_dir / "moderation", dirs_exist_ok=True)


def put_item(client: TestClient, item: ItemIn) -> None:
    body = item.model_dump(mode="json", exclude={"item_id"})
    answer = client.put(f"/items/{item.item_id}", json=body, headers=ADMIN)
    assert answer.status_code in (200, 201), answer.text
