"""The real app plus one test-only route that always raises (imported by a uvicorn process that
the tests start: ``uvicorn --factory failing_app:create_app`` with this folder on PYTHONPATH)."""

from __future__ import annotations

from fastapi import FastAPI

from agora.api import app as agora_app


def create_app() -> FastAPI:
    app = agora_app.create_app()

    @app.get("/test-only/boom")
    def boom() -> dict:
        raise RuntimeError("a bug the test planted")

    return app
