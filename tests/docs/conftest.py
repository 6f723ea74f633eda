"""The docs' generators live in docs/ (beside the pages they write), not in the package: load
them by path."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]


def load_docs_module(name: str) -> ModuleType:
    """``docs/<name>.py`` as a module (cached in sys.modules under ``docs_<name>``)."""
    key = f"docs_{name}"
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, REPO / "docs" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[key] = module
        spec.loader.exec_module(module)
    return sys.modules[key]


@pytest.fixture(scope="session")
def gen_tables() -> ModuleType:
    return load_docs_module("gen_tables")


@pytest.fixture(scope="session")
def gen_reference() -> ModuleType:
    return load_docs_module("gen_reference")


@pytest.fixture(scope="session")
def import_layers() -> ModuleType:
    return load_docs_module("import_layers")
