"""The real app plus one test-only route that always raises (imported by a uvicorn process that
the tests start: ``uvicorn --factory failing_app:create_app`` with this folder on PYTHONPATH)."""

from __future__ import annotations

import logging.config

from fastapi import FastAPI

from agora.api import app as agora_app
from agora.api.logs import logging_config


def create_app() -> FastAPI:
    logging.config.dictConfig(logging_config("info"))  # as `agora serve` does
    app = agora_app.create_app()

    @app.get("/test-only/boom")
    def boom() -> dict:
        raise RuntimeError("a bug the test planted")

    return app
