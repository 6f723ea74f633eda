"""Helpers of the analytics tests: waiting for a result the background jobs compute."""

from __future__ import annotations

import time

from fastapi.testclient import TestClient


def computed(client: TestClient, path: str, headers: dict[str, str], timeout: float = 120.0):
    """GET ``path`` until the background job has stored its result (200; 202 meanwhile, each
    answered at once); returns the 200 response."""
    deadline = time.monotonic() + timeout
    while True:
        started = time.monotonic()
        response = client.get(path, headers=headers)
        assert time.monotonic() - started < 5, f"GET {path} took more than 5 s"
        if response.status_code != 202:
            assert response.status_code == 200, response.text
            return response
        assert response.json()["status"] == "pending"
        assert time.monotonic() < deadline, f"{path} still pending after {timeout} s"
        time.sleep(0.2)
