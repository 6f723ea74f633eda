"""A real `agora serve` per database (SQLite, PostgreSQL), seeded through the Gorse API and
trained with `agora train`, shared by the tests of both client modules for the whole run (their
ids do not overlap): Gorse's own clients run against it (the seeded community is described in
``gorse_support``)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator

import httpx
import pytest
from gorse_support import ADMIN, AGORA, READER, WRITER, GorseServer, seed
from live_server import kill_server, start_server


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def gorse_server(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    postgres_schemas: Callable[..., contextlib.AbstractContextManager[str]],
    agora_here: Callable,
) -> Iterator[GorseServer]:
    folder = tmp_path_factory.mktemp(f"gorse-{request.param}")
    env = {
        "AGORA_DATA_DIR": str(folder / "data"),
        "AGORA_API_KEY": ADMIN,
        "AGORA_API_KEYS": json.dumps({WRITER: ["write"], READER: ["read"]}),
        "AGORA_ERASURE_RETRAIN_SECONDS": "0",  # no refit of the models while the tests read
    }
    with contextlib.ExitStack() as stack:
        if request.param == "postgres":
            env["AGORA_DATABASE_URL"] = stack.enter_context(postgres_schemas())
        server = start_server([*AGORA, "serve"], env, folder)
        stack.callback(kill_server, server)
        seed(server.base_url)
        agora_here(["train", "--models", "trending,itemknn", "--no-validate"], env)
        reloaded = httpx.post(
            f"{server.base_url}/admin/reload", headers={"Authorization": f"Bearer {ADMIN}"}
        )
        assert set(reloaded.json()["models"]) == {"trending", "itemknn"}, reloaded.text
        yield GorseServer(server.base_url, folder, request.param, server.log)
