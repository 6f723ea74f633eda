"""Helpers shared by the moderation tests (imported by name: pytest puts this folder on
sys.path): real Stack Exchange posts beside hand-written spam, keys, item upload."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from fastapi.testclient import TestClient

from agora.config import Settings
from agora.ingest.schemas import ItemIn
from agora.ingest.stackexchange import load_stackexchange
from agora.moderation.classifier import Post, label_from_attributes

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


def load_sample() -> Sample:
    """160 fine posts of the bundled Cardano dump and the 24 spam posts of spam_posts.jsonl."""
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


def as_post(item: ItemIn) -> Post:
    return Post(item.title, item.body, item.attributes.get("post_type"))


def make_settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        api_key="test-admin",
        api_keys={"r": ["read"], "w": ["write"]},
    )


def install_classifier(client: TestClient, trained_root: Path) -> None:
    """Copy the trained classifier into the app's data directory."""
    data_dir = client.app.state.settings.data_dir
    shutil.copytree(trained_root / "moderation", data_dir / "moderation", dirs_exist_ok=True)


def put_item(client: TestClient, item: ItemIn) -> None:
    body = item.model_dump(mode="json", exclude={"item_id"})
    answer = client.put(f"/items/{item.item_id}", json=body, headers=ADMIN)
    assert answer.status_code in (200, 201), answer.text
