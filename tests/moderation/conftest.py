"""Moderation fixtures: real Stack Exchange posts, a real trained classifier, the real app."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from moderation_support import Sample, as_post, load_sample, make_settings

from agora.api.app import create_app
from agora.moderation.classifier import QualityClassifier


@pytest.fixture(scope="session")
def sample() -> Sample:
    return load_sample()


@pytest.fixture(scope="session")
def trained_root(sample: Sample, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A classifier fitted on 120 real posts and the first 16 spam posts, saved once."""
    root = tmp_path_factory.mktemp("moderation-model")
    posts = [as_post(i) for i in sample.ok[:120] + sample.spam[:16]]
    labels = [0] * 120 + [1] * 16
    QualityClassifier().fit(posts, labels).save(root, labels={"low_quality": 16, "ok": 120})
    return root


@pytest.fixture
def client(
    tmp_path: Path, database_url: str, migrated_store: Callable[[str], str]
) -> Iterator[TestClient]:
    """The real app (moderation routes included), on SQLite and on PostgreSQL; no classifier.
    The store starts as a copy of the run's migrated store."""
    settings = make_settings(tmp_path, migrated_store(database_url))
    with TestClient(create_app(settings)) as test_client:
        yield test_client
