"""Many requests at once on a real ``agora serve``: read routes that take a session answer
every request, and the route class that makes that so refuses the shapes that would not."""

from __future__ import annotations

import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Annotated

import httpx
import pytest
from api_support import make_settings
from fastapi import APIRouter, Depends, FastAPI
from fastapi.testclient import TestClient

from agora.api.app import create_app
from agora.api.deps import SessionDep
from agora.api.routing import OneHopRoute

KEY = "concurrency-key"


def test_eighty_clients_at_once_on_a_read_route_all_get_answers(
    tmp_path: Path, database_url: str, spawn_server
) -> None:
    """More clients at once than the API has threads (40) and database connections: before the
    route class closed sessions in the route's own thread, the pool threads all waited for
    connections held by sessions waiting for a thread to close them, until the pool's 30 s
    timeout answered 500 (wrk -c80 on /items/latest: 77 answers in 4 s, 3,134 since)."""
    env = {
        "AGORA_DATA_DIR": str(tmp_path / "data"),
        "AGORA_DATABASE_URL": database_url,
        "AGORA_API_KEY": KEY,
    }
    server = spawn_server([sys.executable, "-m", "agora.cli.main", "serve"], env)
    auth = {"Authorization": f"Bearer {KEY}"}
    start = threading.Barrier(80)

    def client(_: int) -> list[int]:
        with httpx.Client(base_url=server.base_url, headers=auth, timeout=10) as http:
            start.wait()
            return [http.get("/items/latest", params={"n": 20}).status_code for _ in range(5)]

    with ThreadPoolExecutor(80) as pool:
        codes = [code for answers in pool.map(client, range(80)) for code in answers]
    assert codes == [200] * 400
    assert "Traceback" not in server.log()


def _through_a_session(session: SessionDep) -> int:
    return 1


def test_the_route_class_refuses_sessions_it_could_not_close() -> None:
    router = APIRouter(route_class=OneHopRoute)
    with pytest.raises(TypeError, match="async route"):

        @router.get("/a")
        async def in_the_loop(session: SessionDep) -> None: ...

    with pytest.raises(TypeError, match="only a route itself"):

        @router.get("/b")
        def through_a_dependency(x: Annotated[int, Depends(_through_a_session)]) -> None: ...


def test_a_route_of_another_class_gets_no_session(tmp_path: Path, sqlite_url) -> None:
    app = create_app(make_settings(tmp_path, sqlite_url))
    plain = FastAPI()

    @plain.get("/plain")
    def plain_route(session: SessionDep) -> None: ...

    app.include_router(plain.router)
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.get("/plain").status_code == 500


def test_every_route_of_the_app_is_a_one_hop_route(tmp_path: Path, sqlite_url) -> None:
    app = create_app(make_settings(tmp_path, sqlite_url))
    from fastapi.routing import APIRoute

    api_routes = [r for r in app.routes if isinstance(r, APIRoute)]
    assert api_routes and all(isinstance(r, OneHopRoute) for r in api_routes), [
        r.path for r in api_routes if not isinstance(r, OneHopRoute)
    ]
