"""Fixtures for the importer tests: real data folders, each real dataset loaded once."""

from __future__ import annotations

from pathlib import Path

import pytest

from agora.ingest.stackexchange import StackExchangeImport, load_stackexchange

REPO = Path(__file__).resolve().parents[2]
SHARED_DATA = REPO.parent / "shared" / "data"
SHARED_BENCHMARKS = REPO.parent / "shared" / "benchmarks"
BUNDLE = REPO / "data" / "cardano-se"


def _folder_or_skip(path: Path) -> Path:
    if not path.is_dir():
        pytest.skip(f"real data not found at {path} (expected ../shared/data next to the repo)")
    return path


@pytest.fixture(scope="session")
def data_root() -> Path:
    """``../shared/data`` relative to the repository root; skipped only when absent."""
    return _folder_or_skip(SHARED_DATA)


@pytest.fixture(scope="session")
def benchmarks_root() -> Path:
    """``../shared/benchmarks`` relative to the repository root; skipped only when absent."""
    return _folder_or_skip(SHARED_BENCHMARKS)


@pytest.fixture(scope="session")
def cardano_bundle() -> Path:
    assert BUNDLE.is_dir(), f"the bundled Cardano dump is missing at {BUNDLE}"
    return BUNDLE


@pytest.fixture(scope="session")
def cardano(cardano_bundle: Path) -> StackExchangeImport:
    """The bundled Cardano Stack Exchange dump, imported once per test session."""
    return load_stackexchange(cardano_bundle)
